package caddydcr

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddy-dcr/caddy-dcr/internal/handlers"
	"github.com/caddy-dcr/caddy-dcr/internal/metrics"
	"github.com/caddy-dcr/caddy-dcr/storage"
)

// reapers holds one reaper per open store, shared by every handler that
// uses the store, across config reloads, as the store itself is.
var reapers = caddy.NewUsagePool()

// reapInterval is how often a reaper looks for clients to remove. The
// TTLs it applies are hours and days; a pass costs one read of the
// clients (Badger) or one statement per 500 reaped (PostgreSQL).
const reapInterval = 10 * time.Minute

// reapTTLs are a handler's unused_client_ttl and idle_client_ttl; 0 is
// off.
type reapTTLs struct{ unused, idle time.Duration }

// reaper removes a store's unused and idle clients every reapInterval
// (see storage.ReapPolicy). Several handlers on one store share it, each
// with its TTLs: a client is reaped only when every one of them would
// reap it (the longest TTL applies, and off wins). Its goroutine is owned
// by the pool entry and stopped by Destruct, when the last handler lets
// go. Instances sharing a PostgreSQL database each run one; the store
// has them reap one at a time, and each client is removed once.
//
// The reaper holds a reference to the shared store of its own
// (storage.Acquire), dropped by Destruct once its goroutine ended: Caddy
// cleans a config's modules up in map order, so the storage module may let
// go of the store before the handlers let go of the reaper, and without
// it the store could close under a pass, or before the next one.
type reaper struct {
	store    storage.Store
	storeKey string // storage.Acquire's key; "" for a store not shared
	log      *zap.Logger
	now      func() time.Time

	mu       sync.Mutex
	handlers map[*Handler]reapTTLs

	cancel context.CancelFunc
	done   chan struct{}
}

// joinReaper takes a share of store's reaper, starting it if need be, and
// registers h's TTLs with it. The caller lets go with leave and
// reapers.Delete(key).
func joinReaper(store storage.Store, h *Handler, ttls reapTTLs, log *zap.Logger) (*reaper, string, error) {
	key := fmt.Sprintf("reaper:%p", store)
	v, _, err := reapers.LoadOrNew(key, func() (caddy.Destructor, error) {
		r, err := newReaper(store, log, time.Now)
		if err != nil {
			return nil, err
		}
		return r, nil
	})
	if err != nil {
		return nil, "", err
	}
	r := v.(*reaper)
	r.mu.Lock()
	r.handlers[h] = ttls
	r.mu.Unlock()
	return r, key, nil
}

func newReaper(store storage.Store, log *zap.Logger, now func() time.Time) (*reaper, error) {
	key, err := storage.Acquire(store)
	if err != nil {
		return nil, fmt.Errorf("starting the reaper: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &reaper{store: store, storeKey: key, log: log, now: now, handlers: map[*Handler]reapTTLs{},
		cancel: cancel, done: make(chan struct{})}
	go r.run(ctx)
	return r, nil
}

// leave removes h's TTLs.
func (r *reaper) leave(h *Handler) {
	r.mu.Lock()
	delete(r.handlers, h)
	r.mu.Unlock()
}

// Destruct stops the reaper, waiting for a pass under way to end, then
// lets go of its reference to the store (the last one closes it).
func (r *reaper) Destruct() error {
	r.cancel()
	<-r.done
	if r.storeKey == "" {
		return nil
	}
	// Caddy's logger, not the handler's: the store may outlive the
	// config whose logger that is.
	return storage.Release(r.storeKey, caddy.Log().Named("dcr.storage"))
}

// run reaps every reapInterval until ctx is cancelled (Destruct).
func (r *reaper) run(ctx context.Context) {
	defer close(r.done)
	ticker := time.NewTicker(reapInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		r.reap(ctx)
	}
}

// report counts and audits clients reaped for reason, through one of the
// handlers (they share the store, its metrics and its audit log).
func (r *reaper) report(reason string, ids []string) {
	if len(ids) == 0 {
		return
	}
	r.mu.Lock()
	var srv *handlers.Server
	for h := range r.handlers {
		if h.server != nil {
			srv = h.server
			break
		}
	}
	r.mu.Unlock()
	if srv == nil {
		metrics.ClientsReaped(reason, len(ids))
		return
	}
	srv.ClientsReaped(reason, ids)
}

// ttls are the TTLs that apply: for each, off if any handler has it off,
// else the longest.
func (r *reaper) ttls() reapTTLs {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out reapTTLs
	first := true
	for _, t := range r.handlers {
		if first {
			out, first = t, false
			continue
		}
		if t.unused == 0 || out.unused == 0 {
			out.unused = 0
		} else {
			out.unused = max(out.unused, t.unused)
		}
		if t.idle == 0 || out.idle == 0 {
			out.idle = 0
		} else {
			out.idle = max(out.idle, t.idle)
		}
	}
	return out
}

// reap removes, in batches, every client the TTLs select, and reports how
// many it removed.
func (r *reaper) reap(ctx context.Context) int {
	ttls := r.ttls()
	if ttls.unused == 0 && ttls.idle == 0 {
		return 0
	}
	now := r.now()
	total := 0
	for _, pass := range []struct {
		reason string
		ttl    time.Duration
	}{{"unused", ttls.unused}, {"idle", ttls.idle}} {
		if pass.ttl == 0 {
			continue
		}
		p := storage.ReapPolicy{
			Now: now.Unix(), Until: now.Add(handlers.RevocationRetention).Unix(), Limit: storage.MaxReapBatch,
		}
		if pass.reason == "unused" {
			p.UnusedBefore = now.Add(-pass.ttl).Unix()
		} else {
			p.IdleBefore = now.Add(-pass.ttl).Unix()
		}
		for ctx.Err() == nil {
			reaped, err := r.store.ReapClients(ctx, p)
			total += len(reaped)
			r.report(pass.reason, storage.IDs(reaped))
			if err != nil {
				if ctx.Err() == nil {
					r.log.Error("reaping clients failed", zap.String("reason", pass.reason), zap.Error(err))
				}
				break
			}
			if len(reaped) < storage.MaxReapBatch {
				break
			}
			// The next batch starts where this one ended, without
			// reading again the clients this one passed over.
			p.After = reaped[len(reaped)-1]
		}
	}
	if total > 0 {
		r.log.Info("reaped unused and idle clients", zap.Int("count", total),
			zap.Duration("unused_client_ttl", ttls.unused), zap.Duration("idle_client_ttl", ttls.idle))
	}
	return total
}
