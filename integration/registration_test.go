package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// call sends a JSON request and decodes a JSON answer.
func call(t *testing.T, method, url, token, body string) (*http.Response, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(raw) > 0 && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("%s %s: bad JSON %q", method, url, raw)
		}
	}
	return resp, m
}

func wantStatus(t *testing.T, resp *http.Response, m map[string]any, status int) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("%s %s: status %d, want %d (%v)", resp.Request.Method, resp.Request.URL, resp.StatusCode, status, m)
	}
}

// TestRegistrationOverHTTP registers, reads, updates, rotates and deletes
// a client through a real Caddy, as an operator would with curl.
func TestRegistrationOverHTTP(t *testing.T) {
	e := newEnv(t)
	p := e.start("registration.Caddyfile")

	resp, m := call(t, "POST", e.url("/oauth/register"), "",
		`{"client_name":"CLI","redirect_uris":["http://127.0.0.1:8765/callback"],"scope":"read","software_id":"cli"}`)
	wantStatus(t, resp, m, http.StatusCreated)
	if resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("Pragma") != "no-cache" {
		t.Errorf("caching headers %v", resp.Header)
	}
	id, secret, token := m["client_id"].(string), m["client_secret"].(string), m["registration_access_token"].(string)
	uri := m["registration_client_uri"].(string)
	if uri != e.url("/oauth/register/"+id) {
		t.Fatalf("registration_client_uri %q", uri)
	}

	resp, m = call(t, "GET", uri, token, "")
	wantStatus(t, resp, m, http.StatusOK)
	if m["client_name"] != "CLI" || m["software_id"] != "cli" {
		t.Fatalf("read: %v", m)
	}

	resp, m = call(t, "PUT", uri, token,
		fmt.Sprintf(`{"client_id":%q,"client_name":"CLI 2","redirect_uris":["http://127.0.0.1:8765/callback"]}`, id))
	wantStatus(t, resp, m, http.StatusOK)
	if m["client_name"] != "CLI 2" || m["scope"] != "read write" {
		t.Fatalf("update: %v", m)
	}

	resp, m = call(t, "POST", uri+"/rotate_secret", token, "")
	wantStatus(t, resp, m, http.StatusOK)
	newSecret, newToken := m["client_secret"].(string), m["registration_access_token"].(string)
	resp, m = call(t, "GET", uri, token, "")
	wantStatus(t, resp, m, http.StatusUnauthorized)
	if resp.Header.Get("WWW-Authenticate") != `Bearer error="invalid_token"` {
		t.Errorf("challenge %q", resp.Header.Get("WWW-Authenticate"))
	}

	resp, m = call(t, "DELETE", uri, newToken, "")
	wantStatus(t, resp, m, http.StatusNoContent)
	resp, m = call(t, "GET", uri, newToken, "")
	wantStatus(t, resp, m, http.StatusUnauthorized)

	// Other paths need a token.
	resp, _ = call(t, "GET", e.url("/anything"), "", "")
	wantStatus(t, resp, nil, http.StatusUnauthorized)

	// The debug log and the access log carried the requests above; none
	// of the secrets or tokens may be in them.
	time.Sleep(100 * time.Millisecond)
	logs := p.logs.String()
	if !strings.Contains(logs, "client registered") || !strings.Contains(logs, id) {
		t.Fatalf("expected debug logs naming the client; got:\n%.2000s", logs)
	}
	assertLogsClean(t, logs, secret, token, newSecret, newToken)
}

// TestRestartKeepsClients: a registered client and its registration access
// token work after Caddy stops and starts again on the same storage.
func TestRestartKeepsClients(t *testing.T) {
	e := newEnv(t)
	p := e.start("registration.Caddyfile")
	resp, m := call(t, "POST", e.url("/oauth/register"), "", `{"grant_types":["client_credentials"]}`)
	wantStatus(t, resp, m, http.StatusCreated)
	uri, token := m["registration_client_uri"].(string), m["registration_access_token"].(string)
	p.stop()

	e.start("registration.Caddyfile")
	resp, m = call(t, "GET", uri, token, "")
	wantStatus(t, resp, m, http.StatusOK)
}

