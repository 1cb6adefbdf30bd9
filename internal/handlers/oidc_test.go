package handlers

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/caddy-dcr/caddy-dcr/storage"
)

// oidcServer is a test server reachable over HTTP at its issuer, so that a
// real OpenID Connect client library can discover it, fetch its keys and
// call its token and userinfo endpoints. Requests are made as alice.
func oidcServer(t *testing.T, cfg Config) (*testServer, *httptest.Server) {
	t.Helper()
	var ts *testServer
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		repl := caddy.NewReplacer()
		r = caddyhttp.PrepareRequest(r, repl, nil, nil)
		if err := ts.srv.ServeHTTP(w, r, ts.next()); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	}))
	t.Cleanup(hs.Close)
	cfg.Issuer = hs.URL
	if cfg.Claims == nil {
		cfg.Claims = map[string]string{"email": "{http.auth.user.email}", "email_verified": "true",
			"name": "Alice Liddell", "groups": "admins"}
	}
	ts = newTestServer(t, cfg)
	return ts, hs
}

// decodeJWTPayload returns a JWT's claims, unverified.
func decodeJWTPayload(t *testing.T, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", token)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestGoOIDCAcceptsIDTokens runs the authorization code flow with
// golang.org/x/oauth2 as the client and checks the ID token with go-oidc's
// verifier (signature, iss, aud, exp, alg from discovery), its nonce and
// at_hash, then the userinfo endpoint through go-oidc, then a refresh.
func TestGoOIDCAcceptsIDTokens(t *testing.T) {
	ts, hs := oidcServer(t, Config{})
	ctx := oidc.ClientContext(t.Context(), hs.Client())
	id, _ := ts.publicClient("")

	provider, err := oidc.NewProvider(ctx, hs.URL)
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	endpoint := provider.Endpoint()
	endpoint.AuthStyle = oauth2.AuthStyleInParams // a public client
	conf := oauth2.Config{ClientID: id, Endpoint: endpoint, RedirectURL: "http://127.0.0.1:4000/cb",
		Scopes: []string{oidc.ScopeOpenID, "email", "profile"}}
	verifier := oauth2.GenerateVerifier()
	authURL, err := url.Parse(conf.AuthCodeURL("st-1", oidc.Nonce("n-0S6_WzA2Mj"), oauth2.S256ChallengeOption(verifier)))
	if err != nil {
		t.Fatal(err)
	}
	before := ts.clock.Unix()
	page := ts.authorize("GET", authURL.Query(), "alice")
	_, q := redirectParams(t, ts.approve(page, "alice", "approve"))
	if q.Get("state") != "st-1" {
		t.Fatalf("state: %v", q)
	}
	tok, err := conf.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	rawID, _ := tok.Extra("id_token").(string)
	if rawID == "" {
		t.Fatalf("no id_token in %v", tok)
	}
	idt, err := provider.Verifier(&oidc.Config{ClientID: id}).Verify(ctx, rawID)
	if err != nil {
		t.Fatalf("go-oidc refuses the ID token: %v", err)
	}
	if idt.Nonce != "n-0S6_WzA2Mj" || idt.Subject != "alice" || idt.Issuer != hs.URL || !slices.Equal(idt.Audience, []string{id}) {
		t.Fatalf("ID token: %+v", idt)
	}
	if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
		t.Fatalf("at_hash: %v", err)
	}
	claims := decodeJWTPayload(t, rawID)
	if claims["azp"] != id || claims["auth_time"] != float64(before) || claims["email"] != "alice@example.com" ||
		claims["email_verified"] != true || claims["name"] != "Alice Liddell" || claims["groups"] != nil {
		t.Fatalf("ID token claims: %v", claims)
	}

	// Userinfo, through go-oidc: sub and the claims email and profile release.
	ui, err := provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		t.Fatalf("userinfo: %v", err)
	}
	var uiClaims map[string]any
	if err := ui.Claims(&uiClaims); err != nil {
		t.Fatal(err)
	}
	if ui.Subject != "alice" || ui.Email != "alice@example.com" || !ui.EmailVerified || uiClaims["name"] != "Alice Liddell" || uiClaims["groups"] != nil {
		t.Fatalf("userinfo: %+v %v", ui, uiClaims)
	}

	// A refresh, later: a new ID token, auth_time kept, no nonce.
	ts.clock = ts.clock.Add(10 * time.Minute)
	tok.Expiry = time.Now().Add(-time.Minute)
	refreshed, err := conf.TokenSource(ctx, tok).Token()
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	rawID2, _ := refreshed.Extra("id_token").(string)
	idt2, err := provider.Verifier(&oidc.Config{ClientID: id, Now: func() time.Time { return ts.clock }}).Verify(ctx, rawID2)
	if err != nil {
		t.Fatalf("go-oidc refuses the refreshed ID token: %v", err)
	}
	c2 := decodeJWTPayload(t, rawID2)
	if idt2.Nonce != "" || c2["auth_time"] != float64(before) || c2["iat"] != float64(ts.clock.Unix()) || idt2.Subject != "alice" {
		t.Fatalf("refreshed ID token: %v", c2)
	}
	if err := idt2.VerifyAccessToken(refreshed.AccessToken); err != nil {
		t.Fatalf("refreshed at_hash: %v", err)
	}
}

