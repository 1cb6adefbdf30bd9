package handlers

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

const testVerifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk-verifier"

func challengeOf(v string) string {
	sum := sha256.Sum256([]byte(v))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// authorize sends a request to the authorization endpoint as the person
// user ("" for nobody signed in).
func (ts *testServer) authorize(method string, params url.Values, user string) *httptest.ResponseRecorder {
	ts.t.Helper()
	var r *http.Request
	if method == "GET" {
		r = httptest.NewRequest("GET", "/oauth/authorize?"+params.Encode(), nil)
	} else {
		r = httptest.NewRequest("POST", "/oauth/authorize", strings.NewReader(params.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	repl := caddy.NewReplacer()
	if user != "" {
		repl.Set("http.auth.user.id", user)
		repl.Set("http.auth.user.email", user+"@example.com")
	}
	r = caddyhttp.PrepareRequest(r, repl, nil, nil)
	w := httptest.NewRecorder()
	if err := ts.srv.ServeHTTP(w, r, nil); err != nil {
		ts.t.Fatal(err)
	}
	return w
}

func (ts *testServer) publicClient(extra string) (string, url.Values) {
	ts.t.Helper()
	m := ts.register(`{"client_name":"Tool <b>&amp;</b>","token_endpoint_auth_method":"none","redirect_uris":["http://127.0.0.1:4000/cb","https://app.example/cb"],"grant_types":["authorization_code","refresh_token"]` + extra + `}`)
	id := m["client_id"].(string)
	return id, url.Values{
		"response_type": {"code"}, "client_id": {id}, "redirect_uri": {"http://127.0.0.1:4000/cb"},
		"state": {"xyz"}, "code_challenge": {challengeOf(testVerifier)}, "code_challenge_method": {"S256"},
		"scope": {"read"},
	}
}

func with(v url.Values, kv ...string) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			out.Del(kv[i])
		} else {
			out.Set(kv[i], kv[i+1])
		}
	}
	return out
}

var hiddenInput = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)

// approve submits the consent form found in a consent page.
func (ts *testServer) approve(page *httptest.ResponseRecorder, user, decision string) *httptest.ResponseRecorder {
	ts.t.Helper()
	form := url.Values{"decision": {decision}}
	for _, m := range hiddenInput.FindAllStringSubmatch(page.Body.String(), -1) {
		form.Add(m[1], htmlUnescape(m[2]))
	}
	return ts.authorize("POST", form, user)
}

func htmlUnescape(s string) string {
	return strings.NewReplacer("&amp;", "&", "&lt;", "<", "&gt;", ">", "&#34;", `"`, "&#39;", "'", "&#43;", "+").Replace(s)
}

func redirectParams(t *testing.T, w *httptest.ResponseRecorder) (*url.URL, url.Values) {
	t.Helper()
	if w.Code != http.StatusFound && w.Code != http.StatusSeeOther {
		t.Fatalf("not a redirect: %d %s", w.Code, w.Body)
	}
	u, err := url.Parse(w.Header().Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	return u, u.Query()
}

func (ts *testServer) exchange(clientID, code, verifier, redirect string) (*httptest.ResponseRecorder, map[string]any) {
	return ts.form("/oauth/token", "", "", url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"code_verifier": {verifier}, "redirect_uri": {redirect}, "client_id": {clientID}})
}

