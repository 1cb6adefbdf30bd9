package storage

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// resyncInterval bounds how long a revocation missed by a backend's watch
// (a dropped connection) stays unseen; the watch itself delivers
// revocations within milliseconds.
const resyncInterval = 30 * time.Second

// clientTTL bounds how long a client read from the store is reused: the
// token endpoint reads its client on every request, a database round trip
// on a shared store. A change made by another process (a rotated secret, a
// replaced registration) is seen within this long; this process's own
// changes and any client's deletion (through its revocation) at once.
const clientTTL = time.Second

// maxCachedClients bounds the clients kept; past it, an arbitrary one is
// dropped.
const maxCachedClients = 10000

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

	// revoked maps each kind's keys to their until (int64), and disabled
	// holds the ids of disabled clients (ClientSettings), whose tokens
	// Revoked refuses while they are. Revoked reads them without a lock
	// (sync.Map: entries written once and read by every gated request);
	// mu orders the writers, which keep the later until of two.
	mu       sync.Mutex
	revoked  map[RevocationKind]*sync.Map
	disabled sync.Map
	// changes numbers the disabled set's changes; changed holds, for each
	// client changed since the last resync began, its change's number,
	// so that a resync's snapshot (read before that change committed)
	// does not undo it.
	changes uint64
	changed map[string]uint64

	clientsMu sync.Mutex
	clients   map[string]cachedClient
	// clientWrites counts the client writes (forgetClient): a read of the
	// store that a write overlapped is not cached, since it may be what
	// the write replaced.
	clientWrites uint64

	// shared holds what the handlers on the store share (see Shared).
	shared sync.Map

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
	c := &Cached{Store: s, log: log, now: time.Now, revoked: map[RevocationKind]*sync.Map{}, changed: map[string]uint64{},
		clients: map[string]cachedClient{}, done: make(chan struct{})}
	_, shared := s.(RevocationWatcher)
	c.following.Store(!shared)
	for _, k := range []RevocationKind{RevokedToken, RevokedFamily, RevokedGrant, RevokedClient} {
		c.revoked[k] = new(sync.Map)
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
	if r.Kind == ClientDisabled {
		c.forgetClient(r.Key)
		c.setDisabled(r.Key, r.Until == 1)
		return
	}
	if r.Kind == RevokedClient {
		c.forgetClient(r.Key)
	}
	c.mu.Lock()
	if r.Kind == RevokedClient {
		c.disabled.Delete(r.Key) // deleted: the revocation refuses its tokens
	}
	if m := c.revoked[r.Kind]; m != nil {
		if old, ok := m.Load(r.Key); !ok || old.(int64) < r.Until {
			m.Store(r.Key, r.Until)
		}
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
	c.mu.Lock()
	start := c.changes
	c.mu.Unlock()
	ids, err := c.Store.DisabledClients(ctx)
	if err != nil {
		return err
	}
	disabled := make(map[string]bool, len(ids))
	for _, id := range ids {
		disabled[id] = true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// A client disabled or enabled since the snapshot was asked for
	// keeps its newer state.
	newer := func(id string) bool { return c.changed[id] > start }
	c.disabled.Range(func(id, _ any) bool {
		if !disabled[id.(string)] && !newer(id.(string)) {
			c.disabled.Delete(id)
		}
		return true
	})
	for id := range disabled {
		if !newer(id) {
			c.disabled.Store(id, struct{}{})
		}
	}
	for id, n := range c.changed {
		if n <= start {
			delete(c.changed, id)
		}
	}
	return nil
}

func (c *Cached) sweep() {
	now := c.now().Unix()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range c.revoked {
		m.Range(func(k, until any) bool {
			if until.(int64) < now {
				m.Delete(k)
			}
			return true
		})
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
	w, shared := c.Store.(RevocationWatcher)
	if shared {
		watching.Go(func() { c.watch(ctx, w) })
	}
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

// Shared returns what is kept with the store under key, made by create
// the first time: state that every handler on the store shares, for as
// long as the store is open (the gate's cache of verified tokens). key is
// compared as a map key; a package's unexported type keeps it apart from
// others'.
func (c *Cached) Shared(key any, create func() any) any {
	if v, ok := c.shared.Load(key); ok {
		return v
	}
	v, _ := c.shared.LoadOrStore(key, create())
	return v
}

// Current reports whether the view has every revocation: always for a
// backend of this process alone; for a shared one, while its watch is
// up. A gate that must not accept a token whose revocation it may have
// missed (fail_closed) refuses while it is not.
func (c *Cached) Current() bool { return c.following.Load() }

// Revoked answers from memory, without a lock; it never blocks on the
// backend.
func (c *Cached) Revoked(_ context.Context, jti, clientID, family, grant string) (bool, error) {
	for _, q := range [...]struct {
		kind RevocationKind
		key  string
	}{{RevokedToken, jti}, {RevokedClient, clientID}, {RevokedFamily, family}, {RevokedGrant, grant}} {
		if q.key == "" {
			continue
		}
		if m := c.revoked[q.kind]; m != nil {
			if _, ok := m.Load(q.key); ok {
				return true, nil
			}
		}
	}
	_, disabled := c.disabled.Load(clientID)
	return disabled, nil
}

// The revoking writes take effect in the view before the store is asked:
// a revocation that commits and then reports an error (or that is slow to
// finish) is refused by the gate all the same, and one that fails only
// refuses what its caller meant to revoke anyway.

// RevokeAccessToken implements Store, and takes effect in memory at once.
func (c *Cached) RevokeAccessToken(ctx context.Context, jti string, until int64) error {
	c.add(Revocation{RevokedToken, jti, until})
	return c.Store.RevokeAccessToken(ctx, jti, until)
}

// RevokeFamily implements Store, and takes effect in memory at once.
func (c *Cached) RevokeFamily(ctx context.Context, family string, until int64) error {
	c.add(Revocation{RevokedFamily, family, until})
	return c.Store.RevokeFamily(ctx, family, until)
}

// RevokeGrant implements Store, and takes effect in memory once the grant
// is known (its ID is what the tokens carry).
func (c *Cached) RevokeGrant(ctx context.Context, subject, clientID string, until int64) (*Grant, error) {
	if g, err := c.Store.Grant(ctx, subject, clientID); err == nil {
		c.addGrant(g, until)
	}
	g, err := c.Store.RevokeGrant(ctx, subject, clientID, until)
	if err != nil {
		return nil, err
	}
	c.addGrant(g, until)
	return g, nil
}

func (c *Cached) addGrant(g *Grant, until int64) {
	if g.ID != "" {
		c.add(Revocation{RevokedGrant, g.ID, until})
	}
	for _, f := range g.Families {
		c.add(Revocation{RevokedFamily, f, until})
	}
}

// DeleteClient implements Store, and takes effect in memory at once.
func (c *Cached) DeleteClient(ctx context.Context, id string, until int64) error {
	c.add(Revocation{RevokedClient, id, until}) // forgets the cached client too
	return c.Store.DeleteClient(ctx, id, until)
}

// ReapClients implements Store; the reaped clients' revocations take
// effect in memory once the store reports them.
func (c *Cached) ReapClients(ctx context.Context, p ReapPolicy) ([]ClientPosition, error) {
	reaped, err := c.Store.ReapClients(ctx, p)
	for _, r := range reaped {
		c.add(Revocation{RevokedClient, r.ID, p.Until}) // forgets the cached client too
	}
	return reaped, err
}

type cachedClient struct {
	client *Client // nil: no such client
	read   time.Time
}

// Client implements Store, reusing what was read less than clientTTL ago.
// A miss is remembered as a hit is, so that whether a lookup is quick
// tells only whether the id was looked up a moment ago, never whether the
// client exists (the timing defense of client authentication).
func (c *Cached) Client(ctx context.Context, id string) (*Client, error) {
	now := c.now()
	c.clientsMu.Lock()
	e, ok := c.clients[id]
	writes := c.clientWrites
	c.clientsMu.Unlock()
	if ok && now.Sub(e.read) < clientTTL {
		if e.client == nil {
			return nil, ErrNotFound
		}
		copied := *e.client
		return &copied, nil
	}
	cl, err := c.Store.Client(ctx, id)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	c.clientsMu.Lock()
	if c.clientWrites == writes {
		if len(c.clients) >= maxCachedClients {
			for k := range c.clients {
				delete(c.clients, k)
				break
			}
		}
		c.clients[id] = cachedClient{client: cl, read: now}
	}
	c.clientsMu.Unlock()
	if cl == nil {
		return nil, err
	}
	copied := *cl
	return &copied, nil
}

// CreateClient implements Store; a remembered miss for the id is dropped.
func (c *Cached) CreateClient(ctx context.Context, cl *Client) error {
	err := c.Store.CreateClient(ctx, cl)
	c.forgetClient(cl.ID)
	return err
}

// ReplaceClient implements Store; the cached copy is dropped first.
func (c *Cached) ReplaceClient(ctx context.Context, cl *Client, tokenHash []byte) error {
	c.forgetClient(cl.ID)
	err := c.Store.ReplaceClient(ctx, cl, tokenHash)
	c.forgetClient(cl.ID) // a read racing the write may have cached the old one
	return err
}

// CreateClientWithInitialAccessToken implements Store; a remembered miss
// for the id is dropped.
func (c *Cached) CreateClientWithInitialAccessToken(ctx context.Context, cl *Client, hash []byte, at int64) error {
	err := c.Store.CreateClientWithInitialAccessToken(ctx, cl, hash, at)
	c.forgetClient(cl.ID)
	return err
}

// SetClientSettings implements Store; the cached copy is dropped first.
func (c *Cached) SetClientSettings(ctx context.Context, id string, old, s ClientSettings) (*Client, error) {
	c.forgetClient(id)
	if s.Disabled {
		// Refused from before the write, so that no token is accepted
		// once the caller hears the client is disabled.
		c.setDisabled(id, true)
	}
	cl, err := c.Store.SetClientSettings(ctx, id, old, s)
	c.forgetClient(id)
	switch {
	case err == nil:
		c.setDisabled(id, cl.Settings.Disabled)
	case errors.Is(err, ErrConflict):
		// Nothing was written: undo the early refusal unless the
		// client is disabled as stored.
		if stored, rerr := c.Store.Client(ctx, id); rerr == nil {
			c.setDisabled(id, stored.Settings.Disabled)
		}
	}
	return cl, err
}

func (c *Cached) setDisabled(id string, disabled bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.changes++
	c.changed[id] = c.changes
	if disabled {
		c.disabled.Store(id, struct{}{})
	} else {
		c.disabled.Delete(id)
	}
}

// TouchClient implements Store; the cached copy is dropped, so that the
// next read sees the new LastUsedAt.
func (c *Cached) TouchClient(ctx context.Context, id string, at int64) error {
	err := c.Store.TouchClient(ctx, id, at)
	c.forgetClient(id)
	return err
}

func (c *Cached) forgetClient(id string) {
	c.clientsMu.Lock()
	delete(c.clients, id)
	c.clientWrites++
	c.clientsMu.Unlock()
}