// TestIDTokenIsNoAccessToken: an ID token is signed by the same keys, but
// its typ is JWT, so neither the gate nor userinfo takes it as a bearer
// token.
func TestIDTokenIsNoAccessToken(t *testing.T) {
	ts, _ := oidcServer(t, Config{})
	id, params := ts.publicClient("")
	params = with(params, "scope", "openid email")
	_, q := redirectParams(t, ts.approve(ts.authorize("GET", params, "alice"), "alice", "approve"))
	w, m := ts.exchange(id, q.Get("code"), testVerifier, "http://127.0.0.1:4000/cb")
	assertOAuthJSON(t, w, m, 200, "")
	idToken := m["id_token"].(string)
	if status, _ := ts.gated("/api", "Bearer "+idToken); status != http.StatusUnauthorized {
		t.Fatalf("gate took an ID token: %d", status)
	}
	w, _ = ts.do("GET", "/oauth/userinfo", idToken, "", "")
	if w.Code != http.StatusUnauthorized || !strings.Contains(w.Header().Get("WWW-Authenticate"), "invalid_token") {
		t.Fatalf("userinfo took an ID token: %d %v", w.Code, w.Header())
	}
}

// TestNoIDTokenWithoutOpenID: OAuth clients that do not ask for openid get
// what they got before, and a client's own token gets no userinfo.
func TestNoIDTokenWithoutOpenID(t *testing.T) {
	ts, _ := oidcServer(t, Config{})
	id, params := ts.publicClient("")
	_, q := redirectParams(t, ts.approve(ts.authorize("GET", with(params, "nonce", "abc"), "alice"), "alice", "approve"))
	w, m := ts.exchange(id, q.Get("code"), testVerifier, "http://127.0.0.1:4000/cb")
	assertOAuthJSON(t, w, m, 200, "")
	if m["id_token"] != nil {
		t.Fatalf("an ID token without openid: %v", m)
	}
	w, body := ts.do("GET", "/oauth/userinfo", m["access_token"].(string), "", "")
	if w.Code != http.StatusForbidden || body["error"] != "insufficient_scope" {
		t.Fatalf("userinfo without openid: %d %v", w.Code, body)
	}

	conf := ts.register(`{"grant_types":["client_credentials"],"token_endpoint_auth_method":"client_secret_basic","scope":"openid"}`)
	w, m = ts.form("/oauth/token", conf["client_id"].(string), conf["client_secret"].(string),
		url.Values{"grant_type": {"client_credentials"}, "scope": {"openid"}})
	assertOAuthJSON(t, w, m, 200, "")
	if m["id_token"] != nil {
		t.Fatalf("client_credentials got an ID token: %v", m)
	}
	w, body = ts.do("GET", "/oauth/userinfo", m["access_token"].(string), "", "")
	if w.Code != http.StatusForbidden || body["error"] != "insufficient_scope" {
		t.Fatalf("userinfo with a client's token: %d %v", w.Code, body)
	}
}

