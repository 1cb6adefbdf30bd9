package handlers

import (
	"encoding/base64"
	"fmt"
	"html"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/golang-jwt/jwt/v5"
	"github.com/oauth2-proxy/mockoidc"

	"github.com/caddy-dcr/caddy-dcr/internal/login"
	"github.com/caddy-dcr/caddy-dcr/internal/ratelimit"
)

// startMockOIDC runs mockoidc, a real OpenID Connect provider, on loopback.
func startMockOIDC(t *testing.T) *mockoidc.MockOIDC {
	t.Helper()
	m, err := mockoidc.Run()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Shutdown() })
	return m
}

// loginServer is an oidcServer whose people sign in through m with the
// login "corp" (cfg's rules; allow_domain example.com when it has none).
func loginServer(t *testing.T, m *mockoidc.MockOIDC, lc login.Config) (*testServer, *httptest.Server) {
	t.Helper()
	lc.Kind, lc.Name, lc.Issuer = login.KindOIDC, "corp", m.Issuer()
	lc.ClientID, lc.ClientSecret = m.ClientID, m.ClientSecret
	if !lc.AllowAny && len(lc.AllowDomain)+len(lc.AllowEmail)+len(lc.AllowSubject)+len(lc.AllowGroup) == 0 {
		lc.AllowDomain = []string{"example.com"}
	}
	l, err := login.New(lc)
	if err != nil {
		t.Fatal(err)
	}
	return oidcServer(t, Config{Logins: []*login.Login{l}, Claims: map[string]string{
		"email": "{http.auth.user.email}", "email_verified": "{http.auth.user.email_verified}"}})
}

// browser is a cookie-keeping HTTP client that stops at the first
// redirect for which stop says so.
func browser(t *testing.T, stop func(*url.URL) bool) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 10 * time.Second, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if stop(req.URL) {
			return http.ErrUseLastResponse
		}
		return nil
	}}
}

func toClient(u *url.URL) bool { return u.Host == "127.0.0.1:4000" }

func get(t *testing.T, c *http.Client, u string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp, b.String()
}

// consent posts the consent form of page as c and returns the client's
// redirect.
func consent(t *testing.T, c *http.Client, hs *httptest.Server, page string) *url.URL {
	t.Helper()
	form := url.Values{"decision": {"approve"}}
	for _, m := range hiddenInput.FindAllStringSubmatch(page, -1) {
		form.Add(m[1], htmlUnescape(m[2]))
	}
	resp, err := c.PostForm(hs.URL+"/oauth/authorize", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := resp.Location()
	if err != nil {
		t.Fatalf("consent: %d, no redirect", resp.StatusCode)
	}
	return loc
}

// TestLoginThroughOIDCProvider: nobody signed in at the authorization
// endpoint, so the person goes to the upstream (mockoidc), comes back to
// the callback, gets a session, sees the consent page as the upstream's
// person, and the client's tokens name them by the namespaced subject with
// the upstream's email as a claim.
func TestLoginThroughOIDCProvider(t *testing.T) {
	m := startMockOIDC(t)
	ts, hs := loginServer(t, m, login.Config{})
	id, params := ts.publicClient("")
	params = with(params, "scope", "openid email", "nonce", "client-nonce")
	c := browser(t, toClient)

	resp, page := get(t, c, hs.URL+"/oauth/authorize?"+params.Encode())
	if resp.StatusCode != 200 || !strings.Contains(page, `value="approve"`) || !strings.Contains(page, "corp:1234567890") {
		t.Fatalf("after the upstream: %d\n%s", resp.StatusCode, page)
	}
	var session *http.Cookie
	for _, ck := range c.Jar.Cookies(mustParse(t, hs.URL)) {
		if ck.Name == sessionCookie {
			session = ck
		}
	}
	if session == nil {
		t.Fatal("no session cookie")
	}
	loc := consent(t, c, hs, page)
	code := loc.Query().Get("code")
	w, tok := ts.exchange(id, code, testVerifier, "http://127.0.0.1:4000/cb")
	assertOAuthJSON(t, w, tok, 200, "")
	claims := decodeJWTPayload(t, tok["id_token"].(string))
	if claims["sub"] != "corp:1234567890" || claims["email"] != "jane.doe@example.com" || claims["email_verified"] != true ||
		claims["nonce"] != "client-nonce" {
		t.Fatalf("ID token: %v", claims)
	}
	if at, ok := claims["auth_time"].(float64); !ok || at == 0 {
		t.Fatalf("auth_time: %v", claims)
	}

	// Signed in: the next authorization goes straight to the client.
	resp, _ = get(t, c, hs.URL+"/oauth/authorize?"+params.Encode())
	if resp.StatusCode != http.StatusFound || !toClient(mustLocation(t, resp)) {
		t.Fatalf("second authorization: %d", resp.StatusCode)
	}

	// Logout ends the session everywhere: the old cookie no longer works.
	// It takes the form: a link from elsewhere does not sign out, nor
	// does a post without the form's token.
	resp, page = get(t, c, hs.URL+"/oauth/logout")
	token := regexp.MustCompile(`name="csrf_token" value="([^"]+)"`).FindStringSubmatch(page)
	if resp.StatusCode != 200 || token == nil {
		t.Fatalf("logout page: %d\n%s", resp.StatusCode, page)
	}
	if resp, _ := c.PostForm(hs.URL+"/oauth/logout", url.Values{"csrf_token": {"forged"}}); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a forged sign-out: %d", resp.StatusCode)
	}
	if resp, _ := get(t, c, hs.URL+"/oauth/authorize?"+params.Encode()); resp.StatusCode != http.StatusFound || !toClient(mustLocation(t, resp)) {
		t.Fatalf("signed out by a link or a forged form: %d", resp.StatusCode)
	}
	resp, err := c.PostForm(hs.URL+"/oauth/logout", url.Values{"csrf_token": {html.UnescapeString(token[1])}})
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("logout: %v %v", resp, err)
	}
	resp.Body.Close()
	replay := browser(t, func(*url.URL) bool { return true })
	replay.Jar.SetCookies(mustParse(t, hs.URL), []*http.Cookie{session})
	resp, _ = get(t, replay, hs.URL+"/oauth/authorize?"+params.Encode())
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(mustLocation(t, resp).String(), m.Issuer()) {
		t.Fatalf("a logged-out session still signs in: %d %v", resp.StatusCode, resp.Header)
	}
}

