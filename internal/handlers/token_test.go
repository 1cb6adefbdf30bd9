package handlers

import (
	"encoding/base64"
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

func TestParseBasicDecodesBothHalves(t *testing.T) {
	enc := func(s string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(s)) }
	cases := []struct{ header, id, secret string }{
		{enc("abc:def"), "abc", "def"},
		{enc("a%3Ab:c%2Bd"), "a:b", "c+d"},
		{enc("a+b:c"), "a b", "c"},
		{enc("pub:"), "pub", ""},
		{"basic " + base64.StdEncoding.EncodeToString([]byte("x:y")), "x", "y"},
	}
	for _, tc := range cases {
		id, secret, ok := parseBasic(tc.header)
		if !ok || id != tc.id || secret != tc.secret {
			t.Errorf("parseBasic(%q) = %q %q %v", tc.header, id, secret, ok)
		}
	}
	for _, bad := range []string{"Basic !!!", enc("nocolon"), enc(":secret"), enc("a%zz:b"), "Bearer abc"} {
		if _, _, ok := parseBasic(bad); ok {
			t.Errorf("parseBasic(%q) accepted", bad)
		}
	}
}

func TestPublicClientAuthentication(t *testing.T) {
	ts := newTestServer(t, Config{})
	m := ts.register(`{"token_endpoint_auth_method":"none","redirect_uris":["http://127.0.0.1/cb"],"grant_types":["authorization_code","refresh_token"]}`)
	id := m["client_id"].(string)
	// Basic with an empty password (golang.org/x/oauth2) identifies the
	// public client: the refusal is about the grant, not the client.
	w, got := ts.form("/oauth/token", id, "", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"unknown"}})
	assertOAuthJSON(t, w, got, http.StatusBadRequest, "invalid_grant")
	w, got = ts.form("/oauth/token", "", "", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"unknown"}, "client_id": {id}})
	assertOAuthJSON(t, w, got, http.StatusBadRequest, "invalid_grant")
	// A public client that sends a secret is not using its method.
	w, got = ts.form("/oauth/token", id, "secret", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"unknown"}})
	assertOAuthJSON(t, w, got, http.StatusUnauthorized, "invalid_client")
}

func TestGate(t *testing.T) {
	ts := newTestServer(t, Config{ScopesSupported: []string{"read", "write"}, RequireScope: []string{"read"},
		SubjectHeader: "X-Auth-Subject", ClientIDHeader: "X-Auth-Client-Id", ScopeHeader: "X-Auth-Scope"})
	id, secret := ts.machineClient("")
	token := ts.clientCredentialsToken(id, secret, "")
	readOnly := ts.clientCredentialsToken(id, secret, "write")

	status, chal := ts.gated("/api/items", "")
	if status != 401 || chal != `Bearer resource_metadata="http://example.com/.well-known/oauth-protected-resource/api/items", scope="read"` {
		t.Fatalf("no token: %d %q", status, chal)
	}
	for name, auth := range map[string]string{
		"garbage":         "Bearer abc.def.ghi",
		"tampered":        "Bearer " + token[:len(token)-4] + "AAAA",
		"wrong scheme":    "Basic " + base64.StdEncoding.EncodeToString([]byte(id+":"+secret)),
		"token as basic?": "Token " + token,
	} {
		status, chal := ts.gated("/api/items", auth)
		if status != 401 || !strings.Contains(chal, "resource_metadata=") {
			t.Errorf("%s: %d %q", name, status, chal)
		}
		if strings.HasPrefix(auth, "Bearer") && !strings.Contains(chal, `error="invalid_token"`) {
			t.Errorf("%s: challenge without invalid_token: %q", name, chal)
		}
	}
	// A token in the query string is not looked at.
	if status, _ := ts.gated("/api/items?access_token="+token, ""); status != 401 {
		t.Errorf("query token accepted: %d", status)
	}

	status, chal = ts.gated("/api/items", "Bearer "+readOnly)
	if status != 403 || !strings.Contains(chal, `error="insufficient_scope"`) || !strings.Contains(chal, `scope="read"`) {
		t.Fatalf("insufficient scope: %d %q", status, chal)
	}

	// A valid token passes, forged identity headers are replaced, and the
	// placeholders name the caller.
	status, _ = ts.gated("/api/items", "bearer "+token, "X-Auth-Subject", "admin", "X-Auth-Scope", "everything")
	if status != http.StatusTeapot || ts.upstream == nil {
		t.Fatalf("valid token: %d", status)
	}
	h := ts.upstream.Header
	if h.Get("X-Auth-Subject") != id || h.Get("X-Auth-Client-Id") != id || h.Get("X-Auth-Scope") != "read write" {
		t.Fatalf("identity headers %v", h)
	}
	if len(h.Values("X-Auth-Subject")) != 1 || h.Get("Authorization") == "" {
		t.Fatalf("headers upstream: %v", h)
	}
	repl := ts.upstream.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if v, _ := repl.GetString("http.auth.user.id"); v != id {
		t.Errorf("http.auth.user.id = %q", v)
	}
	if v, _ := repl.GetString("http.auth.user.scope"); v != "read write" {
		t.Errorf("http.auth.user.scope = %q", v)
	}
	if v, _ := repl.GetString("http.auth.user.client_id"); v != id {
		t.Errorf("http.auth.user.client_id = %q", v)
	}

	// A cached token's signature under another payload misses the cache
	// and fails verification: the cache answers only the exact token.
	parts := strings.Split(token, ".")
	other := strings.Split(readOnly, ".")
	for _, forged := range []string{parts[0] + "." + other[1] + "." + parts[2], other[0] + "." + other[1] + "." + parts[2], "x.y." + parts[2]} {
		if status, chal := ts.gated("/api/items", "Bearer "+forged); status != 401 || !strings.Contains(chal, "invalid_token") {
			t.Fatalf("a cached signature with another payload: %d %q", status, chal)
		}
	}

	// Forged headers are removed even when the request is refused.
	ts.gated("/api/items", "", "X-Auth-Subject", "admin")

	// Expiry: past exp the cached claims no longer pass.
	ts.clock = ts.clock.Add(time.Hour)
	if status, chal := ts.gated("/api/items", "Bearer "+token); status != 401 || !strings.Contains(chal, "invalid_token") {
		t.Fatalf("expired token: %d %q", status, chal)
	}
}