func TestUserinfoRefusals(t *testing.T) {
	ts, _ := oidcServer(t, Config{})
	w, body := ts.do("GET", "/oauth/userinfo", "", "", "")
	if w.Code != http.StatusUnauthorized || w.Header().Get("WWW-Authenticate") != "Bearer" || w.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("no token: %d %v %v", w.Code, w.Header(), body)
	}
	w, _ = ts.do("GET", "/oauth/userinfo", "not-a-token", "", "")
	if w.Code != http.StatusUnauthorized || !strings.Contains(w.Header().Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Fatalf("bad token: %d %v", w.Code, w.Header())
	}
	w, _ = ts.do("DELETE", "/oauth/userinfo", "", "", "")
	if w.Code != http.StatusMethodNotAllowed {
		t.Fatalf("DELETE: %d", w.Code)
	}
}

// TestUserinfoByScope: profile and email each release their own claims
// (OpenID Connect Core 1.0 §5.4); sub is always there.
func TestUserinfoByScope(t *testing.T) {
	for _, tc := range []struct {
		scope string
		want  []string
	}{
		{"openid", []string{"sub"}},
		{"openid email", []string{"sub", "email", "email_verified"}},
		{"openid profile", []string{"sub", "name"}},
		{"openid profile email", []string{"sub", "name", "email", "email_verified"}},
	} {
		t.Run(tc.scope, func(t *testing.T) {
			ts, _ := oidcServer(t, Config{})
			id, params := ts.publicClient("")
			_, q := redirectParams(t, ts.approve(ts.authorize("GET", with(params, "scope", tc.scope), "alice"), "alice", "approve"))
			_, m := ts.exchange(id, q.Get("code"), testVerifier, "http://127.0.0.1:4000/cb")
			w, body := ts.do("GET", "/oauth/userinfo", m["access_token"].(string), "", "")
			if w.Code != 200 || w.Header().Get("Content-Type") != "application/json" {
				t.Fatalf("%d %v", w.Code, body)
			}
			var got []string
			for k := range body {
				got = append(got, k)
			}
			slices.Sort(got)
			want := slices.Sorted(slices.Values(tc.want))
			if !slices.Equal(got, want) {
				t.Fatalf("claims %v, want %v", got, want)
			}
		})
	}
}

// TestOpenIDConfiguration: the discovery document has every member OpenID
// Connect Discovery 1.0 §3 requires, and what MCP clients read there.
func TestOpenIDConfiguration(t *testing.T) {
	ts, hs := oidcServer(t, Config{})
	_, m := ts.do("GET", "/.well-known/openid-configuration", "", "", "")
	for _, k := range []string{"issuer", "authorization_endpoint", "token_endpoint", "jwks_uri", "response_types_supported",
		"subject_types_supported", "id_token_signing_alg_values_supported", "userinfo_endpoint", "scopes_supported",
		"claims_supported", "code_challenge_methods_supported"} {
		if m[k] == nil {
			t.Errorf("%s missing", k)
		}
	}
	has := func(k, v string) bool {
		list, _ := m[k].([]any)
		return slices.Contains(list, any(v))
	}
	if m["issuer"] != hs.URL || m["userinfo_endpoint"] != hs.URL+"/oauth/userinfo" || !has("scopes_supported", "openid") ||
		!has("id_token_signing_alg_values_supported", "RS256") || !has("id_token_signing_alg_values_supported", "ES256") ||
		!has("subject_types_supported", "public") ||
		!has("code_challenge_methods_supported", "S256") || !has("claims_supported", "email") || has("claims_supported", "groups") ||
		!has("claims_supported", "nonce") {
		t.Fatalf("document: %v", m)
	}
	// The RFC 8414 document still says nothing about scopes when any is
	// accepted.
	_, m = ts.do("GET", "/.well-known/oauth-authorization-server", "", "", "")
	if m["scopes_supported"] != nil {
		t.Fatalf("RFC 8414 scopes_supported: %v", m["scopes_supported"])
	}
}

