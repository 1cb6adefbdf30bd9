package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// browser is a person's user agent: it signs in with basic_auth where
// Caddy asks, and does not follow redirects to the client's loopback URI
// (the test reads them).
type browser struct {
	client *http.Client
	user   string
	pass   string
}

func newBrowser(user, pass string) *browser {
	return &browser{user: user, pass: pass, client: &http.Client{
		Timeout:       5 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

func (b *browser) do(t *testing.T, method, target string, form url.Values) (*http.Response, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, target, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("Accept", "text/html")
	req.SetBasicAuth(b.user, b.pass)
	resp, err := b.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp, string(raw)
}

var (
	formAction  = regexp.MustCompile(`<form method="post" action="([^"]+)">`)
	hiddenField = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)
)

// submitConsent posts the consent form of page with the given decision,
// as a browser would, and returns where it sends the person.
func (b *browser) submitConsent(t *testing.T, base, page, decision string) *url.URL {
	t.Helper()
	action := formAction.FindStringSubmatch(page)
	if action == nil {
		t.Fatalf("no consent form in:\n%s", page)
	}
	form := url.Values{"decision": {decision}}
	for _, m := range hiddenField.FindAllStringSubmatch(page, -1) {
		form.Add(m[1], html.UnescapeString(m[2]))
	}
	resp, body := b.do(t, "POST", base+html.UnescapeString(action[1]), form)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("consent answer: %d %s", resp.StatusCode, body)
	}
	u, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// grant is an entry of the grants page's JSON.
type grant struct {
	ClientID string `json:"client_id"`
	Scope    string `json:"scope"`
}

// alicesGrants reads alice's grants page (mcp.Caddyfile's basic_auth) as
// JSON.
func alicesGrants(t *testing.T, e *env) []grant {
	t.Helper()
	req, _ := http.NewRequest("GET", e.url("/oauth/grants"), nil)
	req.SetBasicAuth("alice", "wonderland")
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var page struct {
		Grants []grant `json:"grants"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		t.Fatalf("grants page: %d %v", resp.StatusCode, err)
	}
	return page.Grants
}

// TestMCPClientEndToEnd plays an MCP public client that knows only the URL
// of the protected server: from the first 401, through discovery,
// registration, authorization with PKCE (the person signs in with
// basic_auth and approves the consent form), the code exchange, the call,
// a refresh, and the refused replay of the rotated refresh token.
func TestMCPClientEndToEnd(t *testing.T) {
	e := newEnv(t)
	p := e.start("mcp.Caddyfile")
	ctx := context.Background()
	server := e.url("/mcp")

	// 1. The first request gets a challenge naming the resource metadata.
	resp, err := http.Post(server, "application/json", strings.NewReader(`{"jsonrpc":"2.0","method":"initialize","id":1}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	m := regexp.MustCompile(`resource_metadata="([^"]+)"`).FindStringSubmatch(resp.Header.Get("WWW-Authenticate"))
	if resp.StatusCode != 401 || m == nil {
		t.Fatalf("first request: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}

	// 2. RFC 9728, then RFC 8414 metadata.
	prm := getJSON(t, m[1])
	if prm["resource"] != server {
		t.Fatalf("resource %v, want %s", prm["resource"], server)
	}
	issuer := prm["authorization_servers"].([]any)[0].(string)
	asm := getJSON(t, issuer+"/.well-known/oauth-authorization-server")
	if asm["issuer"] != issuer || asm["authorization_response_iss_parameter_supported"] != true {
		t.Fatalf("authorization server metadata: %v", asm)
	}
	if methods, _ := asm["code_challenge_methods_supported"].([]any); len(methods) != 1 || methods[0] != "S256" {
		t.Fatalf("code_challenge_methods_supported %v", asm["code_challenge_methods_supported"])
	}

	// 3. Register as a public client with a loopback redirect URI on a
	// random port.
	redirect := fmt.Sprintf("http://127.0.0.1:%d/callback", freePort(t))
	resp2, reg := call(t, "POST", asm["registration_endpoint"].(string), "", fmt.Sprintf(
		`{"client_name":"Test MCP client","redirect_uris":[%q],"grant_types":["authorization_code","refresh_token"],"response_types":["code"],"token_endpoint_auth_method":"none"}`, redirect))
	wantStatus(t, resp2, reg, http.StatusCreated)
	clientID := reg["client_id"].(string)

	// 4. Authorize with PKCE, golang.org/x/oauth2 building the request.
	cfg := &oauth2.Config{
		ClientID:    clientID,
		RedirectURL: redirect,
		Scopes:      []string{"mcp:tools"},
		Endpoint:    oauth2.Endpoint{AuthURL: asm["authorization_endpoint"].(string), TokenURL: asm["token_endpoint"].(string)},
	}
	verifier := oauth2.GenerateVerifier()
	resource := oauth2.SetAuthURLParam("resource", server)
	authURL := cfg.AuthCodeURL("state-123", oauth2.S256ChallengeOption(verifier), resource)

	alice := newBrowser("alice", "wonderland")
	if resp, _ := newBrowser("alice", "wrong").do(t, "GET", authURL, nil); resp.StatusCode != 401 {
		t.Fatalf("a wrong password reached the consent page: %d", resp.StatusCode)
	}
	resp, page := alice.do(t, "GET", authURL, nil)
	if resp.StatusCode != 200 || !strings.Contains(page, "Test MCP client") || resp.Header.Get("X-Frame-Options") != "DENY" {
		t.Fatalf("consent page: %d %v\n%s", resp.StatusCode, resp.Header, page)
	}
	back := alice.submitConsent(t, e.url(""), page, "approve")
	q := back.Query()
	if back.String()[:len(redirect)] != redirect || q.Get("state") != "state-123" || q.Get("iss") != issuer || q.Get("code") == "" {
		t.Fatalf("redirect back: %s", back)
	}

	// 5. Exchange the code.
	tok, err := cfg.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier), resource)
	if err != nil {
		t.Fatal(err)
	}
	if tok.RefreshToken == "" {
		t.Fatal("no refresh token")
	}

	// 6. Call the server with it; the upstream learns who.
	callServer := func(token *oauth2.Token) (int, string) {
		req, _ := http.NewRequest("POST", server, strings.NewReader(`{}`))
		token.SetAuthHeader(req)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, body(t, resp)
	}
	if status, got := callServer(tok); status != 200 || got != "sub=alice email=alice@example.com scope=mcp:tools" {
		t.Fatalf("call: %d %q", status, got)
	}

	// 7. Refresh (x/oauth2 refreshes an expired token by itself).
	old := *tok
	tok.Expiry = time.Now().Add(-time.Minute)
	fresh, err := cfg.TokenSource(ctx, tok).Token()
	if err != nil {
		t.Fatal(err)
	}
	if fresh.AccessToken == old.AccessToken || fresh.RefreshToken == old.RefreshToken {
		t.Fatal("refresh did not rotate")
	}
	if status, _ := callServer(fresh); status != 200 {
		t.Fatalf("call with the refreshed token: %d", status)
	}

	// 8. The rotated refresh token no longer works.
	old.Expiry = time.Now().Add(-time.Minute)
	_, err = cfg.TokenSource(ctx, &old).Token()
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
		t.Fatalf("replayed refresh token: %v", err)
	}

	// 9. The grant is listed for alice, and a second authorization of the
	// same scope skips the consent page.
	if grants := alicesGrants(t, e); len(grants) != 1 || grants[0].ClientID != clientID || grants[0].Scope != "mcp:tools" {
		t.Fatalf("grants: %+v", grants)
	}
	resp, _ = alice.do(t, "GET", cfg.AuthCodeURL("s2", oauth2.S256ChallengeOption(verifier)), nil)
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), redirect) {
		t.Fatalf("second authorization: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}

	// The access log (on in mcp.Caddyfile) records the requests but not
	// the responses carrying a code, which dcr logs without the code.
	logs := p.logs.String()
	assertLogsClean(t, logs, tok.AccessToken, tok.RefreshToken, fresh.RefreshToken, q.Get("code"), verifier)
	if !strings.Contains(logs, `"uri":"/oauth/token"`) || !strings.Contains(logs, `"msg":"authorization code issued"`) {
		t.Fatalf("the access log or dcr's own line is missing:\n%s", logs)
	}
}

// TestForwardAuthUser: with user {http.request.header.Remote-User} behind
// forward_auth, the person is who the identity service says, never a
// Remote-User header the caller sent itself.
func TestForwardAuthUser(t *testing.T) {
	e := newEnv(t)
	e.start("mcp.Caddyfile")
	resp2, reg := call(t, "POST", e.url3("/oauth/register"), "",
		`{"client_name":"FA client","redirect_uris":["http://127.0.0.1:9/cb"],"token_endpoint_auth_method":"none"}`)
	wantStatus(t, resp2, reg, http.StatusCreated)
	cfg := &oauth2.Config{ClientID: reg["client_id"].(string), RedirectURL: "http://127.0.0.1:9/cb",
		Endpoint: oauth2.Endpoint{AuthURL: e.url3("/oauth/authorize")}}
	authURL := cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))

	get := func(headers ...string) (int, string) {
		req, _ := http.NewRequest("GET", authURL, nil)
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		resp, err := newBrowser("", "").client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, body(t, resp)
	}
	// No session, forged header: forward_auth refuses before dcr.
	if status, page := get("Remote-User", "mallory"); status != 401 || strings.Contains(page, "mallory") {
		t.Fatalf("forged Remote-User without a session: %d\n%s", status, page)
	}
	// A session and a forged header: the identity service's answer wins.
	status, page := get("X-Session", "good", "Remote-User", "mallory")
	if status != 200 || !strings.Contains(page, "Signed in as <strong>bob</strong>") || strings.Contains(page, "mallory") {
		t.Fatalf("session with a forged header: %d\n%s", status, page)
	}
}

// TestConsentFormSurvivesReload: a person who opened the consent page
// before a config reload can still approve it after (the form's key is in
// the store, not in the old config's memory).
func TestConsentFormSurvivesReload(t *testing.T) {
	e := newEnv(t)
	e.start("mcp.Caddyfile")
	redirect := "http://127.0.0.1:9/cb"
	resp2, reg := call(t, "POST", e.url("/oauth/register"), "",
		`{"client_name":"Reload client","redirect_uris":["`+redirect+`"],"token_endpoint_auth_method":"none"}`)
	wantStatus(t, resp2, reg, http.StatusCreated)
	cfg := &oauth2.Config{ClientID: reg["client_id"].(string), RedirectURL: redirect,
		Endpoint: oauth2.Endpoint{AuthURL: e.url("/oauth/authorize")}}
	alice := newBrowser("alice", "wonderland")
	resp, page := alice.do(t, "GET", cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())), nil)
	if resp.StatusCode != 200 {
		t.Fatalf("consent page: %d", resp.StatusCode)
	}
	e.load("mcp.Caddyfile")
	back := alice.submitConsent(t, e.url(""), page, "approve")
	if back.Query().Get("code") == "" {
		t.Fatalf("after a reload the form was refused: %s", back)
	}
}