func TestGatePreflight(t *testing.T) {
	preflight := func(ts *testServer, origin string) int {
		r := httptest.NewRequest("OPTIONS", "/mcp", nil)
		if origin != "" {
			r.Header.Set("Origin", origin)
		}
		r.Header.Set("Access-Control-Request-Method", "POST")
		r.Header.Set("X-Auth-Subject", "forged")
		r = caddyhttp.PrepareRequest(r, caddy.NewReplacer(), nil, nil)
		w := httptest.NewRecorder()
		if err := ts.srv.ServeHTTP(w, r, ts.next()); err != nil {
			return 401
		}
		if ts.upstream.Header.Get("X-Auth-Subject") != "" {
			t.Fatal("a forged identity header passed with a preflight")
		}
		return w.Code
	}
	off := newTestServer(t, Config{SubjectHeader: "X-Auth-Subject"})
	if got := preflight(off, "https://app.example"); got != 401 {
		t.Fatalf("preflight with allow_preflight off: %d", got)
	}
	on := newTestServer(t, Config{SubjectHeader: "X-Auth-Subject", AllowPreflight: true})
	if got := preflight(on, "https://app.example"); got != http.StatusTeapot {
		t.Fatalf("preflight with allow_preflight on: %d", got)
	}
	if got := preflight(on, ""); got != 401 {
		t.Fatalf("an OPTIONS without Origin is no preflight: %d", got)
	}
	if status, _ := on.gated("/mcp", ""); status != 401 {
		t.Fatalf("a GET without a token with allow_preflight on: %d", status)
	}
}

func TestGateAudience(t *testing.T) {
	ts := newTestServer(t, Config{Resource: "http://example.com/mcp"})
	id, secret := ts.machineClient("")
	def := ts.clientCredentialsToken(id, secret, "")
	w, m := ts.form("/oauth/token", id, secret, url.Values{"grant_type": {"client_credentials"}, "resource": {"http://example.com/mcp/tools"}})
	assertOAuthJSON(t, w, m, http.StatusOK, "")
	below := m["access_token"].(string)

	if status, _ := ts.gated("/mcp", "Bearer "+def); status != http.StatusTeapot {
		t.Errorf("token for the gate's resource: %d", status)
	}
	if status, _ := ts.gated("/mcp", "Bearer "+below); status != http.StatusTeapot {
		t.Errorf("token for a URL below the resource: %d", status)
	}
	// A sibling gate with a narrower resource refuses a token for the
	// whole site and for another path.
	other := newTestServer(t, Config{Resource: "http://example.com/other"})
	other.srv.keys, other.srv.store = ts.srv.keys, ts.srv.store
	status, chal := other.gated("/other", "Bearer "+def)
	if status != 401 || !strings.Contains(chal, "another resource") ||
		!strings.Contains(chal, `resource_metadata="http://example.com/.well-known/oauth-protected-resource/other"`) {
		t.Errorf("token for another resource: %d %q", status, chal)
	}
	for _, tc := range []struct {
		uri, base string
		want      bool
	}{
		{"https://a.example/mcp", "https://a.example", true},
		{"https://a.example/mcp", "https://a.example/", true},
		{"https://a.example/mcp/x", "https://a.example/mcp", true},
		{"https://a.example/mcpx", "https://a.example/mcp", false},
		{"https://a.example.evil/", "https://a.example", false},
		{"https://a.example", "https://a.example/mcp", false},
	} {
		if got := atOrBelow(tc.uri, tc.base); got != tc.want {
			t.Errorf("atOrBelow(%q, %q) = %v", tc.uri, tc.base, got)
		}
	}
}