// TestPromptAndMaxAge: prompt=none never shows a page, prompt=consent
// always does, bad values are invalid_request, and a nonce travels through
// the code.
func TestPromptAndMaxAge(t *testing.T) {
	ts, _ := oidcServer(t, Config{})
	id, params := ts.publicClient("")
	ts.srv.cfg.TrustedClients = []string{id}
	params = with(params, "scope", "openid")

	// prompt=none with nobody signed in: login_required to the client.
	_, q := redirectParams(t, ts.authorize("GET", with(params, "prompt", "none"), ""))
	if q.Get("error") != "login_required" || q.Get("state") != "xyz" {
		t.Fatalf("prompt=none signed out: %v", q)
	}
	// prompt=none signed in, a trusted client: a code, no page.
	_, q = redirectParams(t, ts.authorize("GET", with(params, "prompt", "none", "nonce", "n1"), "alice"))
	if q.Get("code") == "" {
		t.Fatalf("prompt=none signed in: %v", q)
	}
	_, m := ts.exchange(id, q.Get("code"), testVerifier, "http://127.0.0.1:4000/cb")
	if c := decodeJWTPayload(t, m["id_token"].(string)); c["nonce"] != "n1" {
		t.Fatalf("nonce through the code: %v", c)
	}
	// prompt=consent: the page, even for a trusted client.
	if w := ts.authorize("GET", with(params, "prompt", "consent"), "alice"); w.Code != 200 || !strings.Contains(w.Body.String(), `value="approve"`) {
		t.Fatalf("prompt=consent: %d", w.Code)
	}
	// prompt=none asking for more than alice granted: consent_required.
	// The client is no longer trusted but may be redirected to, since
	// alice granted it (the grant was recorded, empty, with the trusted
	// code), so it is granted openid first.
	ts.srv.cfg.TrustedClients = nil
	_, q = redirectParams(t, ts.approve(ts.authorize("GET", params, "alice"), "alice", "approve"))
	if q.Get("code") == "" {
		t.Fatalf("approve: %v", q)
	}
	_, q = redirectParams(t, ts.authorize("GET", with(params, "prompt", "none", "scope", "openid email"), "alice"))
	if q.Get("error") != "consent_required" {
		t.Fatalf("prompt=none needing consent: %v", q)
	}
	// max_age=0 with an external authentication: it happened with this
	// request, so it is fresh.
	_, q = redirectParams(t, ts.authorize("GET", with(params, "max_age", "0"), "alice"))
	if q.Get("code") == "" {
		t.Fatalf("max_age=0: %v", q)
	}
	// prompt=login with no login of its own: this server cannot make the
	// person sign in again, and says so (login_required), never a code.
	_, q = redirectParams(t, ts.authorize("GET", with(params, "prompt", "login"), "alice"))
	if q.Get("error") != "login_required" || q.Get("code") != "" {
		t.Fatalf("prompt=login without a login block: %v", q)
	}

	// OpenID Connect requires redirect_uri even of a client with one.
	one := ts.register(`{"token_endpoint_auth_method":"none","redirect_uris":["https://one.example/cb"]}`)["client_id"].(string)
	ts.srv.cfg.TrustedClients = append(ts.srv.cfg.TrustedClients, one)
	_, q = redirectParams(t, ts.authorize("GET", with(params, "client_id", one, "redirect_uri", ""), "alice"))
	if q.Get("error") != "invalid_request" || !strings.Contains(q.Get("error_description"), "redirect_uri") {
		t.Fatalf("openid without redirect_uri: %v", q)
	}
	_, q = redirectParams(t, ts.authorize("GET", with(params, "client_id", one, "redirect_uri", "", "scope", "read"), "alice"))
	if q.Get("code") == "" {
		t.Fatalf("OAuth without redirect_uri: %v", q)
	}

	for _, bad := range []url.Values{
		with(params, "prompt", "none login"), with(params, "prompt", "bogus"),
		with(params, "max_age", "-1"), with(params, "max_age", "1e3"), with(params, "max_age", "01"),
		with(params, "nonce", strings.Repeat("n", maxNonceLen+1)),
	} {
		_, q := redirectParams(t, ts.authorize("GET", bad, "alice"))
		if q.Get("error") != "invalid_request" {
			t.Errorf("%v: %v", bad, q)
		}
	}
}

