package caddydcr

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/caddy-dcr/caddy-dcr/internal/metrics"
	"github.com/caddy-dcr/caddy-dcr/storage"
	"github.com/caddy-dcr/caddy-dcr/storage/badger"
	"github.com/caddy-dcr/caddy-dcr/storage/storetest"
)

func TestReaperTTLsOfSeveralHandlers(t *testing.T) {
	h := time.Hour
	for _, tc := range []struct {
		name string
		ttls []reapTTLs
		want reapTTLs
	}{
		{"none", nil, reapTTLs{}},
		{"one", []reapTTLs{{24 * h, 90 * 24 * h}}, reapTTLs{24 * h, 90 * 24 * h}},
		{"the longest applies", []reapTTLs{{24 * h, 90 * 24 * h}, {48 * h, 30 * 24 * h}}, reapTTLs{48 * h, 90 * 24 * h}},
		{"off wins", []reapTTLs{{24 * h, 0}, {0, 30 * 24 * h}}, reapTTLs{0, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &reaper{handlers: map[*Handler]reapTTLs{}}
			for _, ttl := range tc.ttls {
				r.handlers[new(Handler)] = ttl
			}
			if got := r.ttls(); got != tc.want {
				t.Fatalf("%+v, want %+v", got, tc.want)
			}
		})
	}
}