func TestAuthorizationCodeFlow(t *testing.T) {
	ts := newTestServer(t, Config{ScopesSupported: []string{"read", "write"}, Claims: map[string]string{"email": "{http.auth.user.email}"},
		SubjectHeader: "X-Auth-Subject"})
	id, params := ts.publicClient(`,"scope":"read write"`)

	// First time: the consent page, framed by nobody, the name escaped.
	page := ts.authorize("GET", params, "alice")
	body := page.Body.String()
	if page.Code != 200 || page.Header().Get("X-Frame-Options") != "DENY" ||
		!strings.Contains(page.Header().Get("Content-Security-Policy"), "frame-ancestors 'none'") {
		t.Fatalf("consent page: %d %v", page.Code, page.Header())
	}
	if strings.Contains(body, "<b>&amp;</b>") || !strings.Contains(body, "Tool &lt;b&gt;&amp;amp;&lt;/b&gt;") {
		t.Fatalf("client name not escaped:\n%s", body)
	}
	for _, want := range []string{`name="csrf_token"`, `value="approve"`, `value="deny"`, "<code>read</code>", "alice", "127.0.0.1:4000",
		"your account on example.com", `<meta name="viewport"`, `<html lang="en">`} {
		if !strings.Contains(body, want) {
			t.Errorf("consent page lacks %q", want)
		}
	}

	// A forged or foreign form is refused.
	forged := ts.authorize("POST", with(params, "decision", "approve", "csrf_token", "AAAA"), "alice")
	if forged.Code != http.StatusForbidden {
		t.Fatalf("forged consent: %d", forged.Code)
	}
	if w := ts.approve(page, "mallory", "approve"); w.Code != http.StatusForbidden {
		t.Fatalf("another person's form: %d", w.Code)
	}

	w := ts.approve(page, "alice", "approve")
	u, q := redirectParams(t, w)
	if u.Host != "127.0.0.1:4000" || q.Get("state") != "xyz" || q.Get("iss") != "http://example.com" || q.Get("code") == "" {
		t.Fatalf("redirect %s", u)
	}
	code := q.Get("code")

	// Wrong verifier, wrong redirect: invalid_grant (and the code is burned).
	w2, m := ts.exchange(id, code, strings.Repeat("a", 43), "http://127.0.0.1:4000/cb")
	assertOAuthJSON(t, w2, m, 400, "invalid_grant")

	// A fresh code, since that one is burned; consent is remembered now.
	w = ts.authorize("GET", params, "alice")
	_, q = redirectParams(t, w)
	code = q.Get("code")
	w2, m = ts.exchange(id, code, testVerifier, "http://127.0.0.1:4000/cb")
	assertOAuthJSON(t, w2, m, 200, "")
	access, refresh := m["access_token"].(string), m["refresh_token"].(string)
	if access == "" || refresh == "" || m["scope"] != nil && m["scope"] != "read" {
		t.Fatalf("tokens: %v", m)
	}
	status, _ := ts.gated("/api", "Bearer "+access)
	if status != http.StatusTeapot || ts.upstream.Header.Get("X-Auth-Subject") != "alice" {
		t.Fatalf("gate with a code-grant token: %d %v", status, ts.upstream.Header)
	}
	repl := ts.upstream.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if v, _ := repl.GetString("http.auth.user.email"); v != "alice@example.com" {
		t.Fatalf("extra claim placeholder: %q", v)
	}

	// Replaying the code fails and revokes what it issued.
	w2, m = ts.exchange(id, code, testVerifier, "http://127.0.0.1:4000/cb")
	assertOAuthJSON(t, w2, m, 400, "invalid_grant")
	if status, _ := ts.gated("/api", "Bearer "+access); status != 401 {
		t.Fatalf("token of a replayed code still works: %d", status)
	}
	w2, m = ts.form("/oauth/token", "", "", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}, "client_id": {id}})
	assertOAuthJSON(t, w2, m, 400, "invalid_grant")
}