// prompt=none for a client that may not be redirected to unasked (not
// trusted, never granted by this person) is shown on a page, not sent to
// the redirect URI as OpenID Connect Core §3.1.2.6 expects: with open
// registration, that redirect would make this server an open redirector
// (RFC 9700 §4.11.2). A deliberate departure, documented in the README.
func TestPromptNoneForUngrantedClientIsShownNotRedirected(t *testing.T) {
	ts, _ := oidcServer(t, Config{})
	_, params := ts.publicClient("")
	params = with(params, "scope", "openid", "prompt", "none")
	for _, tc := range []struct{ user, code string }{
		{"alice", "consent_required"}, // signed in, never granted it
		{"", "login_required"},        // nobody signed in
	} {
		t.Run(tc.code, func(t *testing.T) {
			w := ts.authorize("GET", params, tc.user)
			if w.Code != http.StatusBadRequest || w.Header().Get("Location") != "" ||
				!strings.Contains(w.Header().Get("Content-Type"), "text/html") {
				t.Fatalf("%d %v", w.Code, w.Header())
			}
			if body := w.Body.String(); !strings.Contains(body, `href="http://127.0.0.1:4000/cb?error=`+tc.code) {
				t.Fatalf("the page lacks the link with %s:\n%s", tc.code, body)
			}
		})
	}
}

// ID tokens are signed with the client's id_token_signed_response_alg,
// RS256 when it registered none (OpenID Connect Registration 1.0 §2): a
// relying party that expects the default accepts them. go-oidc, limited to
// the expected algorithm and given only the JWKS, verifies each one and
// its at_hash; limited to the other algorithm, it refuses it.
func TestIDTokenAlgorithmPerClient(t *testing.T) {
	ts, hs := oidcServer(t, Config{})
	ctx := oidc.ClientContext(t.Context(), hs.Client())
	keys := oidc.NewRemoteKeySet(ctx, hs.URL+"/oauth/jwks")
	for _, tc := range []struct {
		name, extra, alg, other string
	}{
		{"none registered", "", "RS256", "ES256"},
		{"RS256 registered", `,"id_token_signed_response_alg":"RS256"`, "RS256", "ES256"},
		{"ES256 registered", `,"id_token_signed_response_alg":"ES256"`, "ES256", "RS256"},
		{"empty string", `,"id_token_signed_response_alg":""`, "RS256", "ES256"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, params := ts.publicClient(tc.extra)
			params = with(params, "scope", "openid email")
			_, q := redirectParams(t, ts.approve(ts.authorize("GET", params, "alice"), "alice", "approve"))
			w, m := ts.exchange(id, q.Get("code"), testVerifier, "http://127.0.0.1:4000/cb")
			assertOAuthJSON(t, w, m, 200, "")
			raw := m["id_token"].(string)
			if h := jwtHeader(t, raw); h["alg"] != tc.alg || h["typ"] != "JWT" {
				t.Fatalf("header %v, want alg %s", h, tc.alg)
			}
			cfg := &oidc.Config{ClientID: id, SupportedSigningAlgs: []string{tc.alg}, Now: func() time.Time { return ts.clock }}
			idt, err := oidc.NewVerifier(hs.URL, keys, cfg).Verify(ctx, raw)
			if err != nil {
				t.Fatalf("go-oidc refuses the %s ID token: %v", tc.alg, err)
			}
			if err := idt.VerifyAccessToken(m["access_token"].(string)); err != nil {
				t.Fatalf("at_hash: %v", err)
			}
			cfg.SupportedSigningAlgs = []string{tc.other}
			if _, err := oidc.NewVerifier(hs.URL, keys, cfg).Verify(ctx, raw); err == nil {
				t.Fatalf("go-oidc limited to %s accepts the %s ID token", tc.other, tc.alg)
			}
		})
	}
}