func TestRevocationAndDeletion(t *testing.T) {
	ts := newTestServer(t, Config{})
	id, secret := ts.machineClient("")
	otherID, otherSecret := ts.machineClient("")
	token := ts.clientCredentialsToken(id, secret, "")
	second := ts.clientCredentialsToken(id, secret, "")

	// Another client may not revoke it.
	w, m := ts.form("/oauth/revoke", otherID, otherSecret, url.Values{"token": {token}})
	assertOAuthJSON(t, w, m, http.StatusBadRequest, "unauthorized_client")
	if status, _ := ts.gated("/x", "Bearer "+token); status != http.StatusTeapot {
		t.Fatal("token died from a foreign revocation")
	}
	// Its own client may, and the gate refuses it at once (its claims
	// were cached by the request above).
	w, m = ts.form("/oauth/revoke", id, secret, url.Values{"token": {token}, "token_type_hint": {"access_token"}})
	assertOAuthJSON(t, w, m, http.StatusOK, "")
	if status, chal := ts.gated("/x", "Bearer "+token); status != 401 || !strings.Contains(chal, "revoked") {
		t.Fatalf("revoked token: %d %q", status, chal)
	}
	// Unknown tokens get 200 too (RFC 7009 §2.2).
	w, m = ts.form("/oauth/revoke", id, secret, url.Values{"token": {"no-such-token"}})
	assertOAuthJSON(t, w, m, http.StatusOK, "")

	// Deleting the client (RFC 7592) revokes every token it had.
	if status, _ := ts.gated("/x", "Bearer "+second); status != http.StatusTeapot {
		t.Fatal("second token refused before delete")
	}
	if err := ts.store.DeleteClient(t.Context(), id, ts.srv.revokedUntil()); err != nil {
		t.Fatal(err)
	}
	if status, _ := ts.gated("/x", "Bearer "+second); status != 401 {
		t.Fatalf("token of a deleted client: %d", status)
	}
	w, m = ts.form("/oauth/token", id, secret, url.Values{"grant_type": {"client_credentials"}})
	assertOAuthJSON(t, w, m, http.StatusUnauthorized, "invalid_client")
	_ = otherSecret
}