func TestAuthorizationErrors(t *testing.T) {
	ts := newTestServer(t, Config{ScopesSupported: []string{"read"}})
	id, params := ts.publicClient("")
	machine, _ := ts.machineClient("")

	// Shown to the person, never redirected.
	for name, p := range map[string]url.Values{
		"unknown client":       with(params, "client_id", "nope"),
		"no client":            with(params, "client_id", ""),
		"unregistered URI":     with(params, "redirect_uri", "https://evil.example/cb"),
		"loopback, new path":   with(params, "redirect_uri", "http://127.0.0.1:4000/other"),
		"loopback, userinfo":   with(params, "redirect_uri", "http://user@127.0.0.1:9999/cb"),
		"loopback, port 0":     with(params, "redirect_uri", "http://127.0.0.1:0/cb"),
		"loopback, port 99999": with(params, "redirect_uri", "http://127.0.0.1:99999/cb"),
		"repeated parameter":   func() url.Values { v := with(params); v.Add("state", "2"); return v }(),
		"ambiguous redirect":   with(params, "redirect_uri", ""),
	} {
		w := ts.authorize("GET", p, "alice")
		if w.Code != 400 || w.Header().Get("Location") != "" || !strings.Contains(w.Header().Get("Content-Type"), "text/html") {
			t.Errorf("%s: %d %v", name, w.Code, w.Header())
		}
	}
	// Redirected with error, state and iss, for a client the person
	// already granted (see TestNoUnaskedRedirectToUntrustedClients).
	_, q := redirectParams(t, ts.approve(ts.authorize("GET", params, "bob"), "bob", "approve"))
	if q.Get("code") == "" {
		t.Fatal("bob's grant")
	}
	for name, tc := range map[string]struct {
		p    url.Values
		code string
	}{
		"no PKCE":          {with(params, "code_challenge", "", "code_challenge_method", ""), "invalid_request"},
		"plain PKCE":       {with(params, "code_challenge_method", "plain"), "invalid_request"},
		"short challenge":  {with(params, "code_challenge", "abc"), "invalid_request"},
		"token response":   {with(params, "response_type", "token"), "unsupported_response_type"},
		"no response type": {with(params, "response_type", ""), "invalid_request"},
		"unknown scope":    {with(params, "scope", "admin"), "invalid_scope"},
		"foreign resource": {with(params, "resource", "https://elsewhere.example/"), "invalid_target"},
	} {
		w := ts.authorize("GET", tc.p, "bob")
		_, q := redirectParams(t, w)
		if q.Get("error") != tc.code || q.Get("state") != "xyz" || q.Get("iss") != "http://example.com" || q.Get("code") != "" {
			t.Errorf("%s: %v", name, q)
		}
	}
	// A client_credentials client cannot use this endpoint.
	mm, _ := ts.store.Client(t.Context(), machine)
	_ = mm
	w := ts.authorize("GET", with(params, "client_id", machine), "alice")
	if w.Code != 400 {
		t.Errorf("machine client without redirect URIs: %d", w.Code)
	}
	// Any loopback port matches (RFC 8252 §7.3).
	w = ts.authorize("GET", with(params, "redirect_uri", "http://127.0.0.1:51789/cb"), "alice")
	if w.Code != 200 {
		t.Errorf("loopback with another port: %d", w.Code)
	}
	// Nobody signed in: a page, no code.
	w = ts.authorize("GET", params, "")
	if w.Code != 401 || w.Header().Get("Location") != "" {
		t.Errorf("no user: %d", w.Code)
	}
	// Denied: access_denied back to the client.
	page := ts.authorize("GET", params, "alice")
	_, q = redirectParams(t, ts.approve(page, "alice", "deny"))
	if q.Get("error") != "access_denied" || q.Get("state") != "xyz" {
		t.Errorf("deny: %v", q)
	}
	_ = id
}

func TestTrustedClientSkipsConsent(t *testing.T) {
	ts := newTestServer(t, Config{})
	id, params := ts.publicClient("")
	ts.srv.cfg.TrustedClients = []string{id}
	_, q := redirectParams(t, ts.authorize("GET", params, "bob"))
	if q.Get("code") == "" {
		t.Fatalf("trusted client asked for consent: %v", q)
	}
}

func TestCodeExpiresAndIsBound(t *testing.T) {
	ts := newTestServer(t, Config{})
	id, params := ts.publicClient("")
	other, _ := ts.publicClient("")
	ts.srv.cfg.TrustedClients = []string{id}
	code := func() string {
		_, q := redirectParams(t, ts.authorize("GET", params, "bob"))
		return q.Get("code")
	}
	c := code()
	ts.clock = ts.clock.Add(61 * time.Second)
	w, m := ts.exchange(id, c, testVerifier, "http://127.0.0.1:4000/cb")
	assertOAuthJSON(t, w, m, 400, "invalid_grant")
	ts.clock = fixedNow
	w, m = ts.exchange(other, code(), testVerifier, "http://127.0.0.1:4000/cb")
	assertOAuthJSON(t, w, m, 400, "invalid_grant")
	w, m = ts.exchange(id, code(), testVerifier, "http://127.0.0.1:9/cb")
	assertOAuthJSON(t, w, m, 400, "invalid_grant")
	w, m = ts.exchange(id, code(), testVerifier, "http://127.0.0.1:4000/cb")
	assertOAuthJSON(t, w, m, 200, "")
}

