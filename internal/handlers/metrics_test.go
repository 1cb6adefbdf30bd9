package handlers

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/caddy-dcr/caddy-dcr/internal/metrics"
)

// metricValue reads one sample of a caddy_dcr_* counter, labelled
// name=value, through a registry as a scrape would.
func metricValue(t *testing.T, family, label, value string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	if err := metrics.Register(reg); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != family {
			continue
		}
		for _, m := range f.GetMetric() {
			if hasLabel(m, label, value) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func hasLabel(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}

// delta runs f and returns how much each watched counter moved.
func delta(t *testing.T, watched [][3]string, f func()) []float64 {
	t.Helper()
	before := make([]float64, len(watched))
	for i, w := range watched {
		before[i] = metricValue(t, w[0], w[1], w[2])
	}
	f()
	out := make([]float64, len(watched))
	for i, w := range watched {
		out[i] = metricValue(t, w[0], w[1], w[2]) - before[i]
	}
	return out
}

func TestEndpointsAreCounted(t *testing.T) {
	ts := newTestServer(t, Config{RequireScope: []string{"write"}})
	watched := [][3]string{
		{"caddy_dcr_registrations_total", "outcome", "created"},
		{"caddy_dcr_registrations_total", "outcome", "rejected"},
		{"caddy_dcr_tokens_issued_total", "grant_type", "client_credentials"},
		{"caddy_dcr_token_errors_total", "error", "invalid_client"},
		{"caddy_dcr_token_errors_total", "error", "unsupported_grant_type"},
		{"caddy_dcr_gate_decisions_total", "outcome", "allowed"},
		{"caddy_dcr_gate_decisions_total", "outcome", "no_token"},
		{"caddy_dcr_gate_decisions_total", "outcome", "invalid_token"},
		{"caddy_dcr_gate_decisions_total", "outcome", "insufficient_scope"},
	}
	got := delta(t, watched, func() {
		id, secret := ts.machineClient(`,"scope":"read write"`)
		if w, _ := ts.do("POST", "/oauth/register", "", "application/json", `{"grant_types":"x"}`); w.Code != http.StatusBadRequest {
			t.Fatalf("bad registration: %d", w.Code)
		}
		token := ts.clientCredentialsToken(id, secret, "read write")
		readOnly := ts.clientCredentialsToken(id, secret, "read")
		ts.form("/oauth/token", id, "wrong", url.Values{"grant_type": {"client_credentials"}})
		ts.form("/oauth/token", id, secret, url.Values{"grant_type": {"password"}})
		ts.gated("/api", "Bearer "+token)
		ts.gated("/api", "")
		ts.gated("/api", "Bearer not-a-token")
		ts.gated("/api", "Bearer "+readOnly)
	})
	want := []float64{1, 1, 2, 1, 1, 1, 1, 1, 1}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("%s{%s=%q} moved by %v, want %v", watched[i][0], watched[i][1], watched[i][2], got[i], want[i])
		}
	}
}

// The gate and the token endpoint count every request: counting may not
// cost them an allocation.
func TestCountingAllocatesNothing(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() {
		metrics.Gate(metrics.GateAllowed)
		metrics.TokenIssued("client_credentials")
		metrics.TokenError("invalid_grant")
		metrics.TokenError("made_up")
		metrics.Registration(metrics.RegistrationCreated)
	}); n != 0 {
		t.Errorf("counting allocates %v times", n)
	}
	h := observe(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		noteError(w, "") // what writeJSON adds to every answer
	}, countToken)
	w, r := discardWriter{http.Header{}}, &http.Request{Method: "POST", PostForm: url.Values{"grant_type": {"refresh_token"}}}
	h(w, r) // fills the pool
	if n := testing.AllocsPerRun(100, func() { h(w, r) }); n != 0 {
		t.Errorf("an observed request allocates %v times for counting", n)
	}
}

type discardWriter struct{ h http.Header }

func (d discardWriter) Header() http.Header         { return d.h }
func (d discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d discardWriter) WriteHeader(int)             {}

func TestRegistrationOutcomesByAnswer(t *testing.T) {
	ts := newTestServer(t, Config{})
	for _, tc := range []struct {
		status int
		code   string
		want   string
	}{
		{http.StatusCreated, "", "created"},
		{http.StatusUnauthorized, "invalid_token", "unauthorized"},
		{http.StatusBadRequest, "invalid_redirect_uri", "rejected"},
		{http.StatusTooManyRequests, "", "rate_limited"},
		{http.StatusServiceUnavailable, "temporarily_unavailable", "full"},
		{http.StatusServiceUnavailable, "server_error", "error"},
	} {
		watched := [][3]string{{"caddy_dcr_registrations_total", "outcome", tc.want}}
		got := delta(t, watched, func() {
			ts.srv.countRegistration(httptest.NewRequest("POST", "/oauth/register", nil), &outcome{status: tc.status, code: tc.code})
		})
		if got[0] != 1 {
			t.Errorf("%d %s counted as %s %v times, want once", tc.status, tc.code, tc.want, got[0])
		}
	}
}
