package integration

import (
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// The helpers below answer with an error instead of failing the test: the
// load's goroutines see Caddy die under them, which is expected, and a
// request cut off is simply not counted as answered.

var loadClient = &http.Client{
	Timeout:       10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// errNotAnswered is a request that got no complete answer.
var errNotAnswered = errors.New("not answered")

// send does one request and decodes a JSON answer (nil otherwise).
func send(method, target string, header http.Header, body string) (int, map[string]any, string, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, target, rd)
	if err != nil {
		return 0, nil, "", err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := loadClient.Do(req)
	if err != nil {
		return 0, nil, "", fmt.Errorf("%w: %w", errNotAnswered, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, "", fmt.Errorf("%w: %v", errNotAnswered, err)
	}
	var m map[string]any
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &m); err != nil {
			return 0, nil, "", fmt.Errorf("%w: bad JSON %q", errNotAnswered, raw)
		}
	}
	if loc := resp.Header.Get("Location"); loc != "" {
		return resp.StatusCode, m, loc, nil
	}
	return resp.StatusCode, m, string(raw), nil
}

func formHeader(extra ...string) http.Header {
	h := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	for i := 0; i+1 < len(extra); i += 2 {
		h.Set(extra[i], extra[i+1])
	}
	return h
}

func basicHeader(user, pass string) string {
	req, _ := http.NewRequest("GET", "/", nil)
	req.SetBasicAuth(user, pass)
	return req.Header.Get("Authorization")
}

// consentFlow registers a public client, has alice approve it on the
// consent page and exchanges the code. It returns the client and its
// refresh token once the exchange was answered 200; after the consent
// was answered, consented is the client's id.
func consentFlow(e *env, redirect string) (clientID, refresh string, consented bool, err error) {
	status, reg, _, err := send("POST", e.url("/oauth/register"), http.Header{"Content-Type": {"application/json"}}, fmt.Sprintf(
		`{"client_name":"Durable","redirect_uris":[%q],"grant_types":["authorization_code","refresh_token"],"token_endpoint_auth_method":"none"}`, redirect))
	if err != nil || status != http.StatusCreated {
		return "", "", false, fmt.Errorf("registration: %d %v %w", status, reg, err)
	}
	clientID = reg["client_id"].(string)
	cfg := &oauth2.Config{ClientID: clientID, RedirectURL: redirect, Scopes: []string{"mcp:tools"},
		Endpoint: oauth2.Endpoint{AuthURL: e.url("/oauth/authorize"), TokenURL: e.url("/oauth/token")}}
	verifier := oauth2.GenerateVerifier()
	alice := http.Header{"Authorization": {basicHeader("alice", "wonderland")}, "Accept": {"text/html"}}
	status, _, page, err := send("GET", cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)), alice, "")
	if err != nil || status != http.StatusOK {
		return clientID, "", false, fmt.Errorf("consent page: %d %w", status, err)
	}
	action := formAction.FindStringSubmatch(page)
	if action == nil {
		return clientID, "", false, fmt.Errorf("no consent form in %q", page)
	}
	form := url.Values{"decision": {"approve"}}
	for _, m := range hiddenField.FindAllStringSubmatch(page, -1) {
		form.Add(m[1], html.UnescapeString(m[2]))
	}
	h := formHeader()
	h.Set("Authorization", alice.Get("Authorization"))
	status, _, location, err := send("POST", e.url(html.UnescapeString(action[1])), h, form.Encode())
	if err != nil || status != http.StatusSeeOther {
		return clientID, "", false, fmt.Errorf("consent: %d %w", status, err)
	}
	back, _ := url.Parse(location)
	status, tok, _, err := send("POST", e.url("/oauth/token"), formHeader(), url.Values{
		"grant_type": {"authorization_code"}, "code": {back.Query().Get("code")}, "client_id": {clientID},
		"redirect_uri": {redirect}, "code_verifier": {verifier},
	}.Encode())
	if err != nil || status != http.StatusOK {
		return clientID, "", true, fmt.Errorf("code exchange: %d %v %w", status, tok, err)
	}
	return clientID, tok["refresh_token"].(string), true, nil
}

// refreshOnce presents a public client's refresh token.
func refreshOnce(e *env, clientID, token string) (int, map[string]any, error) {
	status, m, _, err := send("POST", e.url("/oauth/token"), formHeader(), url.Values{
		"grant_type": {"refresh_token"}, "refresh_token": {token}, "client_id": {clientID},
	}.Encode())
	return status, m, err
}