func TestGrantsListAndRevoke(t *testing.T) {
	ts := newTestServer(t, Config{})
	id, params := ts.publicClient("")
	page := ts.authorize("GET", params, "carol")
	_, q := redirectParams(t, ts.approve(page, "carol", "approve"))
	_, m := ts.exchange(id, q.Get("code"), testVerifier, "http://127.0.0.1:4000/cb")
	access := m["access_token"].(string)

	list := func(accept string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", "/oauth/grants", nil)
		r.Header.Set("Accept", accept)
		repl := caddy.NewReplacer()
		repl.Set("http.auth.user.id", "carol")
		r = caddyhttp.PrepareRequest(r, repl, nil, nil)
		w := httptest.NewRecorder()
		_ = ts.srv.ServeHTTP(w, r, nil)
		return w
	}
	w := list("application/json")
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"client_id":"`+id+`"`) {
		t.Fatalf("grants JSON: %d %s", w.Code, w.Body)
	}
	html := list("text/html")
	if html.Code != 200 || !strings.Contains(html.Body.String(), "Tool &lt;b&gt;") || !strings.Contains(html.Body.String(), `name="csrf_token"`) {
		t.Fatalf("grants page: %d %s", html.Code, html.Body)
	}

	r := httptest.NewRequest("DELETE", "/oauth/grants/"+id, nil)
	repl := caddy.NewReplacer()
	repl.Set("http.auth.user.id", "carol")
	r = caddyhttp.PrepareRequest(r, repl, nil, nil)
	dw := httptest.NewRecorder()
	_ = ts.srv.ServeHTTP(dw, r, nil)
	if dw.Code != 204 {
		t.Fatalf("delete grant: %d %s", dw.Code, dw.Body)
	}
	if status, _ := ts.gated("/api", "Bearer "+access); status != 401 {
		t.Fatalf("token survived revoking the grant: %d", status)
	}
	// Consent is asked again.
	if w := ts.authorize("GET", params, "carol"); w.Code != 200 {
		t.Fatalf("after revoking, no consent page: %d", w.Code)
	}
}

func TestReservedClaimNames(t *testing.T) {
	// Any case: encoding/json matches "Scope" to the scope field, so such a
	// claim would overwrite the token's scope when the gate decodes it.
	for _, name := range []string{"sub", "Scope", "EXP", "active", "Token_Type"} {
		if !IsReservedClaim(name) {
			t.Errorf("a claim named %s is not reserved", name)
		}
	}
	if IsReservedClaim("email") {
		t.Error("email is reserved")
	}
	// A token that carries such a member anyway (signed elsewhere with our
	// key) keeps it out of Extra, so it reaches no placeholder or answer.
	var c accessClaims
	if err := json.Unmarshal([]byte(`{"scope":"read","SCOPE":"admin","email":"a@b"}`), &c); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Extra["SCOPE"]; ok || c.Extra["email"] != "a@b" {
		t.Fatalf("extra claims %v", c.Extra)
	}
}

// TestCodeSurvivesFailedClientAuthentication: golang.org/x/oauth2 retries a
// failed exchange with its other client authentication style; the first,
// refused attempt must not burn the code.
func TestCodeSurvivesFailedClientAuthentication(t *testing.T) {
	ts := newTestServer(t, Config{Claims: map[string]string{"email": "{http.auth.user.email}"}})
	m := ts.register(`{"redirect_uris":["https://app.example/cb"],"grant_types":["authorization_code"],"client_name":"Web"}`)
	id, secret := m["client_id"].(string), m["client_secret"].(string)
	ts.srv.cfg.TrustedClients = []string{id}
	params := url.Values{"response_type": {"code"}, "client_id": {id}, "redirect_uri": {"https://app.example/cb"},
		"code_challenge": {challengeOf(testVerifier)}, "code_challenge_method": {"S256"}}
	_, q := redirectParams(t, ts.authorize("GET", params, "erin"))
	form := url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "code_verifier": {testVerifier},
		"redirect_uri": {"https://app.example/cb"}}
	// client_secret_post for a client_secret_basic client: refused.
	w, got := ts.form("/oauth/token", "", "", with(form, "client_id", id, "client_secret", secret))
	assertOAuthJSON(t, w, got, 401, "invalid_client")
	// The retry in the registered style succeeds with the same code.
	w, got = ts.form("/oauth/token", id, secret, form)
	assertOAuthJSON(t, w, got, 200, "")
	if _, ok := got["refresh_token"]; ok {
		t.Error("a refresh token for a client that did not register refresh_token")
	}
	// Introspection carries the grant's extra claims.
	w, got = ts.form("/oauth/introspect", id, secret, url.Values{"token": {got["access_token"].(string)}})
	if got["active"] != true || got["sub"] != "erin" || got["email"] != "erin@example.com" {
		t.Fatalf("introspection %v", got)
	}
}

func TestClaimsAreBounded(t *testing.T) {
	ts := newTestServer(t, Config{Claims: map[string]string{"groups": "{http.auth.user.groups}"}})
	id, params := ts.publicClient("")
	ts.srv.cfg.TrustedClients = []string{id}
	r := httptest.NewRequest("GET", "/oauth/authorize?"+params.Encode(), nil)
	repl := caddy.NewReplacer()
	repl.Set("http.auth.user.id", "frank")
	repl.Set("http.auth.user.groups", strings.Repeat("g", 5000))
	r = caddyhttp.PrepareRequest(r, repl, nil, nil)
	w := httptest.NewRecorder()
	_ = ts.srv.ServeHTTP(w, r, nil)
	_, q := redirectParams(t, w)
	if q.Get("error") != "server_error" || q.Get("code") != "" {
		t.Fatalf("oversized claims: %v", q)
	}
}

// With open registration anyone can register https://evil.example/phish
// and send a signed-in person to the authorization endpoint with a bad
// request: the server redirected there at once, with no interaction (RFC
// 9700 §4.11.2). A client that has not earned it gets a page instead, with
// a link the person may choose to follow.
func TestNoUnaskedRedirectToUntrustedClients(t *testing.T) {
	ts := newTestServer(t, Config{})
	m := ts.register(`{"token_endpoint_auth_method":"none","redirect_uris":["https://evil.example/phish"]}`)
	id := m["client_id"].(string)
	bad := url.Values{"client_id": {id}, "redirect_uri": {"https://evil.example/phish"}, "response_type": {"token"}, "state": {"s"}}
	for _, user := range []string{"alice", ""} {
		w := ts.authorize("GET", bad, user)
		body := w.Body.String()
		if w.Code != http.StatusBadRequest || w.Header().Get("Location") != "" {
			t.Fatalf("user %q: %d, Location %q", user, w.Code, w.Header().Get("Location"))
		}
		if !strings.Contains(body, `href="https://evil.example/phish?error=unsupported_response_type`) ||
			!strings.Contains(body, "only response_type=code is supported") || !strings.Contains(body, "Return to the application at evil.example") {
			t.Fatalf("user %q: the page lacks the error or the link:\n%s", user, body)
		}
	}

	// The operator's trusted clients keep the plain redirect.
	trusted := newTestServer(t, Config{})
	tid, params := trusted.publicClient("")
	trusted.srv.cfg.TrustedClients = []string{tid}
	_, q := redirectParams(t, trusted.authorize("GET", with(params, "response_type", "token"), "alice"))
	if q.Get("error") != "unsupported_response_type" {
		t.Fatalf("trusted client: %v", q)
	}
}

