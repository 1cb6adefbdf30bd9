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

// maxLimitBuckets bounds the buckets a rateLimiter keeps. Anyone creates
// one by registering, so the table is bounded: past the cap, buckets that
// have refilled (worth the same as no bucket) are dropped, and if none
// has, an arbitrary one is, which gives that address a fresh burst.
const maxLimitBuckets = 10000

// rateLimiter is a token bucket per client address: burst tokens, one
// refilled every window/burst. IPv6 addresses share the bucket of their
// /64, which one subscriber usually holds whole.
type rateLimiter struct {
	burst  float64
	refill time.Duration // the time one token takes to come back
	exempt []netip.Prefix

	mu        sync.Mutex
	buckets   map[netip.Addr]bucket
	lastSweep time.Time
}

// bucket is an address's tokens as of at.
type bucket struct {
	tokens float64
	at     time.Time
}

func newRateLimiter(burst int, window time.Duration, exempt []netip.Prefix) *rateLimiter {
	return &rateLimiter{
		burst: float64(burst), refill: window / time.Duration(burst), exempt: exempt,
		buckets: map[netip.Addr]bucket{},
	}
}

// allow takes a token for addr at now. When there is none it reports
// false and how long until there is.
func (l *rateLimiter) allow(addr netip.Addr, now time.Time) (bool, time.Duration) {
	for _, p := range l.exempt {
		if p.Contains(addr) {
			return true, 0
		}
	}
	key := addr.Unmap().WithZone("")
	if key.Is6() {
		p, _ := key.Prefix(64)
		key = p.Addr()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		l.makeRoom(now)
		b = bucket{tokens: l.burst, at: now}
	}
	b.tokens = l.level(b, now)
	b.at = now
	if b.tokens < 1 {
		l.buckets[key] = b
		wait := time.Duration(math.Ceil((1 - b.tokens) * float64(l.refill)))
		return false, wait
	}
	b.tokens--
	l.buckets[key] = b
	return true, 0
}

// level is b's tokens at now.
func (l *rateLimiter) level(b bucket, now time.Time) float64 {
	elapsed := now.Sub(b.at)
	if elapsed <= 0 {
		return b.tokens
	}
	return min(l.burst, b.tokens+float64(elapsed)/float64(l.refill))
}

// makeRoom keeps the table below its cap before a bucket is added. Called
// with l.mu held. A full sweep runs at most once a second, so a flood of
// new addresses costs one eviction each, not a scan each.
func (l *rateLimiter) makeRoom(now time.Time) {
	if len(l.buckets) < maxLimitBuckets {
		return
	}
	if now.Sub(l.lastSweep) >= time.Second {
		l.lastSweep = now
		for k, b := range l.buckets {
			if l.level(b, now) >= l.burst {
				delete(l.buckets, k)
			}
		}
	}
	for k := range l.buckets {
		if len(l.buckets) < maxLimitBuckets {
			break
		}
		delete(l.buckets, k)
	}
}

// clientAddr is the request's client IP as Caddy determined it (which
// honours the server's trusted_proxies), or the connection's peer outside
// Caddy (tests).
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
