package caddydcr

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// limitSubdirectives are the subdirectives unmarshalLimit reads.
var limitSubdirectives = []string{
	"registration_limit", "registration_limit_exempt", "max_clients", "unused_client_ttl", "idle_client_ttl",
	"allowed_grant_types", "allowed_redirect_schemes", "allowed_redirect_hosts", "public_clients",
}

// unmarshalLimit reads one of the Limits subdirectives (see
// UnmarshalCaddyfile for the syntax), the dispenser at its name.
func (l *Limits) unmarshalLimit(d *caddyfile.Dispenser) error {
	name := d.Val()
	switch name {
	case "registration_limit":
		if l.RegistrationLimit != nil {
			return d.Errf("%s already specified", name)
		}
		args := d.RemainingArgs()
		switch {
		case len(args) == 1 && args[0] == "off":
			l.RegistrationLimit = &RegistrationLimit{Off: true}
		case len(args) == 2:
			n, err := strconv.Atoi(args[0])
			if err != nil || n < 1 {
				return d.Errf("%s: burst %q is not a whole number of at least 1", name, args[0])
			}
			w, err := caddy.ParseDuration(args[1])
			if err != nil || w <= 0 {
				return d.Errf("%s: window %q is not a positive duration", name, args[1])
			}
			l.RegistrationLimit = &RegistrationLimit{Burst: n, Window: caddy.Duration(w)}
		default:
			return d.Errf("%s takes <burst> <window>, or off", name)
		}
	case "registration_limit_exempt", "allowed_grant_types", "allowed_redirect_schemes", "allowed_redirect_hosts":
		args := d.RemainingArgs()
		if len(args) == 0 {
			return d.ArgErr()
		}
		dst := map[string]*[]string{
			"registration_limit_exempt": &l.RegistrationLimitExempt, "allowed_grant_types": &l.AllowedGrantTypes,
			"allowed_redirect_schemes": &l.AllowedRedirectSchemes, "allowed_redirect_hosts": &l.AllowedRedirectHosts,
		}[name]
		*dst = append(*dst, args...)
	case "max_clients":
		var v string
		if err := singleString(d, &v); err != nil {
			return err
		}
		if l.MaxClients != 0 {
			return d.Errf("%s already specified: %d", name, l.MaxClients)
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return d.Errf("%s: %q is not a whole number of at least 1", name, v)
		}
		l.MaxClients = n
	case "unused_client_ttl", "idle_client_ttl":
		dst := map[string]**caddy.Duration{"unused_client_ttl": &l.UnusedClientTTL, "idle_client_ttl": &l.IdleClientTTL}[name]
		var v string
		if err := singleString(d, &v); err != nil {
			return err
		}
		if *dst != nil {
			return d.Errf("%s already specified", name)
		}
		var dur caddy.Duration
		if v != "off" {
			parsed, err := caddy.ParseDuration(v)
			if err != nil || parsed <= 0 {
				return d.Errf("%s: %q is not a positive duration or off", name, v)
			}
			dur = caddy.Duration(parsed)
		}
		*dst = &dur
	case "public_clients":
		var v string
		if err := singleString(d, &v); err != nil {
			return err
		}
		if l.PublicClients != nil {
			return d.Errf("%s already specified", name)
		}
		if v != "on" && v != "off" {
			return d.Errf("%s must be on or off", name)
		}
		on := v == "on"
		l.PublicClients = &on
	}
	return nil
}