// A person or an extra claim with bytes that are not UTF-8 text got tokens
// the gate then refused (the JSON encoder writes them as U+FFFD, which the
// token parser refuses): such an identity is refused at the authorization
// endpoint instead.
func TestIdentityMustBeTokenSafe(t *testing.T) {
	ts := newTestServer(t, Config{Claims: map[string]string{"email": "{http.auth.user.email}"}})
	_, params := ts.publicClient("")
	for _, user := range []string{"al\xffice", "al\x00ice", "al\uFFFDice"} {
		if w := ts.authorize("GET", params, user); w.Code != http.StatusBadRequest || w.Header().Get("Location") != "" {
			t.Errorf("user %q: %d", user, w.Code)
		}
	}
	if !tokenSafe("zoë@example.com") || tokenSafe("a\xff") {
		t.Fatal("tokenSafe")
	}
}

// A redirect URI whose host imitates another in a different script shows
// its punycode on the consent page.
func TestConsentShowsLookAlikeHostsAsPunycode(t *testing.T) {
	ts := newTestServer(t, Config{})
	m := ts.register(`{"token_endpoint_auth_method":"none","redirect_uris":["https://аpple.com/cb"]}`)
	params := url.Values{"response_type": {"code"}, "client_id": {m["client_id"].(string)}, "redirect_uri": {"https://аpple.com/cb"},
		"code_challenge": {challengeOf(testVerifier)}, "code_challenge_method": {"S256"}}
	page := ts.authorize("GET", params, "alice").Body.String()
	if !strings.Contains(page, "sent back to <strong>xn--pple-43d.com</strong>") {
		t.Fatalf("the look-alike host is shown as is:\n%s", page)
	}
}