// TestKilledProcessKeepsAnsweredRegistrations: every registration that was
// answered 201 survives Caddy being killed with SIGKILL in the middle of a
// stream of registrations.
func TestKilledProcessKeepsAnsweredRegistrations(t *testing.T) {
	e := newEnv(t)
	p := e.start("registration.Caddyfile")

	type answered struct{ uri, token string }
	var (
		mu   sync.Mutex
		done []answered
		wg   sync.WaitGroup
	)
	stop := make(chan struct{})
	client := &http.Client{Timeout: 5 * time.Second}
	for range 8 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest("POST", e.url("/oauth/register"), strings.NewReader(`{"grant_types":["client_credentials"]}`))
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					return // the server is gone
				}
				var m map[string]any
				err = json.NewDecoder(resp.Body).Decode(&m)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusCreated {
					continue // cut off mid-answer: not answered
				}
				mu.Lock()
				done = append(done, answered{m["registration_client_uri"].(string), m["registration_access_token"].(string)})
				mu.Unlock()
			}
		})
	}
	// Let registrations flow, then kill Caddy while they still do.
	for {
		mu.Lock()
		n := len(done)
		mu.Unlock()
		if n >= 300 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.kill()
	close(stop)
	wg.Wait()

	e.start("registration.Caddyfile")
	for _, a := range done {
		resp, m := call(t, "GET", a.uri, a.token, "")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("a registration answered 201 was lost after SIGKILL: %d %v", resp.StatusCode, m)
		}
	}
	t.Logf("%d answered registrations all survived SIGKILL", len(done))
}

// TestReloadSharesStore reloads into a config where the first site changed
// and a second site names the same storage: the reload must not fail on
// Badger's directory lock, and no client may be lost.
func TestReloadSharesStore(t *testing.T) {
	e := newEnv(t)
	p := e.start("registration.Caddyfile")
	resp, m := call(t, "POST", e.url("/oauth/register"), "", `{"grant_types":["client_credentials"]}`)
	wantStatus(t, resp, m, http.StatusCreated)
	id, token := m["client_id"].(string), m["registration_access_token"].(string)

	e.load("reload.Caddyfile")

	resp, m = call(t, "GET", e.url("/oauth/register/"+id), token, "")
	wantStatus(t, resp, m, http.StatusOK)
	resp, m = call(t, "GET", e.url2("/register/"+id), token, "")
	wantStatus(t, resp, m, http.StatusOK)
	// The new settings are in force: admin is now a supported scope.
	resp, m = call(t, "POST", e.url("/oauth/register"), "", `{"grant_types":["client_credentials"],"scope":"admin"}`)
	wantStatus(t, resp, m, http.StatusCreated)
	if m["client_secret_expires_at"].(float64) == 0 {
		t.Errorf("client_secret_ttl not applied after reload: %v", m)
	}

	// And back again, which drops the second site.
	e.load("registration.Caddyfile")
	resp, m = call(t, "GET", e.url("/oauth/register/"+id), token, "")
	wantStatus(t, resp, m, http.StatusOK)

	if logs := p.logs.String(); strings.Contains(logs, "Another process is using this Badger database") {
		t.Fatalf("reload fought over the directory lock:\n%s", logs)
	}
}

// TestBadConfigNamesDirective: a bad value fails at load time with an
// error that names the subdirective.
func TestBadConfigNamesDirective(t *testing.T) {
	e := newEnv(t)
	out, ok := e.validate("bad_issuer.Caddyfile")
	if ok {
		t.Fatalf("a config with a bad issuer validated:\n%s", out)
	}
	if !strings.Contains(out, "issuer") || !strings.Contains(out, "query or fragment") {
		t.Fatalf("the error does not name the problem:\n%s", out)
	}
}
