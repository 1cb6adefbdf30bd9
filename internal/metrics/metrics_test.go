package metrics

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// series gathers reg and returns the series of the named family.
func series(t *testing.T, reg *prometheus.Registry, name string) []*dto.Metric {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name {
			return f.GetMetric()
		}
	}
	return nil
}

func counter(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	for _, m := range series(t, reg, name) {
		for _, l := range m.GetLabel() {
			if l.GetName() == label && l.GetValue() == value {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// Several dcr handlers in one config register on one registry, and each
// config load brings a new one: neither is an error, and the counts go on.
func TestRegisterOncePerRegistry(t *testing.T) {
	first := prometheus.NewPedanticRegistry()
	for range 2 {
		if err := Register(first); err != nil {
			t.Fatalf("registering again on one registry: %v", err)
		}
	}
	before := counter(t, first, "caddy_dcr_registrations_total", "outcome", "created")
	Registration(RegistrationCreated)
	second := prometheus.NewPedanticRegistry()
	if err := Register(second); err != nil {
		t.Fatalf("registering on a new registry: %v", err)
	}
	if got := counter(t, second, "caddy_dcr_registrations_total", "outcome", "created"); got != before+1 {
		t.Errorf("the new registry shows %v registrations, want %v", got, before+1)
	}
	if err := Register(nil); err != nil {
		t.Errorf("no registry (a test's context): %v", err)
	}
}

// A label value comes from a fixed list, whatever the request sent.
func TestLabelsStayBounded(t *testing.T) {
	reg := prometheus.NewRegistry()
	if err := Register(reg); err != nil {
		t.Fatal(err)
	}
	before := counter(t, reg, "caddy_dcr_token_errors_total", "error", "other")
	TokenError("made_up_by_a_caller")
	if got := counter(t, reg, "caddy_dcr_token_errors_total", "error", "other") - before; got != 1 {
		t.Errorf("an unknown error code counted %v times as other", got)
	}
	TokenIssued("password") // not a grant the endpoint serves
	if n := len(series(t, reg, "caddy_dcr_tokens_issued_total")); n != 3 {
		t.Errorf("%d grant type series, want the 3 served", n)
	}
	for _, m := range series(t, reg, "caddy_dcr_token_errors_total") {
		if v := m.GetLabel()[0].GetValue(); v == "made_up_by_a_caller" {
			t.Errorf("a caller's error code became a label")
		}
	}
}