// TestAuthorizationRequestsOutsideTheGrammar: a request object (RFC 9101)
// is refused rather than ignored, since the client meant it to override
// the query; state must be VSCHAR (RFC 6749 Appendix A.5); a query that
// does not parse is refused rather than read without its bad pairs.
func TestAuthorizationRequestsOutsideTheGrammar(t *testing.T) {
	ts := newTestServer(t, Config{})
	id, params := ts.publicClient("")
	ts.srv.cfg.TrustedClients = []string{id}
	for _, tc := range []struct{ param, value, wantErr string }{
		{"request", "eyJhbGciOiJub25lIn0.e30.", "request_not_supported"},
		{"request_uri", "https://app.example/req.jwt", "request_uri_not_supported"},
		{"state", "caf\u00e9", "invalid_request"},
		{"state", "a\nb", "invalid_request"},
	} {
		_, q := redirectParams(t, ts.authorize("GET", with(params, tc.param, tc.value), "erin"))
		if q.Get("error") != tc.wantErr || q.Get("code") != "" {
			t.Errorf("%s=%q: %v, want %s", tc.param, tc.value, q, tc.wantErr)
		}
	}
	r := httptest.NewRequest("GET", "/oauth/authorize?"+params.Encode()+"&scope=%zz", nil)
	repl := caddy.NewReplacer()
	repl.Set("http.auth.user.id", "erin")
	r = caddyhttp.PrepareRequest(r, repl, nil, nil)
	w := httptest.NewRecorder()
	_ = ts.srv.ServeHTTP(w, r, nil)
	if w.Code != http.StatusBadRequest || w.Header().Get("Location") != "" {
		t.Fatalf("malformed query: %d %q", w.Code, w.Header().Get("Location"))
	}
}

// RFC 6749 §4.1.3: the token request must repeat redirect_uri only if the
// authorization request sent it. A code issued without it once failed
// every exchange that left it out, and burned itself doing so.
func TestRedirectURIAtTokenOnlyIfSentToAuthorize(t *testing.T) {
	ts := newTestServer(t, Config{})
	m := ts.register(`{"token_endpoint_auth_method":"none","redirect_uris":["https://app.example/cb"],"grant_types":["authorization_code"]}`)
	id := m["client_id"].(string)
	ts.srv.cfg.TrustedClients = []string{id}
	sent := url.Values{"response_type": {"code"}, "client_id": {id}, "redirect_uri": {"https://app.example/cb"},
		"code_challenge": {challengeOf(testVerifier)}, "code_challenge_method": {"S256"}}
	omitted := with(sent, "redirect_uri", "")
	code := func(params url.Values) string {
		t.Helper()
		u, q := redirectParams(t, ts.authorize("GET", params, "alice"))
		if u.Host != "app.example" || q.Get("code") == "" {
			t.Fatalf("authorize: %s", u)
		}
		return q.Get("code")
	}
	for _, tc := range []struct {
		name      string
		authorize url.Values
		token     string // redirect_uri at the token endpoint, "" for none
		status    int
	}{
		{"left out both times", omitted, "", 200},
		{"left out, then the registered one", omitted, "https://app.example/cb", 200},
		{"left out, then another", omitted, "https://app.example/other", 400},
		{"sent both times", sent, "https://app.example/cb", 200},
		{"sent, then left out", sent, "", 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, m := ts.exchange(id, code(tc.authorize), testVerifier, tc.token)
			want := ""
			if tc.status != 200 {
				want = "invalid_grant"
			}
			assertOAuthJSON(t, w, m, tc.status, want)
		})
	}
	// Without the parameter at all, not merely empty.
	c := code(omitted)
	w, m := ts.form("/oauth/token", "", "", url.Values{"grant_type": {"authorization_code"}, "code": {c},
		"code_verifier": {testVerifier}, "client_id": {id}})
	assertOAuthJSON(t, w, m, 200, "")
}