// Registration accepts exactly the algorithms ID tokens are signed with:
// an RP that registers another would get tokens it refuses, and "none"
// would be an unsigned token.
func TestRegistrationRefusesUnsupportedIDTokenAlgs(t *testing.T) {
	ts := newTestServer(t, Config{})
	for _, alg := range []string{`"HS256"`, `"none"`, `"PS256"`, `"rs256"`, `5`, `["RS256"]`} {
		w, m := ts.do("POST", "/oauth/register", "", "application/json",
			`{"redirect_uris":["https://app.example/cb"],"id_token_signed_response_alg":`+alg+`}`)
		assertOAuthJSON(t, w, m, http.StatusBadRequest, "invalid_client_metadata")
		if desc, _ := m["error_description"].(string); alg[0] == '"' && !strings.Contains(desc, "RS256, ES256") {
			t.Errorf("%s: description %q does not name the algorithms", alg, desc)
		}
	}
	for _, alg := range idTokenAlgs {
		m := ts.register(`{"redirect_uris":["https://app.example/cb"],"id_token_signed_response_alg":"` + alg + `"}`)
		if m["id_token_signed_response_alg"] != alg {
			t.Fatalf("registered %s, echoed %v", alg, m["id_token_signed_response_alg"])
		}
	}
}

// A client registered before registration checked the member may hold an
// algorithm this server cannot sign with: it gets the default, never an
// unsigned token.
func TestIDTokenAlgOfStoredClients(t *testing.T) {
	for _, tc := range []struct{ stored, want string }{
		{"", "RS256"}, {`"ES256"`, "ES256"}, {`"RS256"`, "RS256"}, {`"HS256"`, "RS256"}, {`"none"`, "RS256"}, {`7`, "RS256"},
	} {
		m := storage.Metadata{}
		if tc.stored != "" {
			m.Extra = map[string]json.RawMessage{memberIDTokenAlg: json.RawMessage(tc.stored)}
		}
		if got := idTokenAlg(&m); got != tc.want {
			t.Errorf("stored %s: %s, want %s", tc.stored, got, tc.want)
		}
	}
}

// id_token_hint (OpenID Connect Core 1.0 §3.1.2.1): an ID token this
// server issued names who should be signed in. The same person gets a
// code, expired hint or not; another person gets login_required; a hint
// this server did not issue, or an access token, is invalid_request.
func TestIDTokenHint(t *testing.T) {
	ts, _ := oidcServer(t, Config{})
	id, params := ts.publicClient("")
	ts.srv.cfg.TrustedClients = []string{id}
	params = with(params, "scope", "openid")
	_, q := redirectParams(t, ts.authorize("GET", params, "alice"))
	_, m := ts.exchange(id, q.Get("code"), testVerifier, "http://127.0.0.1:4000/cb")
	hint, access := m["id_token"].(string), m["access_token"].(string)

	ts.clock = ts.clock.Add(48 * time.Hour) // the hint has expired: still a hint
	_, q = redirectParams(t, ts.authorize("GET", with(params, "prompt", "none", "id_token_hint", hint), "alice"))
	if q.Get("code") == "" {
		t.Fatalf("alice with her own hint: %v", q)
	}
	_, q = redirectParams(t, ts.authorize("GET", with(params, "prompt", "none", "id_token_hint", hint), "bob"))
	if q.Get("error") != "login_required" || q.Get("code") != "" {
		t.Fatalf("bob with alice's hint: %v", q)
	}
	other, _ := oidcServer(t, Config{}) // its own keys
	oid, oparams := other.publicClient("")
	other.srv.cfg.TrustedClients = []string{oid}
	_, oq := redirectParams(t, other.authorize("GET", with(oparams, "scope", "openid"), "alice"))
	_, om := other.exchange(oid, oq.Get("code"), testVerifier, "http://127.0.0.1:4000/cb")
	tampered := hint[:len(hint)-4] + "AAAA"
	for name, bad := range map[string]string{
		"another server's ID token": om["id_token"].(string), "an access token": access,
		"a tampered ID token": tampered, "not a JWT": "hello",
	} {
		_, q = redirectParams(t, ts.authorize("GET", with(params, "id_token_hint", bad), "alice"))
		if q.Get("error") != "invalid_request" || q.Get("code") != "" {
			t.Errorf("%s as the hint: %v", name, q)
		}
	}
}
