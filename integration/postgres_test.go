package integration

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2/clientcredentials"

	"github.com/caddy-dcr/caddy-dcr/internal/pgtest"
)

// instance is one Caddy of several sharing a PostgreSQL store.
type instance struct {
	port int
	proc *caddyProc
}

func (i *instance) url(path string) string { return fmt.Sprintf("http://127.0.0.1:%d%s", i.port, path) }

// startInstance runs testdata/pg_instance.Caddyfile on port with the
// store at dsn.
func (e *env) startInstance(port int, dsn string, extra ...string) *instance {
	e.t.Helper()
	vars := append(append([]string(nil), e.vars...), fmt.Sprintf("DCR_TEST_PORT=%d", port), "DCR_TEST_DSN="+dsn)
	vars = append(vars, extra...)
	i := &instance{port: port}
	i.proc = e.startWith("pg_instance.Caddyfile", vars, i.url("/.dcr-readiness-probe"))
	return i
}

// gate sends a gated request with token and returns the status.
func gate(t *testing.T, i *instance, token string) int {
	t.Helper()
	status, err := gateStatus(i, token)
	if err != nil {
		t.Fatal(err)
	}
	return status
}

// gateStatus is gate for a goroutine other than the test's.
func gateStatus(i *instance, token string) (int, error) {
	req, _ := http.NewRequest("GET", i.url("/api"), nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// within polls until cond holds, for at most d, and reports how long it
// took.
func within(d time.Duration, cond func() bool) (time.Duration, bool) {
	start := time.Now()
	for time.Since(start) < d {
		if cond() {
			return time.Since(start), true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start), cond()
}

// TestTwoInstancesShareOnePostgreSQL is the several-instances deployment:
// two Caddy processes on one PostgreSQL store behind a shared issuer.
// What one registers, the other knows at once; what one revokes, the
// other's gate refuses within a second; one dying does not stop the
// other; the database going away gives 503s, and its return, service,
// without a restart.
func TestTwoInstancesShareOnePostgreSQL(t *testing.T) {
	e := newEnv(t)
	cluster := pgtest.StartCluster(t)
	dsn := cluster.NewDatabase(t)
	a := e.startInstance(e.port, dsn)
	b := e.startInstance(e.port2, dsn)

	// Registered on A, a token from B, accepted by A's gate.
	resp, reg := call(t, "POST", a.url("/oauth/register"), "", `{"grant_types":["client_credentials"]}`)
	wantStatus(t, resp, reg, http.StatusCreated)
	cfg := clientcredentials.Config{ClientID: reg["client_id"].(string), ClientSecret: reg["client_secret"].(string), TokenURL: b.url("/oauth/token")}
	tok, err := cfg.Token(context.Background())
	if err != nil {
		t.Fatalf("a token from B for a client registered on A: %v", err)
	}
	if status := gate(t, a, tok.AccessToken); status != 200 {
		t.Fatalf("A's gate with B's token: %d", status)
	}

	// Revoked on B: A refuses within a second.
	form := url.Values{"token": {tok.AccessToken}}
	req, _ := http.NewRequest("POST", b.url("/oauth/revoke"), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(cfg.ClientID, cfg.ClientSecret)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("revoke on B: %v %v", resp, err)
	}
	if took, ok := within(time.Second, func() bool { return gate(t, a, tok.AccessToken) == 401 }); !ok {
		t.Fatalf("A still accepts a token revoked on B after %s", took)
	} else {
		t.Logf("A refused the token revoked on B after %s", took)
	}

	// The client deleted on A: B refuses its tokens within a second.
	cfg.TokenURL = a.url("/oauth/token")
	tok2, err := cfg.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if status := gate(t, b, tok2.AccessToken); status != 200 {
		t.Fatalf("B's gate: %d", status)
	}
	del, _ := http.NewRequest("DELETE", a.url("/oauth/register/"+cfg.ClientID), nil)
	del.Header.Set("Authorization", "Bearer "+reg["registration_access_token"].(string))
	if resp, err := http.DefaultClient.Do(del); err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("delete on A: %v %v", resp, err)
	}
	if took, ok := within(time.Second, func() bool { return gate(t, b, tok2.AccessToken) == 401 }); !ok {
		t.Fatalf("B still accepts a deleted client's token after %s", took)
	}

	// A killed: B keeps serving; A restarted serves again.
	resp, reg = call(t, "POST", b.url("/oauth/register"), "", `{"grant_types":["client_credentials"]}`)
	wantStatus(t, resp, reg, http.StatusCreated)
	cfg = clientcredentials.Config{ClientID: reg["client_id"].(string), ClientSecret: reg["client_secret"].(string), TokenURL: b.url("/oauth/token")}
	tok3, err := cfg.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// B under load (gated calls and token requests) while A is killed:
	// B answers every request it gets.
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		bad, n := 0, 0
		for {
			select {
			case <-stop:
				if bad > 0 {
					done <- fmt.Errorf("B failed %d of %d requests while A died", bad, n)
				} else {
					done <- nil
				}
				return
			default:
			}
			n++
			if status, err := gateStatus(b, tok3.AccessToken); err != nil || status != 200 {
				bad++
			}
			if _, err := cfg.Token(context.Background()); err != nil {
				bad++
			}
		}
	}()
	time.Sleep(300 * time.Millisecond)
	a.proc.kill()
	time.Sleep(300 * time.Millisecond)
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	a = e.startInstance(e.port, dsn)
	if status := gate(t, a, tok3.AccessToken); status != 200 {
		t.Fatalf("restarted A: %d", status)
	}
	// C refuses rather than miss a revocation (fail_closed).
	// Until its watch of the database is up (a moment after start), it
	// refuses too: a revocation made meanwhile could be missed.
	c := e.startInstance(e.port3, dsn, "DCR_TEST_FAIL_CLOSED=fail_closed")
	if took, ok := within(5*time.Second, func() bool { return gate(t, c, tok3.AccessToken) == 200 }); !ok {
		t.Fatalf("C refuses %s after start", took)
	}

	// PostgreSQL down: the token endpoint answers 503 with Retry-After,
	// the gate keeps accepting the token it knows; back up: service
	// resumes without a restart.
	cluster.Stop()
	form = url.Values{"grant_type": {"client_credentials"}}
	tokenReq := func() *http.Response {
		req, _ := http.NewRequest("POST", b.url("/oauth/token"), strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(cfg.ClientID, cfg.ClientSecret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	start := time.Now()
	if resp, m := call(t, "POST", b.url("/oauth/register"), "", `{"grant_types":["client_credentials"]}`); resp.StatusCode != http.StatusServiceUnavailable ||
		resp.Header.Get("Retry-After") == "" || m["error"] != "server_error" {
		t.Fatalf("registration with PostgreSQL down: %d %q %v", resp.StatusCode, resp.Header.Get("Retry-After"), m)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("the 503 took %s", took)
	}
	// Once the client B read a moment ago is stale (one second), the token
	// endpoint cannot authenticate it either.
	time.Sleep(1100 * time.Millisecond)
	if resp := tokenReq(); resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("token with PostgreSQL down: %d %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if status := gate(t, b, tok3.AccessToken); status != 200 {
		t.Fatalf("the gate with PostgreSQL down: %d", status)
	}
	if took, ok := within(5*time.Second, func() bool { return gate(t, c, tok3.AccessToken) == http.StatusServiceUnavailable }); !ok {
		t.Fatalf("the fail_closed gate still accepts %s after PostgreSQL went down", took)
	}
	if err := cluster.Start(); err != nil {
		t.Fatal(err)
	}
	if took, ok := within(15*time.Second, func() bool { return tokenReq().StatusCode == 200 }); !ok {
		t.Fatalf("no recovery %s after PostgreSQL came back", took)
	}
	if took, ok := within(15*time.Second, func() bool { return gate(t, c, tok3.AccessToken) == 200 }); !ok {
		t.Fatalf("the fail_closed gate still refuses %s after PostgreSQL came back", took)
	}
	assertLogsClean(t, a.proc.logs.String()+b.proc.logs.String(), cfg.ClientSecret, tok.AccessToken, tok3.AccessToken)
}

// TestSigningKeyRotationAcrossInstances: when the signing key is due for
// rotation, the instances make one successor between them, each signs with
// it, and each accepts the tokens of the others, old key and new.
func TestSigningKeyRotationAcrossInstances(t *testing.T) {
	e := newEnv(t)
	dsn := pgtest.Start(t)
	const rotation = "DCR_TEST_KEY_ROTATION=2s"
	a := e.startInstance(e.port, dsn, rotation)
	b := e.startInstance(e.port2, dsn, rotation)
	resp, reg := call(t, "POST", a.url("/oauth/register"), "", `{"grant_types":["client_credentials"]}`)
	wantStatus(t, resp, reg, http.StatusCreated)
	token := func(i *instance) string {
		cfg := clientcredentials.Config{ClientID: reg["client_id"].(string), ClientSecret: reg["client_secret"].(string), TokenURL: i.url("/oauth/token")}
		tok, err := cfg.Token(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return tok.AccessToken
	}
	kid := func(jwt string) string {
		header, _, _ := strings.Cut(jwt, ".")
		b, err := base64.RawURLEncoding.DecodeString(header)
		if err != nil {
			t.Fatal(err)
		}
		var h struct{ Kid string }
		_ = json.Unmarshal(b, &h)
		return h.Kid
	}
	old := token(a)
	time.Sleep(2500 * time.Millisecond)
	// Both due to rotate at once.
	var fromA, fromB string
	var wg sync.WaitGroup
	wg.Go(func() { fromA = token(a) })
	wg.Go(func() { fromB = token(b) })
	wg.Wait()
	if kid(fromA) == kid(old) || kid(fromA) != kid(fromB) {
		t.Fatalf("keys: old %s, A now %s, B now %s; want one new key for both", kid(old), kid(fromA), kid(fromB))
	}
	for _, i := range []*instance{a, b} {
		for name, tok := range map[string]string{"old key": old, "A's new key": fromA, "B's new key": fromB} {
			if status := gate(t, i, tok); status != 200 {
				t.Errorf("instance %d refuses a token of %s: %d", i.port, name, status)
			}
		}
		if keys := len(getJSON(t, i.url("/oauth/jwks"))["keys"].([]any)); keys != 2 {
			t.Errorf("instance %d publishes %d keys, want the old and the one new", i.port, keys)
		}
	}
}