// A token request that is malformed on its face is refused before the
// code is consumed, so the client's corrected retry still finds it.
func TestMalformedCodeExchangeKeepsTheCode(t *testing.T) {
	ts := newTestServer(t, Config{})
	id, params := ts.publicClient("")
	ts.srv.cfg.TrustedClients = []string{id}
	_, q := redirectParams(t, ts.authorize("GET", params, "alice"))
	code := q.Get("code")
	for name, verifier := range map[string]string{
		"no verifier":       "",
		"short verifier":    "abc",
		"verifier with +":   strings.Repeat("a", 42) + "+",
		"verifier too long": strings.Repeat("a", 129),
	} {
		t.Run(name, func(t *testing.T) {
			w, m := ts.exchange(id, code, verifier, "http://127.0.0.1:4000/cb")
			assertOAuthJSON(t, w, m, 400, "invalid_request")
		})
	}
	w, m := ts.exchange(id, code, testVerifier, "http://127.0.0.1:4000/cb")
	assertOAuthJSON(t, w, m, 200, "")
}

// OpenID Connect Core 1.0 §3.1.2.1: the authorization endpoint accepts the
// request as a form POST as well as a GET. Every POST was once taken for
// the consent form and refused as an expired one.
func TestAuthorizationRequestByPost(t *testing.T) {
	ts := newTestServer(t, Config{})
	id, params := ts.publicClient("")

	// As the GET: the consent page, whose form then works.
	page := ts.authorize("POST", params, "alice")
	if page.Code != 200 || !strings.Contains(page.Body.String(), `name="csrf_token"`) {
		t.Fatalf("POST authorization request: %d %s", page.Code, page.Body)
	}
	_, q := redirectParams(t, ts.approve(page, "alice", "approve"))
	if q.Get("code") == "" || q.Get("state") != "xyz" {
		t.Fatalf("approved: %v", q)
	}
	ts.codeTokens(id, q.Get("code"))

	// Granted already: a code at once, as the GET gives.
	w := ts.authorize("POST", params, "alice")
	if w.Code != http.StatusSeeOther {
		t.Fatalf("granted client by POST: %d", w.Code)
	}
	if _, q = redirectParams(t, w); q.Get("code") == "" {
		t.Fatalf("granted client by POST: %v", q)
	}

	// Errors as for the GET: shown, or redirected for a granted client.
	if w := ts.authorize("POST", with(params, "redirect_uri", "https://evil.example/cb"), "alice"); w.Code != 400 || w.Header().Get("Location") != "" {
		t.Fatalf("unregistered redirect URI by POST: %d %v", w.Code, w.Header())
	}
	if _, q := redirectParams(t, ts.authorize("POST", with(params, "response_type", "token"), "alice")); q.Get("error") != "unsupported_response_type" {
		t.Fatalf("bad response_type by POST: %v", q)
	}
}

// A POST carrying either consent-form field is the consent form, and must
// pass the CSRF check; leaving the token out does not make it a plain
// authorization request that goes on to issue a code.
func TestConsentFormFieldsRequireCSRF(t *testing.T) {
	ts := newTestServer(t, Config{})
	_, params := ts.publicClient("")
	for name, p := range map[string]url.Values{
		"decision, no token":    with(params, "decision", "approve"),
		"decision, bad token":   with(params, "decision", "approve", "csrf_token", "AAAA"),
		"token only, bad":       with(params, "csrf_token", "AAAA"),
		"decision, empty token": func() url.Values { v := with(params, "decision", "approve"); v.Set("csrf_token", ""); return v }(),
	} {
		t.Run(name, func(t *testing.T) {
			w := ts.authorize("POST", p, "alice")
			if w.Code != http.StatusForbidden || w.Header().Get("Location") != "" {
				t.Fatalf("%d %v", w.Code, w.Header())
			}
		})
	}
	// The same fields in a GET are no consent: the page is shown again.
	if w := ts.authorize("GET", with(params, "decision", "approve"), "alice"); w.Code != 200 || w.Header().Get("Location") != "" {
		t.Fatalf("decision in a GET: %d %v", w.Code, w.Header())
	}
}
