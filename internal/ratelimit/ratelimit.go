// Package ratelimit limits what one client address may do: a token bucket
// per address, in tables that every dcr handler on a store shares, so that
// neither a config reload nor a second handler hands out a fresh burst.
package ratelimit

import (
	"math"
	"net/netip"
	"sync"
	"time"

	"github.com/caddy-dcr/caddy-dcr/storage"
)

// MaxBuckets bounds the buckets a table keeps. Anyone creates one by
// sending a request, so the table is bounded: past the cap, buckets that
// have refilled (worth the same as no bucket) are dropped, and if none
// has, an arbitrary one is, which gives that address a fresh burst.
const MaxBuckets = 10000

// Limiter is a token bucket per client address: burst tokens, one
// refilled every window/burst. IPv6 addresses share the bucket of their
// /64, which one subscriber usually holds whole. The exemptions are the
// limiter's own; the buckets are a table it may share.
type Limiter struct {
	exempt []netip.Prefix
	*table
}

// rate is a burst and the time one token takes to come back.
type rate struct {
	burst  float64
	refill time.Duration
}

func newRate(burst int, window time.Duration) rate {
	return rate{burst: float64(burst), refill: window / time.Duration(burst)}
}

// table holds the buckets of one rate.
type table struct {
	rate

	mu        sync.Mutex
	buckets   map[netip.Addr]bucket
	lastSweep time.Time
}

// bucket is the tokens of a bucket as of at.
type bucket struct {
	tokens float64
	at     time.Time
}

// Bucket is a single token bucket, for a limit on everyone at once.
type Bucket struct {
	rate
	mu sync.Mutex
	b  *bucket // nil until the first take: a bucket starts full
}

// NewBucket returns a bucket of burst tokens, refilled over window.
func NewBucket(burst int, window time.Duration) *Bucket {
	return &Bucket{rate: newRate(burst, window)}
}

// Allow takes a token at now, if there is one.
func (k *Bucket) Allow(now time.Time) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.b == nil {
		k.b = &bucket{tokens: k.burst, at: now}
	}
	ok, _ := k.take(k.b, now)
	return ok
}

// New returns a limiter with a table of its own.
func New(burst int, window time.Duration, exempt []netip.Prefix) *Limiter {
	return &Limiter{exempt: exempt, table: newTable(burst, window)}
}

func newTable(burst int, window time.Duration) *table {
	return &table{rate: newRate(burst, window), buckets: map[netip.Addr]bucket{}}
}

// Key names a shared table: what it limits (registrations, sign-ins), and
// its burst and window.
type Key struct {
	Purpose string
	Burst   int
	Window  time.Duration
}

// Tables are the limit tables of one store, by Key. A table lives while a
// limiter uses it: Caddy provisions the new config before it cleans up the
// old, so a reload keeps the buckets.
type Tables struct {
	mu sync.Mutex
	m  map[Key]*sharedTable
}

type sharedTable struct {
	table *table
	users int
}

// Of returns the limit tables of store, shared by everything on it; a
// store that keeps no shared state (a bare backend in tests) gets tables
// of its own.
func Of(store storage.Store) *Tables {
	type tablesKey struct{}
	create := func() any { return &Tables{m: map[Key]*sharedTable{}} }
	if sh, ok := store.(interface {
		Shared(key any, create func() any) any
	}); ok {
		return sh.Shared(tablesKey{}, create).(*Tables)
	}
	return create().(*Tables)
}

// Limiter returns a limiter with the given exemptions over the table key
// names, made if need be, and the function that lets go of the table,
// which is dropped when no limiter uses it. Burst and window must be
// positive.
func (ts *Tables) Limiter(key Key, exempt []netip.Prefix) (*Limiter, func()) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	sh := ts.m[key]
	if sh == nil {
		sh = &sharedTable{table: newTable(key.Burst, key.Window)}
		ts.m[key] = sh
	}
	sh.users++
	var once sync.Once
	return &Limiter{exempt: exempt, table: sh.table}, func() {
		once.Do(func() {
			ts.mu.Lock()
			defer ts.mu.Unlock()
			if sh.users--; sh.users == 0 {
				delete(ts.m, key)
			}
		})
	}
}

// Len is the number of tables in use.
func (ts *Tables) Len() int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return len(ts.m)
}

// SharesWith reports whether l and o take from the same buckets.
func (l *Limiter) SharesWith(o *Limiter) bool { return l.table == o.table }

// Allow takes a token for addr at now. When there is none it reports
// false and how long until there is.
func (l *Limiter) Allow(addr netip.Addr, now time.Time) (bool, time.Duration) {
	// Unmapped first: ::ffff:192.0.2.1 is 192.0.2.1, for the exemptions
	// too (an IPv4 prefix never contains a mapped address, nor a prefix
	// one with a zone).
	addr = addr.Unmap().WithZone("")
	for _, p := range l.exempt {
		if p.Contains(addr) {
			return true, 0
		}
	}
	return l.take(addr, now)
}

// take takes a token from key's bucket at now.
func (t *table) take(key netip.Addr, now time.Time) (bool, time.Duration) {
	if key.Is6() {
		p, _ := key.Prefix(64)
		key = p.Addr()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	b, ok := t.buckets[key]
	if !ok {
		t.makeRoom(now)
		b = bucket{tokens: t.burst, at: now}
	}
	allowed, wait := t.rate.take(&b, now)
	t.buckets[key] = b
	return allowed, wait
}

// take takes a token from b at now. When there is none it reports false
// and how long until there is.
func (r rate) take(b *bucket, now time.Time) (bool, time.Duration) {
	b.tokens = r.level(*b, now)
	b.at = now
	if b.tokens < 1 {
		return false, time.Duration(math.Ceil((1 - b.tokens) * float64(r.refill)))
	}
	b.tokens--
	return true, 0
}

// level is b's tokens at now.
func (r rate) level(b bucket, now time.Time) float64 {
	elapsed := now.Sub(b.at)
	if elapsed <= 0 {
		return b.tokens
	}
	return min(r.burst, b.tokens+float64(elapsed)/float64(r.refill))
}

// makeRoom keeps the table below its cap before a bucket is added. Called
// with t.mu held. A full sweep runs at most once a second, so a flood of
// new addresses costs one eviction each, not a scan each.
func (t *table) makeRoom(now time.Time) {
	if len(t.buckets) < MaxBuckets {
		return
	}
	if now.Sub(t.lastSweep) >= time.Second {
		t.lastSweep = now
		for k, b := range t.buckets {
			if t.level(b, now) >= t.burst {
				delete(t.buckets, k)
			}
		}
	}
	for k := range t.buckets {
		if len(t.buckets) < MaxBuckets {
			break
		}
		delete(t.buckets, k)
	}
}
