package handlers

import (
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-dcr/caddy-dcr/internal/ratelimit"
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

// registrationLimiter returns the registration limiter of lim, nil when
// there is no limit, over its store's table for its burst and window;
// release lets go of the table.
func registrationLimiter(store storage.Store, lim Limits) (l *ratelimit.Limiter, release func()) {
	if lim.RegistrationBurst <= 0 || lim.RegistrationWindow <= 0 {
		return nil, func() {}
	}
	return ratelimit.Of(store).Limiter(ratelimit.Key{Purpose: "registration", Burst: lim.RegistrationBurst,
		Window: lim.RegistrationWindow}, lim.RegistrationExempt)
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
	allowed, wait := s.limiter.Allow(addr, s.now())
	if allowed {
		return true
	}
	secs := max(1, int64(math.Ceil(wait.Seconds())))
	w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	writeError(w, ErrTemporarilyUnavailable.WithStatus(http.StatusTooManyRequests).WithDescription(
		"too many registrations from this address; retry after "+strconv.FormatInt(secs, 10)+" s"))
	return false
}
