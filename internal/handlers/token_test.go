package handlers

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-dcr/caddy-dcr/storage"
)

// form sends a form POST, with Basic credentials when user is not "".
func (ts *testServer) form(target, user, pass string, v url.Values) (*httptest.ResponseRecorder, map[string]any) {
	ts.t.Helper()
	r := httptest.NewRequest("POST", target, strings.NewReader(v.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=UTF-8")
	if user != "" {
		r.SetBasicAuth(url.QueryEscape(user), url.QueryEscape(pass))
	}
	w := httptest.NewRecorder()
	if err := ts.srv.ServeHTTP(w, r, nil); err != nil {
		ts.t.Fatalf("ServeHTTP: %v", err)
	}
	return w, decodeBody(ts.t, w)
}

// gated sends a request through the gate with the given Authorization
// header value and extra headers; it returns the status and, for a
// refusal, the challenge.
func (ts *testServer) gated(target, authorization string, headers ...string) (int, string) {
	ts.t.Helper()
	h := http.Header{}
	for i := 0; i+1 < len(headers); i += 2 {
		h.Set(headers[i], headers[i+1])
	}
	return ts.gatedWith(target, authorization, h)
}

// gatedWith is gated with the request headers given as a map, so a test
// can send a header more than once.
func (ts *testServer) gatedWith(target, authorization string, headers http.Header) (int, string) {
	ts.t.Helper()
	r := httptest.NewRequest("GET", target, nil)
	for k, v := range headers {
		r.Header[k] = v
	}
	if authorization != "" {
		r.Header.Set("Authorization", authorization)
	}
	repl := caddy.NewReplacer()
	// As if basic_auth had run first on this route.
	repl.Set("http.auth.user.id", "basic-auth-user")
	r = caddyhttp.PrepareRequest(r, repl, nil, nil)
	ts.upstream = nil
	w := httptest.NewRecorder()
	err := ts.srv.ServeHTTP(w, r, ts.next())
	if err == nil {
		return w.Code, ""
	}
	var he caddyhttp.HandlerError
	if !errors.As(err, &he) {
		ts.t.Fatalf("gate returned %v", err)
	}
	return he.StatusCode, w.Header().Get("WWW-Authenticate")
}

func (ts *testServer) clientCredentialsToken(id, secret, scope string) string {
	ts.t.Helper()
	v := url.Values{"grant_type": {"client_credentials"}}
	if scope != "" {
		v.Set("scope", scope)
	}
	w, m := ts.form("/oauth/token", id, secret, v)
	if w.Code != http.StatusOK {
		ts.t.Fatalf("token: %d %v", w.Code, m)
	}
	return m["access_token"].(string)
}

func (ts *testServer) machineClient(extra string) (id, secret string) {
	ts.t.Helper()
	m := ts.register(`{"grant_types":["client_credentials"]` + extra + `}`)
	return m["client_id"].(string), m["client_secret"].(string)
}

func TestClientCredentialsGrant(t *testing.T) {
	ts := newTestServer(t, Config{ScopesSupported: []string{"read", "write", "admin"}})
	id, secret := ts.machineClient(`,"scope":"read write"`)
	postID, postSecret := ts.machineClient(`,"token_endpoint_auth_method":"client_secret_post"`)

	t.Run("basic, registered scope", func(t *testing.T) {
		w, m := ts.form("/oauth/token", id, secret, url.Values{"grant_type": {"client_credentials"}})
		assertOAuthJSON(t, w, m, http.StatusOK, "")
		if m["token_type"] != "Bearer" || m["expires_in"] != float64(3600) || m["scope"] != "read write" {
			t.Fatalf("response %v", m)
		}
		if _, ok := m["refresh_token"]; ok {
			t.Error("client_credentials got a refresh token (RFC 6749 §4.4.3)")
		}
	})
	t.Run("narrower scope is not echoed", func(t *testing.T) {
		w, m := ts.form("/oauth/token", id, secret, url.Values{"grant_type": {"client_credentials"}, "scope": {"read"}})
		assertOAuthJSON(t, w, m, http.StatusOK, "")
		if _, ok := m["scope"]; ok {
			t.Errorf("scope echoed though equal to the request: %v", m)
		}
	})
	t.Run("post", func(t *testing.T) {
		w, m := ts.form("/oauth/token", "", "", url.Values{"grant_type": {"client_credentials"}, "client_id": {postID}, "client_secret": {postSecret}})
		assertOAuthJSON(t, w, m, http.StatusOK, "")
	})

	refusals := []struct {
		name       string
		user, pass string
		form       url.Values
		status     int
		code       string
		basicChall bool
	}{
		{"wrong secret via basic", id, "wrong", url.Values{"grant_type": {"client_credentials"}}, 401, "invalid_client", true},
		{"wrong secret via post", "", "", url.Values{"grant_type": {"client_credentials"}, "client_id": {postID}, "client_secret": {"x"}}, 401, "invalid_client", false},
		{"unknown client", "nobody", "x", url.Values{"grant_type": {"client_credentials"}}, 401, "invalid_client", true},
		{"no credentials", "", "", url.Values{"grant_type": {"client_credentials"}}, 401, "invalid_client", false},
		{"basic client using post", "", "", url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {secret}}, 401, "invalid_client", false},
		{"post client using basic", postID, postSecret, url.Values{"grant_type": {"client_credentials"}}, 401, "invalid_client", true},
		{"header and body differ", id, secret, url.Values{"grant_type": {"client_credentials"}, "client_id": {postID}}, 400, "invalid_request", false},
		{"no grant type", id, secret, url.Values{}, 400, "invalid_request", false},
		{"unknown grant type", id, secret, url.Values{"grant_type": {"password"}}, 400, "unsupported_grant_type", false},
		{"grant not registered", id, secret, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}}, 400, "unauthorized_client", false},
		{"scope outside registration", id, secret, url.Values{"grant_type": {"client_credentials"}, "scope": {"admin"}}, 400, "invalid_scope", false},
		{"repeated parameter", id, secret, url.Values{"grant_type": {"client_credentials", "client_credentials"}}, 400, "invalid_request", false},
		{"foreign resource", id, secret, url.Values{"grant_type": {"client_credentials"}, "resource": {"https://elsewhere.example/"}}, 400, "invalid_target", false},
		{"resource with fragment", id, secret, url.Values{"grant_type": {"client_credentials"}, "resource": {"http://example.com/a#b"}}, 400, "invalid_target", false},
		{"resource with a query", id, secret, url.Values{"grant_type": {"client_credentials"}, "resource": {"http://example.com/a?x=1"}}, 400, "invalid_target", false},
		{"resource with dot segments", id, secret, url.Values{"grant_type": {"client_credentials"}, "resource": {"http://example.com/a/../b"}}, 400, "invalid_target", false},
		{"resource with a path parameter on dots", id, secret, url.Values{"grant_type": {"client_credentials"}, "resource": {"http://example.com/a/..;/b"}}, 400, "invalid_target", false},
		{"resource with an empty segment", id, secret, url.Values{"grant_type": {"client_credentials"}, "resource": {"http://example.com/a//b"}}, 400, "invalid_target", false},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			w, m := ts.form("/oauth/token", tc.user, tc.pass, tc.form)
			assertOAuthJSON(t, w, m, tc.status, tc.code)
			got := w.Header().Get("WWW-Authenticate")
			if tc.basicChall != (got != "") || (got != "" && !strings.HasPrefix(got, "Basic ")) {
				t.Errorf("WWW-Authenticate %q", got)
			}
		})
	}

	t.Run("not a form", func(t *testing.T) {
		w, m := ts.do("POST", "/oauth/token", "", "application/json", `{"grant_type":"client_credentials"}`)
		assertOAuthJSON(t, w, m, http.StatusBadRequest, "invalid_request")
	})
	t.Run("expired secret", func(t *testing.T) {
		ts2 := newTestServer(t, Config{ClientSecretTTL: time.Hour})
		id, secret := ts2.machineClient("")
		ts2.clientCredentialsToken(id, secret, "")
		ts2.clock = ts2.clock.Add(2 * time.Hour)
		w, m := ts2.form("/oauth/token", id, secret, url.Values{"grant_type": {"client_credentials"}})
		assertOAuthJSON(t, w, m, http.StatusUnauthorized, "invalid_client")
	})
}