func mustParse(t *testing.T, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func mustLocation(t *testing.T, resp *http.Response) *url.URL {
	t.Helper()
	u, err := resp.Location()
	if err != nil {
		t.Fatalf("no Location: %d", resp.StatusCode)
	}
	return u
}

// callbackURL runs an authorization as c up to the upstream's redirect to
// our callback, and returns that callback URL unvisited.
func upstreamCallback(t *testing.T, c *http.Client, hs *httptest.Server, params url.Values) *url.URL {
	t.Helper()
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), hs.URL+"/oauth/callback/") {
			return http.ErrUseLastResponse
		}
		return nil
	}
	resp, body := get(t, c, hs.URL+"/oauth/authorize?"+params.Encode())
	u, err := resp.Location()
	if err != nil || !strings.HasPrefix(u.String(), hs.URL+"/oauth/callback/corp") {
		t.Fatalf("no callback: %d %v\n%s", resp.StatusCode, err, body)
	}
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if toClient(req.URL) {
			return http.ErrUseLastResponse
		}
		return nil
	}
	return u
}

// tamperedUser is mockoidc's user with its ID token claims changed.
type tamperedUser struct {
	*mockoidc.MockUser
	tamper func(*mockoidc.IDTokenClaims)
}

func (u tamperedUser) Claims(scope []string, c *mockoidc.IDTokenClaims) (jwt.Claims, error) {
	u.tamper(c)
	return u.MockUser.Claims(scope, c)
}

