package storage

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// resyncInterval bounds how long a revocation missed by a backend's watch
// (a dropped connection) stays unseen; the watch itself delivers
// revocations within milliseconds.
const resyncInterval = 30 * time.Second

// Cached is a Store whose revocation check is answered from memory, so the
// token gate asks no backend per request. The view holds every live
// revocation: loaded at start, added to by this process's own revoking
// writes once they commit, and, for a backend shared by several processes
// (a RevocationWatcher), by the other processes' as the backend reports
// them, with a full reload every 30 s and after a lost connection. A
// revocation is never taken back, so the view only grows, less what has
// expired.
type Cached struct {
	Store
	log *zap.Logger
	now func() time.Time

	mu      sync.RWMutex
	revoked map[RevocationKind]map[string]int64 // kind -> key -> until

	// following is false while the watch of a shared backend is down:
	// revocations made elsewhere are not seen until it is back.
	following atomic.Bool

	stop context.CancelFunc
	done chan struct{}
}

// NewCached loads the revocations of s and keeps them in step until Close,
// which also closes s. The goroutine that keeps them is owned by the
// Cached value and stopped by its Close.
func NewCached(ctx context.Context, s Store, log *zap.Logger) (*Cached, error) {
	if log == nil {
		log = zap.NewNop()
	}
	c := &Cached{Store: s, log: log, now: time.Now, revoked: map[RevocationKind]map[string]int64{}, done: make(chan struct{})}
	_, shared := s.(RevocationWatcher)
	c.following.Store(!shared)
	for _, k := range []RevocationKind{RevokedToken, RevokedFamily, RevokedGrant, RevokedClient} {
		c.revoked[k] = map[string]int64{}
	}
	if err := c.resync(ctx); err != nil {
		return nil, err
	}
	bg, stop := context.WithCancel(context.Background())
	c.stop = stop
	go c.maintain(bg)
	return c, nil
}

// Close stops keeping the view and closes the store.
func (c *Cached) Close() error {
	c.stop()
	<-c.done
	return c.Store.Close()
}

func (c *Cached) add(r Revocation) {
	c.mu.Lock()
	if m := c.revoked[r.Kind]; m != nil && m[r.Key] < r.Until {
		m[r.Key] = r.Until
	}
	c.mu.Unlock()
}

func (c *Cached) resync(ctx context.Context) error {
	all, err := c.Store.Revocations(ctx)
	if err != nil {
		return err
	}
	for _, r := range all {
		c.add(r)
	}
	return nil
}

func (c *Cached) sweep() {
	now := c.now().Unix()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range c.revoked {
		for k, until := range m {
			if until < now {
				delete(m, k)
			}
		}
	}
}

// maintain sweeps expired revocations and, for a shared backend, follows
// its revocations, until ctx is cancelled by Close.
func (c *Cached) maintain(ctx context.Context) {
	var watching sync.WaitGroup
	defer func() {
		watching.Wait() // the watch ends with ctx, before the store closes
		close(c.done)
	}()
	if w, ok := c.Store.(RevocationWatcher); ok {
		watching.Go(func() { c.watch(ctx, w) })
	}
	_, shared := c.Store.(RevocationWatcher)
	ticker := time.NewTicker(resyncInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		c.sweep()
		if shared {
			if err := c.resync(ctx); err != nil && ctx.Err() == nil {
				c.log.Warn("reloading revocations failed", zap.Error(err))
			}
		}
	}
}

// watch follows a shared backend's revocations, reconnecting with a
// growing pause after a failure, until ctx is done.
func (c *Cached) watch(ctx context.Context, w RevocationWatcher) {
	pause := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := w.WatchRevocations(ctx, c.add, func() {
			if err := c.resync(ctx); err != nil {
				if ctx.Err() == nil {
					c.log.Warn("reloading revocations failed", zap.Error(err))
				}
				return
			}
			c.following.Store(true)
			pause = 100 * time.Millisecond
		})
		c.following.Store(false)
		if ctx.Err() != nil {
			return
		}
		c.log.Warn("following revocations failed; retrying", zap.Error(err), zap.Duration("pause", pause))
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
		pause = min(pause*2, 5*time.Second)
	}
}

// Current reports whether the view has every revocation: always for a
// backend of this process alone; for a shared one, while its watch is
// up. A gate that must not accept a token whose revocation it may have
// missed (fail_closed) refuses while it is not.
func (c *Cached) Current() bool { return c.following.Load() }

// Revoked answers from memory; it never blocks on the backend.
func (c *Cached) Revoked(_ context.Context, jti, clientID, family, grant string) (bool, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, q := range [...]struct {
		kind RevocationKind
		key  string
	}{{RevokedToken, jti}, {RevokedClient, clientID}, {RevokedFamily, family}, {RevokedGrant, grant}} {
		if q.key == "" {
			continue
		}
		if _, ok := c.revoked[q.kind][q.key]; ok {
			return true, nil
		}
	}
	return false, nil
}

// RevokeAccessToken implements Store, and takes effect in memory at once.
func (c *Cached) RevokeAccessToken(ctx context.Context, jti string, until int64) error {
	if err := c.Store.RevokeAccessToken(ctx, jti, until); err != nil {
		return err
	}
	c.add(Revocation{RevokedToken, jti, until})
	return nil
}

// RevokeFamily implements Store, and takes effect in memory at once.
func (c *Cached) RevokeFamily(ctx context.Context, family string, until int64) error {
	if err := c.Store.RevokeFamily(ctx, family, until); err != nil {
		return err
	}
	c.add(Revocation{RevokedFamily, family, until})
	return nil
}

// RevokeGrant implements Store, and takes effect in memory at once.
func (c *Cached) RevokeGrant(ctx context.Context, subject, clientID string, until int64) (*Grant, error) {
	g, err := c.Store.RevokeGrant(ctx, subject, clientID, until)
	if err != nil {
		return nil, err
	}
	if g.ID != "" {
		c.add(Revocation{RevokedGrant, g.ID, until})
	}
	for _, f := range g.Families {
		c.add(Revocation{RevokedFamily, f, until})
	}
	return g, nil
}

// DeleteClient implements Store, and takes effect in memory at once.
func (c *Cached) DeleteClient(ctx context.Context, id string, until int64) error {
	if err := c.Store.DeleteClient(ctx, id, until); err != nil {
		return err
	}
	c.add(Revocation{RevokedClient, id, until})
	return nil
}
