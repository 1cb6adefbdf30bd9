package handlers

import (
	"net/netip"
	"time"
)

// Limits bound what strangers can make the server store, and what they
// may register. The zero value limits nothing; the Caddy module fills in
// its defaults.
type Limits struct {
	// RegistrationBurst and RegistrationWindow are the registration
	// limit: a token bucket per client address holding
	// RegistrationBurst registrations, refilled over RegistrationWindow.
	// RegistrationBurst 0: no limit.
	RegistrationBurst  int
	RegistrationWindow time.Duration
	// RegistrationExempt are the client addresses the limit does not
	// apply to.
	RegistrationExempt []netip.Prefix
	// MaxClients caps the stored clients; 0: no cap.
	MaxClients int

	// AllowedGrantTypes are the grant types a client may register; nil:
	// every one the server supports.
	AllowedGrantTypes []string
	// AllowedRedirectSchemes are the redirect URI schemes a client may
	// register (lower case); nil: any the server accepts.
	AllowedRedirectSchemes []string
	// AllowedRedirectHosts are the hosts an http or https redirect URI
	// may name: exact names, or "*.example.com" for any name below
	// example.com; nil: any.
	AllowedRedirectHosts []string
	// NoPublicClients refuses clients without a secret (token endpoint
	// auth method none).
	NoPublicClients bool
}

// limiter returns the registration limiter, nil when there is no limit.
func (l Limits) limiter() *rateLimiter {
	if l.RegistrationBurst <= 0 || l.RegistrationWindow <= 0 {
		return nil
	}
	return newRateLimiter(l.RegistrationBurst, l.RegistrationWindow, l.RegistrationExempt)
}