// TestLoginSecurity: each way an answer from the upstream (or a cookie)
// can be wrong, and that nothing is signed in when it is.
func TestLoginSecurity(t *testing.T) {
	m := startMockOIDC(t)
	ts, hs := loginServer(t, m, login.Config{})
	_, params := ts.publicClient("")
	params = with(params, "scope", "openid email")

	refused := func(t *testing.T, c *http.Client, u string, status int, want string) {
		t.Helper()
		resp, body := get(t, c, u)
		if resp.StatusCode != status || !strings.Contains(body, want) {
			t.Fatalf("%d, want %d with %q:\n%s", resp.StatusCode, status, want, body)
		}
		for _, ck := range resp.Cookies() {
			if ck.Name == sessionCookie && ck.MaxAge >= 0 {
				t.Fatalf("a session was set: %v", ck)
			}
		}
	}
	withUser := func(u mockoidc.User) { m.QueueUser(u) }
	jane := func() *mockoidc.MockUser { return mockoidc.DefaultUser() }

	t.Run("state mismatch", func(t *testing.T) {
		c := browser(t, toClient)
		cb := upstreamCallback(t, c, hs, params)
		q := cb.Query()
		q.Set("state", "not-the-state")
		cb.RawQuery = q.Encode()
		refused(t, c, cb.String(), 400, "expired or was already used")
	})
	t.Run("callback replayed", func(t *testing.T) {
		c := browser(t, toClient)
		cb := upstreamCallback(t, c, hs, params)
		if resp, _ := get(t, c, cb.String()); resp.StatusCode != 200 {
			t.Fatalf("first callback: %d", resp.StatusCode)
		}
		refused(t, c, cb.String(), 400, "expired or was already used")
	})
	t.Run("callback in another browser", func(t *testing.T) {
		cb := upstreamCallback(t, browser(t, toClient), hs, params)
		refused(t, browser(t, toClient), cb.String(), 400, "started in another browser")
	})
	t.Run("nonce replay", func(t *testing.T) {
		// The person's browser is made to carry another sign-in's nonce
		// to the upstream: the ID token comes back with it and is
		// refused.
		c := browser(t, toClient)
		c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
			if strings.HasPrefix(req.URL.String(), m.AuthorizationEndpoint()) {
				q := req.URL.Query()
				q.Set("nonce", "an-old-nonce")
				req.URL.RawQuery = q.Encode()
			}
			if toClient(req.URL) {
				return http.ErrUseLastResponse
			}
			return nil
		}
		refused(t, c, hs.URL+"/oauth/authorize?"+params.Encode(), 502, "could not be verified")
	})
	for _, tc := range []struct {
		name   string
		tamper func(*mockoidc.IDTokenClaims)
	}{
		{"another audience", func(c *mockoidc.IDTokenClaims) { c.Audience = jwt.ClaimStrings{"someone-else"} }},
		{"another issuer", func(c *mockoidc.IDTokenClaims) { c.Issuer = "https://evil.example" }},
		{"expired", func(c *mockoidc.IDTokenClaims) {
			c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-time.Hour))
			c.IssuedAt = jwt.NewNumericDate(time.Now().Add(-2 * time.Hour))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			withUser(tamperedUser{jane(), tc.tamper})
			refused(t, browser(t, toClient), hs.URL+"/oauth/authorize?"+params.Encode(), 502, "could not be verified")
		})
	}
	t.Run("email not verified", func(t *testing.T) {
		u := jane()
		u.EmailVerified = false
		withUser(u)
		refused(t, browser(t, toClient), hs.URL+"/oauth/authorize?"+params.Encode(), 403, "is not allowed")
	})
	t.Run("outside the rules", func(t *testing.T) {
		u := jane()
		u.Email = "mallory@other.example"
		withUser(u)
		refused(t, browser(t, toClient), hs.URL+"/oauth/authorize?"+params.Encode(), 403, "mallory@other.example")
	})
	t.Run("tampered cookie", func(t *testing.T) {
		c := browser(t, toClient)
		get(t, c, hs.URL+"/oauth/authorize?"+params.Encode())
		var jar []*http.Cookie
		for _, ck := range c.Jar.Cookies(mustParse(t, hs.URL)) {
			if ck.Name == sessionCookie {
				b := []byte(ck.Value)
				b[len(b)/2] ^= 1
				ck.Value = string(b)
				jar = append(jar, ck)
			}
		}
		if len(jar) == 0 {
			t.Fatal("no session")
		}
		forged := browser(t, func(*url.URL) bool { return true })
		forged.Jar.SetCookies(mustParse(t, hs.URL), append(jar, &http.Cookie{Name: sessionCookie, Value: "forged"}))
		resp, _ := get(t, forged, hs.URL+"/oauth/authorize?"+params.Encode())
		if resp.StatusCode != http.StatusFound || !strings.HasPrefix(mustLocation(t, resp).String(), m.Issuer()) {
			t.Fatalf("a tampered cookie signs in: %d", resp.StatusCode)
		}
	})
	t.Run("open redirect through the return", func(t *testing.T) {
		c := browser(t, func(*url.URL) bool { return true })
		for _, bad := range []string{
			"/oauth/login/corp?" + with(params, "redirect_uri", "https://evil.example/cb").Encode(),
			"/oauth/login/corp?return=https://evil.example",
		} {
			resp, _ := get(t, c, hs.URL+bad)
			if resp.StatusCode != 400 {
				t.Fatalf("%s: %d %v", bad, resp.StatusCode, resp.Header.Get("Location"))
			}
		}
		// What comes back from the callback is always the authorization
		// endpoint, with the request as it was validated.
		c = browser(t, toClient)
		cb := upstreamCallback(t, c, hs, params)
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		resp, _ := get(t, c, cb.String())
		if loc := mustLocation(t, resp); resp.StatusCode != http.StatusSeeOther || loc.Path != "/oauth/authorize" || loc.Host != "" && loc.Host != mustParse(t, hs.URL).Host {
			t.Fatalf("callback went to %v", loc)
		}
	})
}

