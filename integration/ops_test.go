package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// dcrCLI runs the built caddy's 'dcr' command against e's admin API.
func (e *env) dcrCLI(args ...string) string {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, caddyBin, append(append([]string{"dcr"}, args...),
		"--address", fmt.Sprintf("127.0.0.1:%d", e.adminPort))...)
	cmd.Env = e.vars
	out, err := cmd.CombinedOutput()
	if err != nil {
		e.t.Fatalf("caddy dcr %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// clientToken gets a client_credentials token and reports the status.
func clientToken(t *testing.T, e *env, id, secret string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", e.url("/oauth/token"), strings.NewReader("grant_type=client_credentials"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	token, _ := m["access_token"].(string)
	return resp.StatusCode, token
}

func gated(t *testing.T, e *env, token string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", e.url("/api"), nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// scrape reads Caddy's metrics handler and returns the samples whose
// name starts with caddy_dcr_, as "name{labels}" -> value.
func scrape(t *testing.T, e *env) map[string]string {
	t.Helper()
	resp, err := http.Get(e.url("/metrics"))
	if err != nil {
		t.Fatal(err)
	}
	text := body(t, resp)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("metrics: %d %s", resp.StatusCode, text)
	}
	out := map[string]string{}
	for line := range strings.SplitSeq(text, "\n") {
		if !strings.HasPrefix(line, "caddy_dcr_") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		out[line[:i]] = line[i+1:]
	}
	return out
}

// TestOperationsThroughCaddy runs registration, tokens, the gate and the
// operator's work through the admin API and the caddy dcr command of a
// real Caddy, then reads the metrics through Caddy's metrics handler and
// checks the audit log, and that no secret reached any log.
func TestOperationsThroughCaddy(t *testing.T) {
	e := newEnv(t)
	p := e.start("ops.Caddyfile")
	var secrets []string

	resp, reg := call(t, "POST", e.url("/oauth/register"), "", `{"grant_types":["client_credentials"],"client_name":"dynamic one"}`)
	wantStatus(t, resp, reg, http.StatusCreated)
	dynID := reg["client_id"].(string)
	secrets = append(secrets, reg["client_secret"].(string), reg["registration_access_token"].(string))
	resp, m := call(t, "POST", e.url("/oauth/register"), "", `{"grant_types":"client_credentials"}`)
	wantStatus(t, resp, m, http.StatusBadRequest)

	// The operator creates a client with the CLI and hands it out.
	var created struct {
		ClientID                string `json:"client_id"`
		ClientSecret            string `json:"client_secret"`
		RegistrationAccessToken string `json:"registration_access_token"`
	}
	out := e.dcrCLI("create", "--name", "nightly job", "--grant-type", "client_credentials", "--scope", "read", "--json")
	if err := json.Unmarshal([]byte(out), &created); err != nil ||
		created.ClientID == "" || created.ClientSecret == "" {
		t.Fatalf("caddy dcr create printed %s (%v)", out, err)
	}
	secrets = append(secrets, created.ClientSecret, created.RegistrationAccessToken)
	status, token := clientToken(t, e, created.ClientID, created.ClientSecret)
	if status != http.StatusOK {
		t.Fatalf("the operator's client gets %d at the token endpoint", status)
	}
	secrets = append(secrets, token)
	if status, _ := clientToken(t, e, created.ClientID, "wrong"); status != http.StatusUnauthorized {
		t.Fatalf("a wrong secret got %d", status)
	}
	if gated(t, e, token) != http.StatusOK || gated(t, e, "") != http.StatusUnauthorized {
		t.Fatal("the gate did not let the token through, or let a request without one through")
	}

	out = e.dcrCLI("clients")
	if !strings.Contains(out, dynID) || !strings.Contains(out, "nightly job") || !strings.Contains(out, "dynamic one") {
		t.Errorf("caddy dcr clients printed:\n%s", out)
	}
	out = e.dcrCLI("rotate", created.ClientID)
	for line := range strings.SplitSeq(out, "\n") {
		if f := strings.Fields(line); len(f) == 2 && (f[0] == "client_secret:" || f[0] == "registration_access_token:") {
			secrets = append(secrets, f[1])
		}
	}
	e.dcrCLI("delete", dynID)
	if out := e.dcrCLI("disable", created.ClientID); !strings.Contains(out, "disabled") {
		t.Errorf("caddy dcr disable printed:\n%s", out)
	}
	e.dcrCLI("enable", created.ClientID)
	out = e.dcrCLI("token", "--ttl", "1h", "--uses", "1")
	for line := range strings.SplitSeq(out, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "token:" {
			secrets = append(secrets, f[1])
		}
	}
	if len(secrets) != 8 {
		t.Fatalf("caddy dcr rotate and token printed no credentials (%d secrets seen)", len(secrets))
	}
	if gated(t, e, token) != http.StatusOK {
		t.Error("rotating the secret revoked the access token issued before")
	}

	// Straight through the admin API, as curl would.
	resp, m = call(t, "GET", fmt.Sprintf("http://127.0.0.1:%d/dcr/clients?q=%s", e.adminPort, url.QueryEscape("nightly")), "", "")
	wantStatus(t, resp, m, http.StatusOK)
	if list := m["clients"].([]any); len(list) != 1 {
		t.Errorf("GET /dcr/clients?q=nightly: %v", m)
	}
	resp, m = call(t, "GET", fmt.Sprintf("http://127.0.0.1:%d/dcr/clients/%s", e.adminPort, dynID), "", "")
	wantStatus(t, resp, m, http.StatusNotFound)
	if !strings.Contains(fmt.Sprint(m["error"]), "not found") {
		t.Errorf("a deleted client: %v", m)
	}

	samples := scrape(t, e)
	for name, want := range map[string]string{
		`caddy_dcr_registrations_total{outcome="created"}`:               "1",
		`caddy_dcr_registrations_total{outcome="rejected"}`:              "1",
		`caddy_dcr_tokens_issued_total{grant_type="client_credentials"}`: "1",
		`caddy_dcr_token_errors_total{error="invalid_client"}`:           "1",
		`caddy_dcr_gate_decisions_total{outcome="allowed"}`:              "2",
		`caddy_dcr_gate_decisions_total{outcome="no_token"}`:             "2", // and the readiness probe
	} {
		if samples[name] != want {
			t.Errorf("%s = %q, want %s", name, samples[name], want)
		}
	}
	var clients, latency bool
	for name, value := range samples {
		clients = clients || strings.HasPrefix(name, `caddy_dcr_clients{store="`) && value == "1"
		latency = latency || strings.HasPrefix(name, `caddy_dcr_store_operation_duration_seconds_count{operation="create_client",outcome="ok"}`)
	}
	if !clients || !latency {
		t.Errorf("the clients gauge (%v) or the store latency (%v) is missing: %v", clients, latency, samples)
	}

	// The admin endpoint's /metrics shows them too.
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", e.adminPort))
	if err != nil {
		t.Fatal(err)
	}
	if text := body(t, resp); !strings.Contains(text, `caddy_dcr_registrations_total{outcome="created"} 1`) {
		t.Errorf("the admin endpoint's /metrics lacks caddy_dcr_registrations_total")
	}

	// A reload registers the collectors in the new config's registry; the
	// counts go on.
	e.load("ops.Caddyfile")
	if got := scrape(t, e)[`caddy_dcr_registrations_total{outcome="created"}`]; got != "1" {
		t.Errorf("after a reload, registrations created = %q, want 1", got)
	}
	// The admin API still reaches the store through the new config's
	// handler.
	if out := e.dcrCLI("clients"); !strings.Contains(out, "nightly job") {
		t.Errorf("caddy dcr clients after a reload printed:\n%s", out)
	}

	logs := p.logs.String()
	assertLogsClean(t, logs, secrets...)
	audit := map[string]int{}
	for line := range strings.SplitSeq(logs, "\n") {
		if !strings.Contains(line, `"logger":"dcr.audit"`) {
			continue
		}
		var entry struct {
			Msg, Actor, Outcome string
		}
		if err := json.Unmarshal([]byte(line[strings.IndexByte(line, '{'):]), &entry); err != nil {
			t.Fatalf("audit line is not JSON: %s", line)
		}
		audit[entry.Msg+" by "+entry.Actor+": "+entry.Outcome]++
	}
	for want, n := range map[string]int{
		"client registered by anonymous: success":           1,
		"client registered by anonymous: failure":           1,
		"client registered by operator: success":            1,
		"client credentials rotated by operator: success":   1,
		"client deleted by operator: success":               1,
		"client settings changed by operator: success":      2,
		"initial access token created by operator: success": 1,
	} {
		if audit[want] != n {
			t.Errorf("%d audit lines %q, want %d; all: %v", audit[want], want, n, audit)
		}
	}
}