func TestRefreshTokenRotation(t *testing.T) {
	ts := newTestServer(t, Config{})
	m := ts.register(`{"token_endpoint_auth_method":"none","redirect_uris":["http://127.0.0.1/cb"],"grant_types":["authorization_code","refresh_token"]}`)
	id := m["client_id"].(string)
	// The authorization code grant will issue these; here one is seeded.
	first := newSecret()
	err := ts.store.CreateRefreshToken(t.Context(), storage.HashSecret(first), &storage.RefreshToken{
		ClientID: id, Subject: "alice", Scope: "read write", Audience: "http://example.com",
		IssuedAt: fixedNow.Unix(), ExpiresAt: fixedNow.Add(time.Hour).Unix(), Family: "fam1",
	})
	if err != nil {
		t.Fatal(err)
	}
	refresh := func(token, scope string) (*httptest.ResponseRecorder, map[string]any) {
		v := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {token}, "client_id": {id}}
		if scope != "" {
			v.Set("scope", scope)
		}
		return ts.form("/oauth/token", "", "", v)
	}
	w, got := refresh(first, "write admin")
	assertOAuthJSON(t, w, got, http.StatusBadRequest, "invalid_scope")
	w, got = refresh(first, "read")
	assertOAuthJSON(t, w, got, http.StatusOK, "")
	second, access := got["refresh_token"].(string), got["access_token"].(string)
	if second == "" || second == first {
		t.Fatalf("no rotation: %v", got)
	}
	if status, _ := ts.gated("/x", "Bearer "+access); status != http.StatusTeapot {
		t.Fatal("refreshed access token refused")
	}
	// The rotated token is dead; presenting it again revokes the family:
	// the new refresh token and the access token issued with it.
	w, got = refresh(first, "")
	assertOAuthJSON(t, w, got, http.StatusBadRequest, "invalid_grant")
	w, got = refresh(second, "")
	assertOAuthJSON(t, w, got, http.StatusBadRequest, "invalid_grant")
	if status, _ := ts.gated("/x", "Bearer "+access); status != 401 {
		t.Fatalf("access token of a revoked family: %d", status)
	}
}