// TestLoginConfigNeedsARule: a login with no allow rule does not load
// unless it says allow_any.
func TestLoginConfigNeedsARule(t *testing.T) {
	_, err := login.New(login.Config{Kind: login.KindOIDC, Name: "google", Issuer: "https://accounts.google.com", ClientID: "x"})
	if err == nil || !strings.Contains(err.Error(), "allow_email, allow_domain, allow_subject, allow_group, allow_any") {
		t.Fatalf("no rule: %v", err)
	}
	_, err = login.New(login.Config{Kind: login.KindGitHub, Name: "gh", ClientID: "x"})
	if err == nil || !strings.Contains(err.Error(), "allow_user, allow_org, allow_team, allow_any") {
		t.Fatalf("no github rule: %v", err)
	}
	if _, err := login.New(login.Config{Kind: login.KindOIDC, Name: "google", Issuer: "https://accounts.google.com", ClientID: "x", AllowAny: true}); err != nil {
		t.Fatal(err)
	}
}

// TestSessionCookieAttributes: HttpOnly and SameSite=Lax always; Secure and
// the __Host- prefix on https, which an https issuer also says (TLS ended
// by a proxy in front of Caddy).
func TestSessionCookieAttributes(t *testing.T) {
	for _, tc := range []struct {
		target, issuer string
		secure         bool
	}{
		{"http://example.com/", "", false},
		{"https://example.com/", "", true}, // httptest sets r.TLS
		{"http://example.com/", "https://example.com", true},
	} {
		s := &Server{cfg: Config{Issuer: tc.issuer}}
		r := httptest.NewRequest("GET", tc.target, nil)
		w := httptest.NewRecorder()
		s.setCookie(w, r, sessionCookie, "v", 60)
		ck := w.Result().Cookies()[0]
		wantName := sessionCookie
		if tc.secure {
			wantName = "__Host-" + sessionCookie
		}
		if ck.Name != wantName || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Secure != tc.secure || ck.Path != "/" || ck.Domain != "" {
			t.Fatalf("%+v: %+v", tc, ck)
		}
	}
}

