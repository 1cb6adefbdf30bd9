package integration

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// basicAuthFor adds basic_auth credentials to requests for one host only,
// as a browser that signed in there once does.
type basicAuthFor struct {
	host, user, pass string
}

func (b basicAuthFor) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Host == b.host {
		r = r.Clone(r.Context())
		r.SetBasicAuth(b.user, b.pass)
	}
	return http.DefaultTransport.RoundTrip(r)
}

// cookieBrowser keeps cookies, follows redirects within the servers and
// stops at the client's redirect URI.
func cookieBrowser(t *testing.T, auth basicAuthFor, clientHost string) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 10 * time.Second, Transport: auth,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if req.URL.Host == clientHost {
				return http.ErrUseLastResponse
			}
			return nil
		}}
}

// approveConsent posts a consent page's form with approve.
func approveConsent(t *testing.T, c *http.Client, base, page string) *http.Response {
	t.Helper()
	action := formAction.FindStringSubmatch(page)
	if action == nil {
		t.Fatalf("no consent form in:\n%s", page)
	}
	form := url.Values{"decision": {"approve"}}
	for _, m := range hiddenField.FindAllStringSubmatch(page, -1) {
		form.Add(m[1], html.UnescapeString(m[2]))
	}
	resp, err := c.PostForm(base+html.UnescapeString(action[1]), form)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// TestChainedToItself: instance A is the OpenID Connect provider that
// instance B's login oidc uses. An MCP-style client of B sends the person
// to B, B sends them to A (basic_auth there), A asks for consent and
// returns an ID token that go-oidc in B verifies, B starts a session,
// asks for consent, and the client's token passes B's gate as
// upstream:alice, with A's email claim carried through.
func TestChainedToItself(t *testing.T) {
	e := newEnv(t)
	a := e.start("chain_a.Caddyfile")

	// B's client at A, registered as an operator would.
	resp, reg := call(t, "POST", e.url("/oauth/register"), "", fmt.Sprintf(
		`{"client_name":"Instance B","redirect_uris":[%q],"grant_types":["authorization_code"],"token_endpoint_auth_method":"client_secret_basic","scope":"openid email profile"}`,
		e.url2("/oauth/callback/upstream")))
	wantStatus(t, resp, reg, http.StatusCreated)
	vars := append(append([]string(nil), e.vars...),
		"CHAIN_CLIENT_ID="+reg["client_id"].(string), "CHAIN_CLIENT_SECRET="+reg["client_secret"].(string))
	b := e.startWith("chain_b.Caddyfile", vars, e.url2("/.dcr-readiness-probe"))

	// An MCP-style public client of B.
	clientHost := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	redirect := "http://" + clientHost + "/callback"
	resp, creg := call(t, "POST", e.url2("/oauth/register"), "", fmt.Sprintf(
		`{"client_name":"MCP client","redirect_uris":[%q],"grant_types":["authorization_code"],"token_endpoint_auth_method":"none"}`, redirect))
	wantStatus(t, resp, creg, http.StatusCreated)
	ctx := context.Background()
	provider, err := oidc.NewProvider(ctx, e.url2(""))
	if err != nil {
		t.Fatalf("B's discovery: %v", err)
	}
	cfg := &oauth2.Config{ClientID: creg["client_id"].(string), RedirectURL: redirect, Endpoint: provider.Endpoint(),
		Scopes: []string{oidc.ScopeOpenID, "email"}}
	cfg.Endpoint.AuthStyle = oauth2.AuthStyleInParams
	verifier := oauth2.GenerateVerifier()

	browser := cookieBrowser(t, basicAuthFor{host: fmt.Sprintf("127.0.0.1:%d", e.port), user: "alice", pass: "wonderland"}, clientHost)
	// B → A: A's consent page for B.
	resp, err = browser.Get(cfg.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier), oidc.Nonce("n-chain")))
	if err != nil {
		t.Fatal(err)
	}
	page := body(t, resp)
	if resp.StatusCode != 200 || !strings.Contains(page, "Instance B") || resp.Request.URL.Port() != fmt.Sprint(e.port) {
		t.Fatalf("A's consent: %d at %v\n%s\nA:\n%s\nB:\n%s", resp.StatusCode, resp.Request.URL, page, a.logs, b.logs)
	}
	// A → B's callback → B's consent page.
	resp = approveConsent(t, browser, e.url(""), page)
	page = body(t, resp)
	if resp.StatusCode != 200 || !strings.Contains(page, "upstream:alice") || resp.Request.URL.Port() != fmt.Sprint(e.port2) {
		t.Fatalf("B's consent: %d at %v\n%s\nB:\n%s", resp.StatusCode, resp.Request.URL, page, b.logs)
	}
	// B → the client, with a code.
	resp = approveConsent(t, browser, e.url2(""), page)
	body(t, resp)
	loc, err := resp.Location()
	if err != nil || loc.Host != clientHost || loc.Query().Get("code") == "" {
		t.Fatalf("to the client: %d %v", resp.StatusCode, loc)
	}
	tok, err := cfg.Exchange(ctx, loc.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange at B: %v", err)
	}
	idt, err := provider.Verifier(&oidc.Config{ClientID: cfg.ClientID}).Verify(ctx, tok.Extra("id_token").(string))
	if err != nil || idt.Subject != "upstream:alice" || idt.Nonce != "n-chain" {
		t.Fatalf("B's ID token: %+v %v", idt, err)
	}
	var claims struct {
		Email string `json:"email"`
	}
	if err := idt.Claims(&claims); err != nil || claims.Email != "alice@example.com" {
		t.Fatalf("email through the chain: %+v %v", claims, err)
	}
	// The gated call.
	req, _ := http.NewRequest("GET", e.url2("/api"), nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if got := body(t, resp); resp.StatusCode != 200 || got != "hello upstream:alice" {
		t.Fatalf("gated call: %d %q", resp.StatusCode, got)
	}
	// A's tokens stayed with B: the access token is B's, for B.
	parts := strings.Split(tok.AccessToken, ".")
	raw, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var at map[string]any
	_ = json.Unmarshal(raw, &at)
	if at["iss"] != e.url2("") {
		t.Fatalf("access token issuer %v", at["iss"])
	}
	assertLogsClean(t, a.logs.String()+b.logs.String(), tok.AccessToken, reg["client_secret"].(string), loc.Query().Get("code"))
}

// TestLoginWithoutRuleDoesNotLoad: "anyone with a Google account" is never
// an accident: a login block with no allow rule fails caddy validate,
// naming the rules, and its secret is not in the message.
func TestLoginWithoutRuleDoesNotLoad(t *testing.T) {
	e := newEnv(t)
	e.vars = append(e.vars, "DCR_TEST_GOOGLE_ID=id-123", "DCR_TEST_GOOGLE_SECRET=google-secret-value")
	out, ok := e.validate("login_no_rule.Caddyfile")
	if ok || !strings.Contains(out, "login google has no allow rule") ||
		!strings.Contains(out, "allow_email, allow_domain, allow_subject, allow_group, allow_any") {
		t.Fatalf("validate: %v\n%s", ok, out)
	}
	assertLogsClean(t, out, "google-secret-value")
}