// memStore is an in-memory Badger store under the view the module puts
// above every backend, closed when the test ends.
func memStore(t *testing.T) *storage.Cached {
	t.Helper()
	db, err := badger.Open("", badger.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	store, err := storage.NewCached(t.Context(), db, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	return store
}

// A reaper pass removes the clients that went unused or idle too long,
// in batches, and keeps the rest.
func TestReaperRemovesUnusedAndIdleClients(t *testing.T) {
	store := memStore(t)
	now := time.Now()
	add := func(id string, issued, lastUsed time.Time, origin string) {
		t.Helper()
		c := storetest.NewClient(id)
		c.IssuedAt, c.Origin = issued.Unix(), origin
		if !lastUsed.IsZero() {
			c.LastUsedAt = lastUsed.Unix()
		}
		if err := store.CreateClient(t.Context(), c); err != nil {
			t.Fatal(err)
		}
	}
	day := 24 * time.Hour
	// More unused clients than one batch.
	for i := range storage.MaxReapBatch + 20 {
		add("unused-"+strconv.Itoa(i), now.Add(-2*day), time.Time{}, storage.OriginDynamic)
	}
	add("unused-young", now.Add(-time.Hour), time.Time{}, storage.OriginDynamic)
	add("idle", now.Add(-200*day), now.Add(-100*day), storage.OriginDynamic)
	add("active", now.Add(-200*day), now.Add(-day), storage.OriginDynamic)
	add("unused-with-token", now.Add(-2*day), time.Time{}, storage.OriginInitialAccessToken)

	calls := &reapCalls{Store: store}
	r := &reaper{store: calls, log: zap.NewNop(), now: func() time.Time { return now }, handlers: map[*Handler]reapTTLs{}}
	r.handlers[new(Handler)] = reapTTLs{unused: day, idle: 90 * day}
	reg := prometheus.NewPedanticRegistry()
	if err := metrics.Register(reg); err != nil {
		t.Fatal(err)
	}
	reaped := func(reason string) float64 {
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range families {
			for _, m := range f.GetMetric() {
				for _, l := range m.GetLabel() {
					if f.GetName() == "caddy_dcr_clients_reaped_total" && l.GetValue() == reason {
						return m.GetCounter().GetValue()
					}
				}
			}
		}
		return 0
	}
	unused0, idle0 := reaped("unused"), reaped("idle")
	if n := r.reap(t.Context()); n != storage.MaxReapBatch+21 {
		t.Fatalf("reaped %d", n)
	}
	if u, i := reaped("unused")-unused0, reaped("idle")-idle0; u != storage.MaxReapBatch+20 || i != 1 {
		t.Fatalf("caddy_dcr_clients_reaped_total counted %v unused and %v idle", u, i)
	}
	// The second batch of the unused pass resumed where the first ended;
	// each pass started from the oldest.
	if len(calls.after) < 3 || calls.after[0] != (storage.ClientPosition{}) || calls.after[1] != calls.lastOfFirst ||
		calls.after[len(calls.after)-1] != (storage.ClientPosition{}) {
		t.Fatalf("batches started after %v (the first ended at %v)", calls.after, calls.lastOfFirst)
	}
	for _, id := range []string{"unused-young", "active", "unused-with-token"} {
		if _, err := store.Client(t.Context(), id); err != nil {
			t.Errorf("%s: %v", id, err)
		}
	}
	if n, _ := store.CountClients(t.Context()); n != 3 {
		t.Fatalf("%d clients left", n)
	}
	if n := r.reap(t.Context()); n != 0 {
		t.Fatalf("a second pass reaped %d", n)
	}
}

// Handlers on one store share one reaper, which stops when the last lets
// go.
func TestReaperIsSharedPerStore(t *testing.T) {
	store := memStore(t)
	a, b := new(Handler), new(Handler)
	ra, keyA, err := joinReaper(store, a, reapTTLs{unused: time.Hour}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	a.reaper, a.reaperKey = ra, keyA
	rb, keyB, err := joinReaper(store, b, reapTTLs{unused: 2 * time.Hour}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	b.reaper, b.reaperKey = rb, keyB
	if ra != rb || keyA != keyB {
		t.Fatal("two reapers for one store")
	}
	if got := ra.ttls(); got.unused != 2*time.Hour {
		t.Fatalf("ttls %+v", got)
	}
	if err := a.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if err := a.Cleanup(); err != nil {
		t.Fatalf("second cleanup: %v", err)
	}
	select {
	case <-ra.done:
		t.Fatal("stopped while a handler still uses it")
	default:
	}
	if err := b.Cleanup(); err != nil {
		t.Fatal(err)
	}
	<-ra.done // stopped
	if err := new(Handler).Cleanup(); err != nil {
		t.Fatalf("cleanup without provision: %v", err)
	}
}

// The reaper keeps its store open until it has stopped: the storage
// module may let go of the store first (Caddy cleans modules up in map
// order), and a pass must never run on a closed store.
func TestReaperKeepsItsStoreOpenUntilItStops(t *testing.T) {
	ctx := t.Context()
	const key = "test:reaper-lifetime"
	store, err := storage.Share(ctx, key, nil, func() (storage.Store, error) {
		return badger.Open("", badger.Options{InMemory: true})
	}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	r, err := newReaper(store, zap.NewNop(), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	// The storage module's Cleanup, before the handler's.
	if err := storage.Release(key, zap.NewNop()); err != nil {
		t.Fatal(err)
	}
	if n := storage.References(key); n != 1 {
		t.Fatalf("%d references after the module let go, want the reaper's", n)
	}
	r.mu.Lock()
	r.handlers[new(Handler)] = reapTTLs{unused: time.Hour}
	r.mu.Unlock()
	r.reap(ctx) // a pass on the open store
	if _, _, err := store.Clients(ctx, "", 1); err != nil {
		t.Fatalf("the store closed under the reaper: %v", err)
	}
	if err := r.Destruct(); err != nil {
		t.Fatal(err)
	}
	if n := storage.References(key); n != 0 {
		t.Fatalf("%d references after the reaper stopped", n)
	}
}

// reapCalls records where each ReapClients call started, and where the
// first one ended.
type reapCalls struct {
	storage.Store
	after       []storage.ClientPosition
	lastOfFirst storage.ClientPosition
}

func (c *reapCalls) ReapClients(ctx context.Context, p storage.ReapPolicy) ([]storage.ClientPosition, error) {
	reaped, err := c.Store.ReapClients(ctx, p)
	if len(c.after) == 0 && len(reaped) > 0 {
		c.lastOfFirst = reaped[len(reaped)-1]
	}
	c.after = append(c.after, p.After)
	return reaped, err
}