// TestPromptLoginAndMaxAgeRenewTheSession: with a session, prompt=login
// and a max_age the session is older than send the person to the upstream
// again, once: back from it, the request goes on (no loop). prompt=none
// with a session too old is login_required.
func TestPromptLoginAndMaxAgeRenewTheSession(t *testing.T) {
	m := startMockOIDC(t)
	ts, hs := loginServer(t, m, login.Config{})
	id, params := ts.publicClient("")
	ts.srv.cfg.TrustedClients = []string{id}
	params = with(params, "scope", "openid")
	c := browser(t, toClient)
	resp, _ := get(t, c, hs.URL+"/oauth/authorize?"+params.Encode())
	if resp.StatusCode != http.StatusFound || !toClient(mustLocation(t, resp)) {
		t.Fatalf("first sign-in: %d", resp.StatusCode)
	}
	slow := false // every redirect takes a second
	signIns := func(p url.Values) (upstream bool, to *url.URL) {
		t.Helper()
		var sawUpstream bool
		c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
			if strings.HasPrefix(req.URL.String(), m.AuthorizationEndpoint()) {
				sawUpstream = true
			}
			if slow {
				ts.clock = ts.clock.Add(time.Second)
			}
			if toClient(req.URL) || len(via) > 8 {
				return http.ErrUseLastResponse
			}
			return nil
		}
		resp, _ := get(t, c, hs.URL+"/oauth/authorize?"+p.Encode())
		return sawUpstream, mustLocation(t, resp)
	}
	if up, to := signIns(params); up || to.Query().Get("code") == "" {
		t.Fatalf("signed in: upstream %v, %v", up, to)
	}
	if up, to := signIns(with(params, "prompt", "login")); !up || to.Query().Get("code") == "" {
		t.Fatalf("prompt=login: upstream %v, %v", up, to)
	}
	ts.clock = ts.clock.Add(time.Hour)
	if up, to := signIns(with(params, "max_age", "600", "prompt", "none")); up || to.Query().Get("error") != "login_required" {
		t.Fatalf("prompt=none, too old: upstream %v, %v", up, to)
	}
	up, to := signIns(with(params, "max_age", "600", "nonce", "n2"))
	if !up || to.Query().Get("code") == "" {
		t.Fatalf("max_age: upstream %v, %v", up, to)
	}
	_, tok := ts.exchange(id, to.Query().Get("code"), testVerifier, "http://127.0.0.1:4000/cb")
	if c := decodeJWTPayload(t, tok["id_token"].(string)); c["auth_time"] != float64(ts.clock.Unix()) || c["nonce"] != "n2" {
		t.Fatalf("auth_time after the renewed sign-in: %v (now %d)", c, ts.clock.Unix())
	}

	// max_age=0 with a slow round trip (the clock moves while the person
	// is at the upstream): one sign-in, no loop.
	slow = true
	ts.clock = ts.clock.Add(time.Second)
	if up, to := signIns(with(params, "max_age", "0")); !up || to.Query().Get("code") == "" {
		t.Fatalf("max_age=0: upstream %v, %v", up, to)
	}
}

// TestPendingSignInsAreBounded: strangers starting sign-ins are held to a
// rate, so the pending records they make the server keep stay bounded;
// the bucket refills with the clock.
func TestPendingSignInsAreBounded(t *testing.T) {
	m := startMockOIDC(t)
	ts, _ := loginServer(t, m, login.Config{})
	_, params := ts.publicClient("")
	from := func(addr string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", "/oauth/authorize?"+params.Encode(), nil)
		r.RemoteAddr = addr + ":4242"
		r = caddyhttp.PrepareRequest(r, caddy.NewReplacer(), nil, nil)
		w := httptest.NewRecorder()
		if err := ts.srv.ServeHTTP(w, r, nil); err != nil {
			t.Fatal(err)
		}
		return w
	}
	// One address: its own share, then 429; the others are not held up.
	for i := range loginStartsPerAddress + 5 {
		w := from("198.51.100.7")
		want := http.StatusFound
		if i >= loginStartsPerAddress {
			want = http.StatusTooManyRequests
		}
		if w.Code != want || want == http.StatusTooManyRequests && w.Header().Get("Retry-After") == "" {
			t.Fatalf("sign-in %d from one address: %d, want %d", i, w.Code, want)
		}
	}
	if w := from("198.51.100.8"); w.Code != http.StatusFound {
		t.Fatalf("another address held up by the first: %d", w.Code)
	}
	// Many addresses: the instance's own budget.
	started := loginStartsPerAddress + 1
	for i := range pendingBurst {
		switch w := from(fmt.Sprintf("10.0.%d.%d", i/200, i%200)); w.Code {
		case http.StatusFound:
			started++
		case http.StatusServiceUnavailable:
			if w.Header().Get("Retry-After") == "" {
				t.Fatal("no Retry-After")
			}
		default:
			t.Fatalf("%d", w.Code)
		}
	}
	if started != pendingBurst {
		t.Fatalf("%d sign-ins started, want %d", started, pendingBurst)
	}
	ts.clock = ts.clock.Add(time.Second)
	if w := from("203.0.113.9"); w.Code != http.StatusFound {
		t.Fatalf("after a second: %d", w.Code)
	}
	// Too large a request is not kept at all.
	if w := ts.authorize("GET", with(params, "state", strings.Repeat("s", maxPendingParams)), ""); w.Code != http.StatusBadRequest {
		t.Fatalf("a large request: %d", w.Code)
	}
}

