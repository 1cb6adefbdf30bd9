package storage_test

import (
	"context"
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/caddy-dcr/caddy-dcr/internal/metrics"
	"github.com/caddy-dcr/caddy-dcr/storage"
)

// histogramCount reads how many operations the latency histogram holds
// for one operation and outcome.
func histogramCount(t *testing.T, op, outcome string) uint64 {
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
		if f.GetName() != "caddy_dcr_store_operation_duration_seconds" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["operation"] == op && labels["outcome"] == outcome {
				return m.GetHistogram().GetSampleCount()
			}
		}
	}
	return 0
}

func TestObserveTimesEveryBackendOperation(t *testing.T) {
	s := storage.Observe(open(t))
	defer s.Close()
	ctx := t.Context()
	before, missBefore := histogramCount(t, "create_client", "ok"), histogramCount(t, "client", "ok")
	if err := s.CreateClient(ctx, &storage.Client{ID: "a", RegistrationTokenHash: storage.HashSecret("t")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Client(ctx, "missing"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatal(err)
	}
	if got := histogramCount(t, "create_client", "ok") - before; got != 1 {
		t.Errorf("create_client observed %d times, want 1", got)
	}
	// A miss is an answer, not a failure of the backend.
	if got := histogramCount(t, "client", "ok") - missBefore; got != 1 {
		t.Errorf("a client miss observed %d times as ok, want 1", got)
	}
}

type watcherStore struct{ storage.Store }

func (watcherStore) WatchRevocations(context.Context, func(storage.Revocation), func()) error {
	return nil
}

// The token gate follows a shared backend's revocations: observing it may
// not hide that it can.
func TestObserveKeepsTheRevocationWatch(t *testing.T) {
	a, b := open(t), open(t)
	defer a.Close()
	defer b.Close()
	if _, ok := storage.Observe(watcherStore{a}).(storage.RevocationWatcher); !ok {
		t.Error("an observed watcher no longer watches")
	}
	if _, ok := storage.Observe(b).(storage.RevocationWatcher); ok {
		t.Error("an observed store that cannot watch claims it can")
	}
}
