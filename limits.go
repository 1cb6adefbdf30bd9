package caddydcr

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-dcr/caddy-dcr/internal/handlers"
)

// Limits are the dcr handler's bounds on what strangers can make it store
// (registrations per address, clients in all, clients left unused) and
// its registration policy. They are embedded in Handler: their JSON
// members sit beside the handler's own.
type Limits struct {
	// RegistrationLimit bounds registrations per client IP (Caddy's,
	// which honours the server's trusted_proxies): a token bucket of
	// Burst registrations refilled over Window; past it, registration
	// answers 429 with Retry-After. IPv6 addresses share the bucket of
	// their /64. Default: 60 per 10m. {"off": true} turns it off.
	RegistrationLimit *RegistrationLimit `json:"registration_limit,omitempty"`
	// RegistrationLimitExempt lists client IPs or CIDR ranges the
	// registration limit does not apply to, such as the egress addresses
	// of hosted MCP clients that many people share. Default: none.
	RegistrationLimitExempt []string `json:"registration_limit_exempt,omitempty"`
	// MaxClients caps the registered clients. When it is reached, clients
	// that never got a token (the oldest first, registered at least 10
	// minutes ago, and reapable: see UnusedClientTTL) are removed to make
	// room; if none can be, registration answers 503
	// temporarily_unavailable with Retry-After, and stores nothing. The
	// cap may be passed by as many registrations as run at once.
	// Default: 0, no cap.
	MaxClients int `json:"max_clients,omitempty"`
	// UnusedClientTTL is how long a reapable client may go without its
	// first token before it is removed. Clients registered openly are
	// reapable; those registered with an initial access token or made
	// by the operator are kept, unless the operator's settings say
	// otherwise. 0 turns it off. Default: 24h.
	UnusedClientTTL *caddy.Duration `json:"unused_client_ttl,omitempty"`
	// IdleClientTTL is how long a reapable client may go without a token
	// issued while it has no live refresh token and no grant before it is
	// removed. 0 turns it off. Default: 90 days.
	IdleClientTTL *caddy.Duration `json:"idle_client_ttl,omitempty"`

	// AllowedGrantTypes are the grant types a client may register (of
	// authorization_code, client_credentials, refresh_token). Default:
	// all of them.
	AllowedGrantTypes []string `json:"allowed_grant_types,omitempty"`
	// AllowedRedirectSchemes are the redirect URI schemes a client may
	// register, for instance https and http (http only ever to a
	// loopback host). Default: any the server accepts (https, http to a
	// loopback host, private-use schemes such as com.example.app).
	AllowedRedirectSchemes []string `json:"allowed_redirect_schemes,omitempty"`
	// AllowedRedirectHosts are the hosts an http or https redirect URI
	// may name: exact names or IP literals, or *.example.com for any
	// name below example.com. Loopback hosts are not implied: list
	// 127.0.0.1, [::1] or localhost if native apps should register.
	// Default: any host.
	AllowedRedirectHosts []string `json:"allowed_redirect_hosts,omitempty"`
	// PublicClients lets clients without a secret (token endpoint auth
	// method none, as most MCP clients are) register. Metadata-document
	// clients are public too, and are refused with it off. Default: true.
	PublicClients *bool `json:"public_clients,omitempty"`
}

// RegistrationLimit is a token bucket per client IP.
type RegistrationLimit struct {
	// Burst is the bucket's size: how many registrations an address may
	// make at once.
	Burst int `json:"burst,omitempty"`
	// Window is how long an empty bucket takes to refill.
	Window caddy.Duration `json:"window,omitempty"`
	// Off turns the limit off.
	Off bool `json:"off,omitempty"`
}

// Defaults of the Limits that are on unless turned off.
const (
	DefaultUnusedClientTTL = 24 * time.Hour
	DefaultIdleClientTTL   = 90 * 24 * time.Hour
)

