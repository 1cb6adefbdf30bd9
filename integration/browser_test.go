package integration

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/oauth2-proxy/mockoidc"
	"golang.org/x/oauth2"
)

// TestBrowserEndToEnd runs the person's side in headless Chromium: an
// MCP-style client's authorization URL → the choice page → the upstream
// OpenID Connect provider (mockoidc, which signs the person in at once) →
// back → the consent page → the code at the client → tokens → a gated
// call. Then someone the allow rules refuse sees the refused page.
// Screenshots of the three pages at 390 and 1280 pixels go to
// DCR_SCREENSHOT_DIR (a temporary directory when unset).
func TestBrowserEndToEnd(t *testing.T) {
	browser := startChromium(t)
	shots := os.Getenv("DCR_SCREENSHOT_DIR")
	if shots == "" {
		shots = t.TempDir()
	}
	m, err := mockoidc.Run()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Shutdown() })

	e := newEnv(t)
	vars := append(append([]string(nil), e.vars...),
		"MOCK_ISSUER="+m.Issuer(), "MOCK_CLIENT_ID="+m.ClientID, "MOCK_CLIENT_SECRET="+m.ClientSecret)
	p := e.startWith("browser.Caddyfile", vars, e.url("/.dcr-readiness-probe"))

	// The client: its redirect URI is a listener of the test's.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	codes := make(chan string, 4)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		codes <- r.URL.Query().Get("code")
		fmt.Fprint(w, "the client got its answer")
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	redirect := "http://" + ln.Addr().String() + "/callback"
	resp, reg := call(t, "POST", e.url("/oauth/register"), "", fmt.Sprintf(
		`{"client_name":"Notes MCP client","redirect_uris":[%q],"grant_types":["authorization_code"],"token_endpoint_auth_method":"none","scope":"mcp:tools openid email"}`, redirect))
	wantStatus(t, resp, reg, http.StatusCreated)
	cfg := &oauth2.Config{ClientID: reg["client_id"].(string), RedirectURL: redirect, Scopes: []string{"mcp:tools", "openid", "email"},
		Endpoint: oauth2.Endpoint{AuthURL: e.url("/oauth/authorize"), TokenURL: e.url("/oauth/token"), AuthStyle: oauth2.AuthStyleInParams}}
	verifier := oauth2.GenerateVerifier()
	authURL := cfg.AuthCodeURL("st-browser", oauth2.S256ChallengeOption(verifier))

	// The choice page.
	browser.navigate(authURL)
	text := browser.waitFor(e.url("/oauth/authorize"))
	if !strings.Contains(text, "Sign in with Corp SSO") || !strings.Contains(text, "Sign in with GitHub") {
		t.Fatalf("choice page:\n%s", text)
	}
	browser.screenshot(shots, "choice", 390, 1280)

	// Corp SSO → mockoidc → the callback → the consent page.
	browser.act(`[...document.querySelectorAll("a.choice")].find(a => a.textContent.includes("Corp SSO")).click()`)
	text = browser.waitFor(e.url("/oauth/authorize"))
	for _, want := range []string{"Notes MCP client wants to access your account", "corp:1234567890", "Use the tools of this MCP server",
		"This application registered itself", ln.Addr().String()} {
		if !strings.Contains(text, want) {
			t.Fatalf("consent page lacks %q:\n%s\nlogs:\n%s", want, text, p.logs)
		}
	}
	browser.screenshot(shots, "consent", 390, 1280)

	// Approve → the client gets a code → tokens → the gated call.
	browser.act(`document.querySelector("button.approve").click()`)
	browser.waitFor(redirect)
	code := <-codes
	tok, err := cfg.Exchange(context.Background(), code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	req, _ := http.NewRequest("GET", e.url("/mcp"), nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if got := body(t, resp); resp.StatusCode != 200 || got != "hello corp:1234567890 (jane.doe@example.com)" {
		t.Fatalf("gated call: %d %q", resp.StatusCode, got)
	}

	// Signed out, someone outside the allow rules tries: the refused page.
	browser.navigate(e.url("/oauth/logout"))
	if text := browser.waitFor(e.url("/oauth/logout")); !strings.Contains(text, "Sign out") {
		t.Fatalf("logout page:\n%s", text)
	}
	browser.act(`document.querySelector("form button").click()`)
	if text := browser.waitFor(e.url("/oauth/logout")); !strings.Contains(text, "You are signed out") {
		t.Fatalf("after signing out:\n%s", text)
	}
	m.QueueUser(&mockoidc.MockUser{Subject: "666", Email: "mallory@evil.example", EmailVerified: true})
	browser.navigate(authURL)
	browser.waitFor(e.url("/oauth/authorize"))
	browser.act(`[...document.querySelectorAll("a.choice")].find(a => a.textContent.includes("Corp SSO")).click()`)
	text = browser.waitFor(e.url("/oauth/callback/corp"))
	if !strings.Contains(text, "Not allowed") || !strings.Contains(text, "mallory@evil.example") {
		t.Fatalf("refused page:\n%s", text)
	}
	browser.screenshot(shots, "refused", 390, 1280)
	t.Logf("screenshots in %s", shots)
	logs := p.logs.String()
	assertLogsClean(t, logs, tok.AccessToken, code, m.ClientSecret)
	for _, leak := range []string{"/oauth/callback/corp?", m.AuthorizationEndpoint() + "?", "dcr_session=", "dcr_login="} {
		if strings.Contains(logs, leak) {
			i := strings.Index(logs, leak)
			t.Errorf("Caddy's logs show %q: …%s…", leak, logs[max(0, i-300):min(len(logs), i+100)])
		}
	}
	if !strings.Contains(logs, `"msg":"sign-in callback"`) {
		t.Error("the callback is not logged at all")
	}
}