// The token response is written without reflection; what is written must
// be what json.Marshal writes.
func TestTokenResponseAsMarshal(t *testing.T) {
	for _, r := range []tokenResponse{
		{AccessToken: "a.b.c", TokenType: "Bearer", ExpiresIn: 3600},
		{AccessToken: "a.b.c", TokenType: "Bearer", ExpiresIn: 60, Scope: "read <write> & \"more\"", RefreshToken: "r-_~"},
		{AccessToken: "a.b.c", TokenType: "Bearer", ExpiresIn: 60, Scope: "openid", IDToken: "h.p.s"},
	} {
		want, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.appendJSON(nil); string(got) != string(want) {
			t.Errorf("appendJSON:\n%s\njson.Marshal:\n%s", got, want)
		}
	}
}

// RFC 6749 §6: a refresh may narrow the scope of the access token it
// issues, but the grant keeps its scope: a later refresh that asks for no
// scope gets all of it back, not the narrowed one.
func TestRefreshWithoutScopeAfterNarrowingGetsTheFullScope(t *testing.T) {
	ts := newTestServer(t, Config{ScopesSupported: []string{"read", "write"}})
	id, params := ts.publicClient(`,"scope":"read write"`)
	ts.srv.cfg.TrustedClients = []string{id}
	_, q := redirectParams(t, ts.authorize("GET", with(params, "scope", "read write"), "alice"))
	_, refresh := ts.codeTokens(id, q.Get("code"))

	scopeOf := func(access string) any {
		t.Helper()
		return decodeJWTPayload(t, access)["scope"]
	}
	v := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}, "client_id": {id}, "scope": {"read"}}
	w, m := ts.form("/oauth/token", "", "", v)
	assertOAuthJSON(t, w, m, http.StatusOK, "")
	if got := scopeOf(m["access_token"].(string)); got != "read" {
		t.Fatalf("narrowed access token has scope %v", got)
	}
	w, m = ts.refresh(id, m["refresh_token"].(string))
	assertOAuthJSON(t, w, m, http.StatusOK, "")
	if m["scope"] != "read write" || scopeOf(m["access_token"].(string)) != "read write" {
		t.Fatalf("refresh without scope after narrowing: %v", m)
	}
	// And it may not widen beyond the grant.
	w, m = ts.form("/oauth/token", "", "", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {m["refresh_token"].(string)},
		"client_id": {id}, "scope": {"read write admin"}})
	assertOAuthJSON(t, w, m, http.StatusBadRequest, "invalid_scope")
}

// RFC 7636 §4.1: a code_verifier is 43 to 128 characters of
// [A-Za-z0-9-._~]. Each bad verifier here is the one the challenge was
// made from, so only that rule can refuse it. A malformed parameter is
// invalid_request (RFC 6749 §5.2); invalid_grant (RFC 7636 §4.6) is for a
// verifier that does not match.
func TestCodeVerifierOutsideTheGrammarIsRefused(t *testing.T) {
	ts := newTestServer(t, Config{})
	id, params := ts.publicClient("")
	ts.srv.cfg.TrustedClients = []string{id}
	for _, tc := range []struct {
		name, verifier string
		status         int
	}{
		{"42 characters", strings.Repeat("a", 42), 400},
		{"129 characters", strings.Repeat("a", 129), 400},
		{"a plus", strings.Repeat("a", 42) + "+", 400},
		{"a slash", strings.Repeat("a", 42) + "/", 400},
		{"padding", strings.Repeat("a", 42) + "=", 400},
		{"a space", strings.Repeat("a", 42) + " ", 400},
		{"a percent", strings.Repeat("a", 42) + "%", 400},
		{"non-ASCII", strings.Repeat("a", 41) + "é", 400},
		{"43 characters", strings.Repeat("a", 43), 200},
		{"128 characters", strings.Repeat("a", 128), 200},
		{"every allowed kind", "AZaz09-._~" + strings.Repeat("x", 33), 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, q := redirectParams(t, ts.authorize("GET", with(params, "code_challenge", challengeOf(tc.verifier)), "alice"))
			if q.Get("code") == "" {
				t.Fatalf("no code: %v", q)
			}
			w, m := ts.exchange(id, q.Get("code"), tc.verifier, "http://127.0.0.1:4000/cb")
			want := ""
			if tc.status != 200 {
				want = "invalid_request"
			}
			assertOAuthJSON(t, w, m, tc.status, want)
		})
	}
}