// TestSessionSurvivesReloadAndKeyRotation: the session key is in the
// store, so a handler made anew on the same store (a reload, another
// instance) accepts the cookie, and a signing key rotation changes
// nothing about it; the ID tokens after the rotation verify with the new
// key from the JWKS.
func TestSessionSurvivesReloadAndKeyRotation(t *testing.T) {
	m := startMockOIDC(t)
	ts, hs := loginServer(t, m, login.Config{})
	id, params := ts.publicClient("")
	ts.srv.cfg.TrustedClients = []string{id}
	params = with(params, "scope", "openid")
	c := browser(t, toClient)
	if resp, _ := get(t, c, hs.URL+"/oauth/authorize?"+params.Encode()); resp.StatusCode != http.StatusFound {
		t.Fatalf("sign-in: %d", resp.StatusCode)
	}

	// A reload: a new Server on the same store, a day later, past a
	// signing key rotation.
	ts.clock = ts.clock.Add(time.Hour)
	cfg := ts.srv.cfg
	cfg.KeyRotation = 30 * time.Minute
	srv, err := New(t.Context(), ts.store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	oldKid := ts.srv.keys.current.id
	ts.srv = srv
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), m.AuthorizationEndpoint()) {
			t.Fatal("sent to the upstream again")
		}
		return http.ErrUseLastResponse
	}
	resp, _ := get(t, c, hs.URL+"/oauth/authorize?"+params.Encode())
	to := mustLocation(t, resp)
	if !toClient(to) || to.Query().Get("code") == "" {
		t.Fatalf("after the reload: %v", to)
	}
	_, tok := ts.exchange(id, to.Query().Get("code"), testVerifier, "http://127.0.0.1:4000/cb")
	idToken := tok["id_token"].(string)
	header, _ := base64.RawURLEncoding.DecodeString(strings.Split(idToken, ".")[0])
	if strings.Contains(string(header), oldKid) || ts.srv.keys.current.id == oldKid {
		t.Fatalf("no rotation: %s", header)
	}
	provider, err := oidc.NewProvider(oidc.ClientContext(t.Context(), hs.Client()), hs.URL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := provider.Verifier(&oidc.Config{ClientID: id, Now: func() time.Time { return ts.clock }}).Verify(t.Context(), idToken); err != nil {
		t.Fatalf("the ID token after the rotation: %v", err)
	}
}

// TestSessionCookiesStayHere: the gate passes the person's other cookies
// upstream, never the session (an application behind the gate could
// otherwise authorize clients as them).
func TestSessionCookiesStayHere(t *testing.T) {
	m := startMockOIDC(t)
	ts, _ := loginServer(t, m, login.Config{})
	r := httptest.NewRequest("GET", "/app", nil)
	r.Header.Set("Cookie", "theme=dark; dcr_session=sealed; __Host-dcr_session=sealed2")
	r.Header.Add("Cookie", "dcr_login=b; lang=en")
	w := httptest.NewRecorder()
	if err := ts.srv.ServeHTTP(w, r, ts.next()); err == nil && w.Code != 401 {
		t.Fatalf("no token: %d", w.Code)
	}
	if got := r.Header.Values("Cookie"); len(got) != 1 || got[0] != "theme=dark; lang=en" {
		t.Fatalf("cookies going upstream: %q", got)
	}
	r = httptest.NewRequest("GET", "/app", nil)
	r.Header.Set("Cookie", "dcr_session=sealed")
	ts.srv.stripLoginCookies(r)
	if _, ok := r.Header["Cookie"]; ok {
		t.Fatalf("cookie left: %q", r.Header["Cookie"])
	}
	// A gate whose handler has no login strips them too: another dcr
	// handler on the host set them.
	plain := newTestServer(t, Config{})
	r = httptest.NewRequest("GET", "/app", nil)
	r.Header.Set("Cookie", "theme=dark; __Host-dcr_session=sealed; dcr_login=b")
	plain.srv.stripLoginCookies(r)
	if got := r.Header.Values("Cookie"); len(got) != 1 || got[0] != "theme=dark" {
		t.Fatalf("cookies going upstream from a gate without logins: %q", got)
	}
}

