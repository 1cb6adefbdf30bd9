package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/oauth2"
)

// nodeProject copies testdata/oauth4webapi to a temporary directory and
// installs its locked dependencies there with npm, or skips the test when
// Node.js is not installed (unless DCR_REQUIRE_NODE is set, as in CI).
func nodeProject(t *testing.T) string {
	t.Helper()
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			msg := fmt.Sprintf("no %s on PATH (Debian: apt-get install nodejs npm): the oauth4webapi test needs Node.js", tool)
			if os.Getenv("DCR_REQUIRE_NODE") != "" {
				t.Fatal(msg + "; DCR_REQUIRE_NODE is set, so it may not skip")
			}
			t.Skip(msg)
		}
	}
	dir := t.TempDir()
	for _, name := range []string{"package.json", "package-lock.json", "check.mjs"} {
		b, err := os.ReadFile(filepath.Join("testdata", "oauth4webapi", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci: %v\n%s", err, out)
	}
	return dir
}

// TestOAuth4WebAPIValidatesIDTokens: oauth4webapi, an OpenID Connect
// client library used by many JavaScript apps, does discovery against
// caddy-dcr, validates the authorization response (state, iss), exchanges
// the code with PKCE and validates the ID token with the nonce it sent
// (processAuthorizationCodeResponse): it accepts caddy-dcr as an OpenID
// Provider. With another expected nonce, it refuses the ID token.
func TestOAuth4WebAPIValidatesIDTokens(t *testing.T) {
	dir := nodeProject(t)
	e := newEnv(t)
	e.start("chain_a.Caddyfile")
	clientHost := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	redirect := "http://" + clientHost + "/callback"
	resp, reg := call(t, "POST", e.url("/oauth/register"), "", fmt.Sprintf(
		`{"client_name":"JS app","redirect_uris":[%q],"grant_types":["authorization_code"],"token_endpoint_auth_method":"none","scope":"openid email"}`, redirect))
	wantStatus(t, resp, reg, http.StatusCreated)
	clientID := reg["client_id"].(string)
	browser := cookieBrowser(t, basicAuthFor{host: fmt.Sprintf("127.0.0.1:%d", e.port), user: "alice", pass: "wonderland"}, clientHost)

	// authorize runs the front channel and returns the callback URL the
	// browser was sent to, with the PKCE verifier.
	authorize := func(nonce, state string) (string, string) {
		t.Helper()
		cfg := &oauth2.Config{ClientID: clientID, RedirectURL: redirect, Scopes: []string{"openid", "email"},
			Endpoint: oauth2.Endpoint{AuthURL: e.url("/oauth/authorize")}}
		verifier := oauth2.GenerateVerifier()
		resp, err := browser.Get(cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("nonce", nonce)))
		if err != nil {
			t.Fatal(err)
		}
		page := body(t, resp)
		if resp.StatusCode == http.StatusOK {
			resp = approveConsent(t, browser, e.url(""), page)
			body(t, resp)
		}
		loc, err := resp.Location()
		if err != nil || loc.Host != clientHost || loc.Query().Get("code") == "" {
			t.Fatalf("back to the app: %d %v\n%s", resp.StatusCode, loc, page)
		}
		return loc.String(), verifier
	}
	check := func(callback, verifier, nonce, state string) (string, error) {
		cmd := exec.Command("node", "check.mjs", e.url(""), clientID, redirect, callback, verifier, nonce, state)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	callback, verifier := authorize("n-0S6_WzA2Mj", "st-1")
	out, err := check(callback, verifier, "n-0S6_WzA2Mj", "st-1")
	if err != nil {
		t.Fatalf("oauth4webapi refused caddy-dcr's answer: %v\n%s", err, out)
	}
	var got struct {
		Claims map[string]any `json:"claims"`
		Scope  string         `json:"scope"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	c := got.Claims
	if c["iss"] != e.url("") || c["sub"] != "alice" || c["aud"] != clientID || c["nonce"] != "n-0S6_WzA2Mj" ||
		c["email"] != "alice@example.com" || c["auth_time"] == nil || c["at_hash"] == nil || !strings.Contains(got.Scope, "openid") {
		t.Fatalf("validated claims %v, scope %q", c, got.Scope)
	}

	// The same flow, but the app expects another nonce: refused.
	callback, verifier = authorize("n-sent", "st-2")
	if out, err := check(callback, verifier, "n-expected", "st-2"); err == nil || !strings.Contains(out, "nonce") {
		t.Fatalf("oauth4webapi accepted an ID token with another nonce: %v\n%s", err, out)
	}
	// And a callback whose state is not the app's: refused before any
	// exchange.
	callback, verifier = authorize("n-3", "st-3")
	u, _ := url.Parse(callback)
	if out, err := check(u.String(), verifier, "n-3", "st-other"); err == nil || !strings.Contains(strings.ToLower(out), "state") {
		t.Fatalf("oauth4webapi accepted another state: %v\n%s", err, out)
	}
}