// provisionLimits fills in the defaults of l.
func (l *Limits) provisionLimits() {
	if l.RegistrationLimit == nil {
		l.RegistrationLimit = &RegistrationLimit{Burst: handlers.DefaultRegistrationBurst, Window: caddy.Duration(handlers.DefaultRegistrationWindow)}
	}
	if l.UnusedClientTTL == nil {
		d := caddy.Duration(DefaultUnusedClientTTL)
		l.UnusedClientTTL = &d
	}
	if l.IdleClientTTL == nil {
		d := caddy.Duration(DefaultIdleClientTTL)
		l.IdleClientTTL = &d
	}
}

// validateLimits checks l; it needs no defaults filled in.
func (l *Limits) validateLimits() error {
	if rl := l.RegistrationLimit; rl != nil && !rl.Off {
		if rl.Burst < 1 || rl.Window <= 0 {
			return fmt.Errorf("registration_limit needs a burst of at least 1 and a positive window")
		}
		if time.Duration(rl.Window)/time.Duration(rl.Burst) <= 0 {
			return fmt.Errorf("registration_limit window %s is too short for a burst of %d", time.Duration(rl.Window), rl.Burst)
		}
	}
	if _, err := exemptPrefixes(l.RegistrationLimitExempt); err != nil {
		return err
	}
	if l.MaxClients < 0 {
		return fmt.Errorf("max_clients must not be negative")
	}
	for name, d := range map[string]*caddy.Duration{"unused_client_ttl": l.UnusedClientTTL, "idle_client_ttl": l.IdleClientTTL} {
		if d != nil && *d < 0 {
			return fmt.Errorf("%s must not be negative", name)
		}
	}
	for _, g := range l.AllowedGrantTypes {
		if !slices.Contains([]string{"authorization_code", "client_credentials", "refresh_token"}, g) {
			return fmt.Errorf("allowed_grant_types: %q is not a grant type this server supports", g)
		}
	}
	for _, s := range l.AllowedRedirectSchemes {
		if s == "" || strings.ToLower(s) != s || strings.ContainsAny(s, ":/") {
			return fmt.Errorf("allowed_redirect_schemes: %q is not a lower-case scheme name (write https, not https://)", s)
		}
	}
	for _, h := range l.AllowedRedirectHosts {
		if !validRedirectHost(h) {
			return fmt.Errorf("allowed_redirect_hosts: %q is not a host name, an IP literal or *.<domain>", h)
		}
	}
	return nil
}

// validRedirectHost reports whether h is an entry allowed_redirect_hosts
// can match: an IP literal (bracketed or not), a host name, or *.<name>.
func validRedirectHost(h string) bool {
	if a, err := netip.ParseAddr(strings.Trim(h, "[]")); err == nil {
		return a.Zone() == ""
	}
	name := strings.TrimPrefix(h, "*.")
	return name != "" && !strings.ContainsAny(name, "/:?#@ *[]")
}

// exemptPrefixes parses registration_limit_exempt: CIDR ranges or single
// addresses.
func exemptPrefixes(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("registration_limit_exempt: %q is neither an IP address nor a CIDR range", s)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// handlerLimits is l, provisioned and validated, as the endpoints take it.
func (l *Limits) handlerLimits() handlers.Limits {
	exempt, _ := exemptPrefixes(l.RegistrationLimitExempt)
	out := handlers.Limits{
		RegistrationExempt:     exempt,
		MaxClients:             l.MaxClients,
		AllowedGrantTypes:      l.AllowedGrantTypes,
		AllowedRedirectSchemes: l.AllowedRedirectSchemes,
		AllowedRedirectHosts:   l.AllowedRedirectHosts,
		NoPublicClients:        l.PublicClients != nil && !*l.PublicClients,
	}
	if rl := l.RegistrationLimit; rl != nil && !rl.Off {
		out.RegistrationBurst, out.RegistrationWindow = rl.Burst, time.Duration(rl.Window)
	}
	return out
}
