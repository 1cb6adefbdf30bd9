package handlers

import (
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-dcr/caddy-dcr/storage"
)

// Default registration limit: a burst of 60 registrations per client IP,
// refilled over 10 minutes (one every 10 s). An MCP client that registers
// on every connect stays far below it; a script registering in a loop is
// held to 8,640 a day per address. Hosted connectors that share egress
// addresses belong in registration_limit_exempt.
const (
	DefaultRegistrationBurst  = 60
	DefaultRegistrationWindow = 10 * time.Minute
)

// maxLimitBuckets bounds the buckets a limitTable keeps. Anyone creates
// one by registering, so the table is bounded: past the cap, buckets that
// have refilled (worth the same as no bucket) are dropped, and if none
// has, an arbitrary one is, which gives that address a fresh burst.
const maxLimitBuckets = 10000

// rateLimiter is a token bucket per client address: burst tokens, one
// refilled every window/burst. IPv6 addresses share the bucket of their
// /64, which one subscriber usually holds whole. The exemptions are the
// Server's own; the buckets are a limitTable shared by every Server on the
// store with the same burst and window (see limitTables), so neither a
// config reload nor a second dcr handler hands out a fresh burst.
type rateLimiter struct {
	exempt []netip.Prefix
	*limitTable
}

// limitTable holds the buckets of one burst and window.
type limitTable struct {
	burst  float64
	refill time.Duration // the time one token takes to come back

	mu        sync.Mutex
	buckets   map[netip.Addr]bucket
	lastSweep time.Time
}

// bucket is an address's tokens as of at.
type bucket struct {
	tokens float64
	at     time.Time
}

// newRateLimiter returns a limiter with a table of its own.
func newRateLimiter(burst int, window time.Duration, exempt []netip.Prefix) *rateLimiter {
	return &rateLimiter{exempt: exempt, limitTable: newLimitTable(burst, window)}
}

func newLimitTable(burst int, window time.Duration) *limitTable {
	return &limitTable{burst: float64(burst), refill: window / time.Duration(burst), buckets: map[netip.Addr]bucket{}}
}

// limitTables are the registration limit tables of one store, by burst
// and window. A table lives while a Server uses it: Caddy provisions the
// new config before it cleans up the old, so a reload keeps the buckets.
type limitTables struct {
	mu sync.Mutex
	m  map[limitKey]*sharedLimitTable
}

// limitKey names a table: what it limits (registrations, sign-ins), and
// its burst and window.
type limitKey struct {
	purpose string
	burst   int
	window  time.Duration
}

type sharedLimitTable struct {
	table *limitTable
	users int
}

// limitTablesOf returns the limit tables of store, shared by every Server
// on it; a store that keeps no shared state (a bare backend in tests)
// gets tables of its own.
func limitTablesOf(store storage.Store) *limitTables {
	type limitTablesKey struct{}
	create := func() any { return &limitTables{m: map[limitKey]*sharedLimitTable{}} }
	if sh, ok := store.(interface {
		Shared(key any, create func() any) any
	}); ok {
		return sh.Shared(limitTablesKey{}, create).(*limitTables)
	}
	return create().(*limitTables)
}

// limiter returns the registration limiter of lim, nil when there is no
// limit, over the table for its burst and window; release lets go of the
// table, which is dropped when no Server uses it.
func (lt *limitTables) limiter(lim Limits) (l *rateLimiter, release func()) {
	if lim.RegistrationBurst <= 0 || lim.RegistrationWindow <= 0 {
		return nil, func() {}
	}
	table, release := lt.share(limitKey{"registration", lim.RegistrationBurst, lim.RegistrationWindow})
	return &rateLimiter{exempt: lim.RegistrationExempt, limitTable: table}, release
}

// share returns the table key names, made if need be, and the function
// that lets go of it.
func (lt *limitTables) share(key limitKey) (*limitTable, func()) {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	sh := lt.m[key]
	if sh == nil {
		sh = &sharedLimitTable{table: newLimitTable(key.burst, key.window)}
		lt.m[key] = sh
	}
	sh.users++
	var once sync.Once
	return sh.table, func() {
		once.Do(func() {
			lt.mu.Lock()
			defer lt.mu.Unlock()
			if sh.users--; sh.users == 0 {
				delete(lt.m, key)
			}
		})
	}
}

// allow takes a token for addr at now. When there is none it reports
// false and how long until there is.
func (l *rateLimiter) allow(addr netip.Addr, now time.Time) (bool, time.Duration) {
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
func (t *limitTable) take(key netip.Addr, now time.Time) (bool, time.Duration) {
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
	b.tokens = t.level(b, now)
	b.at = now
	if b.tokens < 1 {
		t.buckets[key] = b
		wait := time.Duration(math.Ceil((1 - b.tokens) * float64(t.refill)))
		return false, wait
	}
	b.tokens--
	t.buckets[key] = b
	return true, 0
}

// level is b's tokens at now.
func (t *limitTable) level(b bucket, now time.Time) float64 {
	elapsed := now.Sub(b.at)
	if elapsed <= 0 {
		return b.tokens
	}
	return min(t.burst, b.tokens+float64(elapsed)/float64(t.refill))
}

// makeRoom keeps the table below its cap before a bucket is added. Called
// with t.mu held. A full sweep runs at most once a second, so a flood of
// new addresses costs one eviction each, not a scan each.
func (t *limitTable) makeRoom(now time.Time) {
	if len(t.buckets) < maxLimitBuckets {
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
		if len(t.buckets) < maxLimitBuckets {
			break
		}
		delete(t.buckets, k)
	}
}

// clientAddr is the request's client IP as Caddy determined it (which
// honours the server's trusted_proxies), or the connection's peer outside
// Caddy (tests): the address the registration limit counts and the audit
// log records.
func clientAddr(r *http.Request) (netip.Addr, bool) {
	if ip, ok := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string); ok && ip != "" {
		a, err := netip.ParseAddr(ip)
		return a, err == nil
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	return a, err == nil
}

// registrationAllowed applies the registration limit to r and answers 429
// itself when the client's address has used its burst. A request whose
// address cannot be read is let through: Caddy always sets one.
func (s *Server) registrationAllowed(w http.ResponseWriter, r *http.Request) bool {
	if s.limiter == nil {
		return true
	}
	addr, ok := clientAddr(r)
	if !ok {
		return true
	}
	allowed, wait := s.limiter.allow(addr, s.now())
	if allowed {
		return true
	}
	secs := max(1, int64(math.Ceil(wait.Seconds())))
	w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	writeError(w, ErrTemporarilyUnavailable.WithStatus(http.StatusTooManyRequests).WithDescription(
		"too many registrations from this address; retry after "+strconv.FormatInt(secs, 10)+" s"))
	return false
}