// TestSIGKILLUnderMixedLoadLosesNothingAnswered kills Caddy with SIGKILL
// while registrations, token issues, consents and refreshes flow, then
// restarts it: every registration answered 201 has working credentials,
// every access token answered 200 still passes the gate, every consent
// answered is a grant, and every refresh token answered 200 works once.
func TestSIGKILLUnderMixedLoadLosesNothingAnswered(t *testing.T) {
	e := newEnv(t)
	p := e.start("mcp.Caddyfile")
	redirect := fmt.Sprintf("http://127.0.0.1:%d/callback", freePort(t))
	machineHeader := func(id, secret string) http.Header {
		return formHeader("Authorization", basicHeader(id, secret))
	}

	type creds struct{ id, secret string }
	type chain struct{ client, token string }
	var (
		mu            sync.Mutex
		registered    []creds
		accessTokens  []string
		consented     []string
		stop          atomic.Bool
		wg            sync.WaitGroup
		refreshes     atomic.Int32
		unexplained   []string
		chains        = make(chan *chain, 64)
		settledChains []*chain
	)
	fail := func(format string, a ...any) {
		if stop.Load() {
			return // Caddy is being killed: anything goes
		}
		mu.Lock()
		unexplained = append(unexplained, fmt.Sprintf(format, a...))
		mu.Unlock()
	}
	status, reg, _, err := send("POST", e.url("/oauth/register"), http.Header{"Content-Type": {"application/json"}}, `{"grant_types":["client_credentials"]}`)
	if err != nil || status != http.StatusCreated {
		t.Fatalf("registering the machine client: %d %v %v", status, reg, err)
	}
	machine := creds{reg["client_id"].(string), reg["client_secret"].(string)}

	for range 2 { // registrations
		wg.Go(func() {
			for !stop.Load() {
				status, m, _, err := send("POST", e.url("/oauth/register"), http.Header{"Content-Type": {"application/json"}}, `{"grant_types":["client_credentials"]}`)
				switch {
				case errors.Is(err, errNotAnswered):
				case err != nil || status != http.StatusCreated:
					fail("registration: %d %v %v", status, m, err)
				default:
					mu.Lock()
					registered = append(registered, creds{m["client_id"].(string), m["client_secret"].(string)})
					mu.Unlock()
				}
			}
		})
	}
	wg.Go(func() { // token issues
		for !stop.Load() {
			status, m, _, err := send("POST", e.url("/oauth/token"), machineHeader(machine.id, machine.secret), "grant_type=client_credentials")
			switch {
			case errors.Is(err, errNotAnswered):
			case err != nil || status != http.StatusOK:
				fail("client_credentials: %d %v %v", status, m, err)
			default:
				mu.Lock()
				if len(accessTokens) < 200 {
					accessTokens = append(accessTokens, m["access_token"].(string))
				}
				mu.Unlock()
			}
		}
	})
	wg.Go(func() { // consents, each starting a refresh chain
		for !stop.Load() {
			id, refresh, consent, err := consentFlow(e, redirect)
			if consent {
				mu.Lock()
				consented = append(consented, id)
				mu.Unlock()
			}
			switch {
			case errors.Is(err, errNotAnswered):
			case err != nil:
				fail("consent flow: %v", err)
			default:
				select {
				case chains <- &chain{id, refresh}:
				default:
					mu.Lock()
					settledChains = append(settledChains, &chain{id, refresh})
					mu.Unlock()
				}
			}
		}
	})
	for range 2 { // refreshes: each chain is refreshed by one goroutine at a time
		wg.Go(func() {
			for !stop.Load() {
				var c *chain
				select {
				case c = <-chains:
				case <-time.After(50 * time.Millisecond):
					continue
				}
				status, m, err := refreshOnce(e, c.client, c.token)
				switch {
				case errors.Is(err, syscall.ECONNREFUSED):
					// Caddy is gone and the token was never sent.
					mu.Lock()
					settledChains = append(settledChains, c)
					mu.Unlock()
					continue
				case errors.Is(err, errNotAnswered):
					// Used or not, nobody knows: the chain is dropped.
					continue
				case err != nil || status != http.StatusOK:
					fail("refresh: %d %v %v", status, m, err)
					continue
				}
				c.token = m["refresh_token"].(string)
				refreshes.Add(1)
				chains <- c
			}
		})
	}

	// Let the load run until every kind of operation was answered a few
	// times, then kill Caddy while it still runs.
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		enough := len(registered) >= 100 && len(accessTokens) >= 50 && len(consented) >= 5
		mu.Unlock()
		if enough && refreshes.Load() >= 30 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.kill()
	stop.Store(true)
	wg.Wait()
	close(chains)
	for c := range chains {
		settledChains = append(settledChains, c)
	}
	if len(unexplained) > 0 {
		t.Fatalf("requests failed before the kill:\n%s", strings.Join(unexplained, "\n"))
	}
	if len(registered) < 100 || len(accessTokens) < 50 || len(consented) < 5 || refreshes.Load() < 30 || len(settledChains) == 0 {
		t.Fatalf("too little load before the kill: %d registrations, %d tokens, %d consents, %d refreshes, %d chains",
			len(registered), len(accessTokens), len(consented), refreshes.Load(), len(settledChains))
	}

	p = e.start("mcp.Caddyfile")
	for _, c := range registered {
		if status, m, _, err := send("POST", e.url("/oauth/token"), machineHeader(c.id, c.secret), "grant_type=client_credentials"); err != nil || status != http.StatusOK {
			t.Fatalf("a client registered with 201 has no working credentials after SIGKILL: %d %v %v", status, m, err)
		}
	}
	for _, tok := range accessTokens {
		if status, _, body, err := send("GET", e.url("/mcp"), http.Header{"Authorization": {"Bearer " + tok}}, ""); err != nil || status != http.StatusOK {
			t.Fatalf("an access token answered 200 is refused after SIGKILL: %d %q %v", status, body, err)
		}
	}
	grants := alicesGrants(t, e)
	granted := map[string]bool{}
	for _, g := range grants {
		granted[g.ClientID] = true
	}
	for _, id := range consented {
		if !granted[id] {
			t.Fatalf("a consent answered before SIGKILL is not a grant after it (%d grants listed)", len(grants))
		}
	}
	for _, c := range settledChains {
		status, m, err := refreshOnce(e, c.client, c.token)
		if err != nil || status != http.StatusOK {
			t.Fatalf("a refresh token answered 200 does not work after SIGKILL: %d %v %v", status, m, err)
		}
		if status, m, err := refreshOnce(e, c.client, c.token); err != nil || status != http.StatusBadRequest || m["error"] != "invalid_grant" {
			t.Fatalf("a refresh token worked twice: %d %v %v", status, m, err)
		}
	}
	t.Logf("after SIGKILL: %d registrations, %d access tokens, %d consents and %d refresh chains (%d refreshes) all intact",
		len(registered), len(accessTokens), len(consented), len(settledChains), refreshes.Load())
	assertLogsClean(t, p.logs.String(), machine.secret)
}

