package caddydcr

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/caddy-dcr/caddy-dcr/internal/login"
)

// validateLogins checks the login blocks: each one's own rules
// (login.Config's Validate: a known kind, a name, at least one allow rule
// or allow_any), distinct names, absolute issuer and GitHub URLs, and a
// client secret where the upstream needs one.
func (h *Handler) validateLogins() error {
	seen := map[string]bool{}
	for i := range h.Logins {
		l := &h.Logins[i]
		if err := l.Validate(); err != nil {
			return err
		}
		if seen[l.Name] {
			return fmt.Errorf("two logins are named %s", l.Name)
		}
		seen[l.Name] = true
		for _, u := range []struct{ name, value string }{{"issuer", l.Issuer}, {"base_url", l.BaseURL}, {"api_url", l.APIURL}} {
			if u.value == "" {
				continue
			}
			p, err := url.Parse(u.value)
			if err != nil || p.Host == "" || (p.Scheme != "https" && p.Scheme != "http") || p.RawQuery != "" || p.Fragment != "" {
				return fmt.Errorf("login %s: %s %q must be an absolute http(s) URL", l.Name, u.name, u.value)
			}
		}
		if l.Kind == login.KindGitHub && l.ClientSecret == "" {
			// Never name the value: it may be the secret's placeholder
			// resolved to nothing.
			return fmt.Errorf("login %s: client_secret is required (empty once its placeholders are replaced?)", l.Name)
		}
		if strings.ContainsAny(l.ClientID, " \t") {
			return fmt.Errorf("login %s: client_id has spaces", l.Name)
		}
	}
	return nil
}