func TestIntrospection(t *testing.T) {
	ts := newTestServer(t, Config{})
	id, secret := ts.machineClient(`,"scope":"a b"`)
	token := ts.clientCredentialsToken(id, secret, "")

	w, m := ts.form("/oauth/introspect", id, secret, url.Values{"token": {token}})
	assertOAuthJSON(t, w, m, http.StatusOK, "")
	if m["active"] != true || m["client_id"] != id || m["sub"] != id || m["scope"] != "a b" ||
		m["iss"] != "http://example.com" || m["aud"] != "http://example.com" || m["token_type"] != "Bearer" ||
		m["exp"] != float64(fixedNow.Add(time.Hour).Unix()) || m["iat"] != float64(fixedNow.Unix()) {
		t.Fatalf("introspection %v", m)
	}
	for _, tok := range []string{"unknown", token + "x", "a.b.c"} {
		w, m = ts.form("/oauth/introspect", id, secret, url.Values{"token": {tok}})
		assertOAuthJSON(t, w, m, http.StatusOK, "")
		if len(m) != 1 || m["active"] != false {
			t.Fatalf("inactive token answer %v", m)
		}
	}
	w, m = ts.form("/oauth/introspect", id, "wrong", url.Values{"token": {token}})
	assertOAuthJSON(t, w, m, http.StatusUnauthorized, "invalid_client")
	pub := ts.register(`{"token_endpoint_auth_method":"none","redirect_uris":["http://127.0.0.1/cb"]}`)
	w, m = ts.form("/oauth/introspect", "", "", url.Values{"token": {token}, "client_id": {pub["client_id"].(string)}})
	assertOAuthJSON(t, w, m, http.StatusUnauthorized, "invalid_client")

	ts.clock = ts.clock.Add(2 * time.Hour)
	w, m = ts.form("/oauth/introspect", id, secret, url.Values{"token": {token}})
	if m["active"] != false {
		t.Fatalf("expired token active: %v", m)
	}
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

func TestDiscovery(t *testing.T) {
	ts := newTestServer(t, Config{Issuer: "https://auth.example.com/tenant", ScopesSupported: []string{"read"}})
	for _, p := range []string{"/.well-known/oauth-authorization-server", "/.well-known/openid-configuration", "/.well-known/oauth-authorization-server/tenant"} {
		w, m := ts.do("GET", p, "", "", "")
		if w.Code != 200 || w.Header().Get("Access-Control-Allow-Origin") != "*" {
			t.Fatalf("%s: %d %v", p, w.Code, w.Header())
		}
		if m["issuer"] != "https://auth.example.com/tenant" || m["token_endpoint"] != "https://auth.example.com/oauth/token" ||
			m["registration_endpoint"] != "https://auth.example.com/oauth/register" || m["jwks_uri"] != "https://auth.example.com/oauth/jwks" ||
			m["introspection_endpoint"] == nil || m["revocation_endpoint"] == nil {
			t.Fatalf("%s: %v", p, m)
		}
		for _, k := range []string{"response_types_supported", "grant_types_supported", "token_endpoint_auth_methods_supported", "code_challenge_methods_supported", "scopes_supported"} {
			if _, ok := m[k].([]any); !ok {
				t.Errorf("%s: %s missing", p, k)
			}
		}
	}
	w, m := ts.do("GET", "/.well-known/oauth-protected-resource/mcp", "", "", "")
	if w.Code != 200 || m["resource"] != "https://auth.example.com/mcp" || m["authorization_servers"].([]any)[0] != "https://auth.example.com/tenant" {
		t.Fatalf("resource metadata: %d %v", w.Code, m)
	}
	if b := m["bearer_methods_supported"].([]any); len(b) != 1 || b[0] != "header" {
		t.Fatalf("bearer_methods_supported %v", b)
	}
	w, m = ts.do("GET", "/oauth/jwks", "", "", "")
	keys := m["keys"].([]any)
	k := keys[0].(map[string]any)
	if w.Code != 200 || len(keys) != 1 || k["kty"] != "EC" || k["alg"] != "ES256" || k["kid"] == "" || k["d"] != nil {
		t.Fatalf("jwks: %v", m)
	}

	// The token's iss is the metadata's issuer, byte for byte.
	id, secret := ts.machineClient("")
	token := ts.clientCredentialsToken(id, secret, "")
	c, err := ts.srv.keys.verify(t.Context(), token)
	if err != nil || c.Issuer != "https://auth.example.com/tenant" {
		t.Fatalf("token iss %v %v", c, err)
	}
}

func TestWellKnownURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://a.example":          "https://a.example/.well-known/oauth-protected-resource",
		"https://a.example/":         "https://a.example/.well-known/oauth-protected-resource",
		"https://a.example/mcp":      "https://a.example/.well-known/oauth-protected-resource/mcp",
		"https://a.example:8443/a/b": "https://a.example:8443/.well-known/oauth-protected-resource/a/b",
	} {
		if got := wellKnownURL(in); got != want {
			t.Errorf("wellKnownURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestKeyRotation(t *testing.T) {
	ts := newTestServer(t, Config{KeyRotation: 24 * time.Hour, AccessTokenTTL: time.Hour})
	id, secret := ts.machineClient("")
	old := ts.clientCredentialsToken(id, secret, "")
	ts.clock = ts.clock.Add(24*time.Hour + time.Minute)
	// The old token expired long ago; issue one just before rotation to
	// check the previous key still verifies.
	ts.clock = fixedNow.Add(24*time.Hour - time.Minute)
	recent := ts.clientCredentialsToken(id, secret, "")
	ts.clock = fixedNow.Add(24*time.Hour + time.Minute)
	fresh := ts.clientCredentialsToken(id, secret, "")
	keys, _ := ts.store.SigningKeys(t.Context())
	if len(keys) != 2 {
		t.Fatalf("%d keys after rotation, want 2", len(keys))
	}
	for name, tok := range map[string]string{"recent": recent, "fresh": fresh} {
		if status, _ := ts.gated("/x", "Bearer "+tok); status != http.StatusTeapot {
			t.Errorf("%s token refused after rotation: %d", name, status)
		}
	}
	// Once every token of the old key expired, the next rotation drops it.
	ts.clock = fixedNow.Add(48*time.Hour + 2*time.Hour)
	ts.clientCredentialsToken(id, secret, "")
	keys, _ = ts.store.SigningKeys(t.Context())
	if len(keys) != 2 {
		t.Fatalf("%d keys after the second rotation, want 2", len(keys))
	}
	_ = old
}