// TestReloadUnderLoadFailsNothing reloads the config five times while the
// token endpoint and the gated route are under load: no request fails,
// and no client is lost. A keep-alive connection that the old server
// closes is retried by the client, as HTTP clients do (RFC 9112 §9.3.1):
// the POSTs say they may be (Idempotency-Key), as a token request may,
// and a request whose connection broke without an answer is sent once
// more. Every answer must be a success.
func TestReloadUnderLoadFailsNothing(t *testing.T) {
	e := newEnv(t)
	e.start("registration.Caddyfile")
	status, reg, _, err := send("POST", e.url("/oauth/register"), http.Header{"Content-Type": {"application/json"}}, `{"grant_types":["client_credentials"]}`)
	if err != nil || status != http.StatusCreated {
		t.Fatalf("registration: %d %v %v", status, reg, err)
	}
	id, secret := reg["client_id"].(string), reg["client_secret"].(string)
	tokenHeader := formHeader("Authorization", basicHeader(id, secret), "Idempotency-Key", "token")
	status, tok, _, err := send("POST", e.url("/oauth/token"), tokenHeader, "grant_type=client_credentials")
	if err != nil || status != http.StatusOK {
		t.Fatalf("token: %d %v %v", status, tok, err)
	}
	bearer := http.Header{"Authorization": {"Bearer " + tok["access_token"].(string)}}

	var (
		stop     atomic.Bool
		wg       sync.WaitGroup
		ok       atomic.Int64
		mu       sync.Mutex
		failures []string
	)
	var retried atomic.Int64
	worker := func(method, target string, h http.Header, body string) {
		for !stop.Load() {
			status, m, text, err := send(method, target, h, body)
			if errors.Is(err, errNotAnswered) {
				// A connection the old server closed under a request
				// on a busy machine, past what Go's transport retries
				// by itself: a client retries once, as HTTP clients do.
				retried.Add(1)
				status, m, text, err = send(method, target, h, body)
			}
			if err != nil || status != http.StatusOK {
				mu.Lock()
				failures = append(failures, fmt.Sprintf("%s %s: %d %v %q %v", method, target, status, m, text, err))
				mu.Unlock()
				continue
			}
			ok.Add(1)
		}
	}
	for range 2 {
		wg.Go(func() { worker("POST", e.url("/oauth/token"), tokenHeader, "grant_type=client_credentials") })
		wg.Go(func() { worker("GET", e.url("/protected"), bearer, "") })
	}
	for i := range 5 {
		time.Sleep(300 * time.Millisecond)
		if i%2 == 0 {
			e.load("reload.Caddyfile")
		} else {
			e.load("registration.Caddyfile")
		}
	}
	time.Sleep(300 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d of %d requests failed across five reloads, first: %s", len(failures), int(ok.Load())+len(failures), failures[0])
	}
	if ok.Load() < 100 {
		t.Fatalf("only %d requests during the reloads", ok.Load())
	}
	if status, m, _, err := send("POST", e.url("/oauth/token"), tokenHeader, "grant_type=client_credentials"); err != nil || status != http.StatusOK {
		t.Fatalf("the client was lost across reloads: %d %v %v", status, m, err)
	}
	t.Logf("%d requests, none failed, across five reloads (%d retried once after a closed connection)", ok.Load(), retried.Load())
}