// TestSessionKeyRotates: session cookies are sealed with a key per
// SessionKeyPeriod. A cookie from before a rotation still opens in the
// next period (a session outlives the period it began in), new cookies use
// the new key, and a cookie sealed with a key two periods old is refused
// even with an expiry far ahead: a key that leaked from the store stops
// working.
func TestSessionKeyRotates(t *testing.T) {
	m := startMockOIDC(t)
	ts, hs := loginServer(t, m, login.Config{})
	ts.srv.cfg.SessionTTL = MaxSessionTTL
	ts.srv.logins.ttl = MaxSessionTTL
	id, params := ts.publicClient("")
	ts.srv.cfg.TrustedClients = []string{id}
	c := browser(t, toClient)
	if resp, _ := get(t, c, hs.URL+"/oauth/authorize?"+params.Encode()); resp.StatusCode != http.StatusFound {
		t.Fatalf("sign-in: %d", resp.StatusCode)
	}
	var cookie string
	for _, ck := range c.Jar.Cookies(mustParse(t, hs.URL)) {
		if ck.Name == sessionCookie {
			cookie = ck.Value
		}
	}
	epoch := sessionEpoch(ts.clock)
	if !strings.HasPrefix(cookie, strconv.FormatInt(epoch, 10)+".") {
		t.Fatalf("session cookie %.20q… does not name its key's period %d", cookie, epoch)
	}
	signedIn := func(value string) bool {
		r := httptest.NewRequest("GET", "/oauth/authorize", nil)
		r.AddCookie(&http.Cookie{Name: sessionCookie, Value: value})
		return ts.srv.session(r) != nil
	}
	periodStart := func(e int64) time.Time { return time.Unix(e*int64(SessionKeyPeriod/time.Second), 0).Add(time.Second) }

	// The next period: the cookie still opens; new sessions get the new
	// key.
	ts.clock = periodStart(epoch + 1)
	if !signedIn(cookie) {
		t.Fatal("a session from before the key rotation was refused")
	}
	oldKey, err := ts.store.ServerSecret(t.Context(), "session-"+strconv.FormatInt(epoch, 10))
	if err != nil {
		t.Fatal(err)
	}
	newCookie, err := ts.srv.sealSession(t.Context(), &login.Session{ID: "new", Login: "corp", Subject: "corp:x", Expires: ts.clock.Add(time.Hour).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	if _, sealed, _ := strings.Cut(newCookie, "."); !strings.HasPrefix(newCookie, strconv.FormatInt(epoch+1, 10)+".") {
		t.Fatalf("a new session is not sealed with the new period's key: %.20q…", newCookie)
	} else if _, err := login.Open(oldKey, sealed); err == nil {
		t.Fatal("the new period's cookie opens with the old key")
	}

	// A cookie sealed with the old key that has not expired: accepted in
	// the next period, refused two periods on.
	forged, err := login.Seal(oldKey, &login.Session{ID: "old", Login: "corp", Subject: "corp:x", Expires: periodStart(epoch + 10).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	forged = strconv.FormatInt(epoch, 10) + "." + forged
	if !signedIn(forged) {
		t.Fatal("a cookie of the previous period was refused")
	}
	ts.clock = periodStart(epoch + 2)
	if signedIn(forged) {
		t.Fatal("a cookie sealed with a key two periods old was accepted")
	}
	// Nor does relabelling it with a current period help.
	_, sealed, _ := strings.Cut(forged, ".")
	if signedIn(strconv.FormatInt(epoch+2, 10)+"."+sealed) || signedIn(strconv.FormatInt(epoch+1, 10)+"."+sealed) {
		t.Fatal("an old cookie relabelled with a current period was accepted")
	}
}

// The per-address sign-in limit survives a reload (a new Server on the
// same store shares its buckets) and never shares buckets with a
// registration limit of the same numbers.
func TestSignInLimitIsSharedPerStore(t *testing.T) {
	m := startMockOIDC(t)
	ts, _ := loginServer(t, m, login.Config{})
	cfg := ts.srv.cfg
	cfg.Limits.RegistrationBurst, cfg.Limits.RegistrationWindow = loginStartsPerAddress, loginStartsWindow
	reloaded, err := New(t.Context(), ts.store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !reloaded.logins.perAddress.SharesWith(ts.srv.logins.perAddress) {
		t.Error("a reload starts the sign-in buckets afresh")
	}
	if reloaded.limiter.SharesWith(reloaded.logins.perAddress) {
		t.Error("sign-ins and registrations share buckets")
	}
	reloaded.Close()
	ts.srv.Close()
	if n := ratelimit.Of(ts.store).Len(); n != 0 {
		t.Errorf("%d tables kept after every Server closed", n)
	}
}
