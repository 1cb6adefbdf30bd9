package caddydcr

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("dcr", parseCaddyfile)
	// After basic_auth and forward_auth, which can name the person, and
	// before handle, route and reverse_proxy, which it protects.
	httpcaddyfile.RegisterDirectiveOrder("dcr", httpcaddyfile.After, "forward_auth")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	var d Handler
	err := d.UnmarshalCaddyfile(h.Dispenser)
	return &d, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	dcr [<matcher>] {
//	    issuer <url>
//	    storage <dir>
//	    sync_writes
//	    registration_path <path>
//	    initial_access_token <token...>
//	    scopes_supported <scope...>
//	    client_secret_ttl <duration>
//	    max_body_size <size>
//	}
//
// initial_access_token and scopes_supported may be repeated; their values
// add up. Every other subdirective may appear once.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		name := d.Val()
		switch name {
		case "issuer":
			if err := singleString(d, &h.Issuer); err != nil {
				return err
			}
		case "storage":
			if err := singleString(d, &h.Storage); err != nil {
				return err
			}
		case "registration_path":
			if err := singleString(d, &h.RegistrationPath); err != nil {
				return err
			}
			if err := checkEndpointPath(name, h.RegistrationPath); err != nil {
				return d.Err(err.Error())
			}
		case "sync_writes":
			if d.NextArg() {
				return d.ArgErr()
			}
			if h.SyncWrites {
				return d.Errf("%s already specified", name)
			}
			h.SyncWrites = true
		case "initial_access_token":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			h.InitialAccessTokens = append(h.InitialAccessTokens, args...)
		case "scopes_supported":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			h.ScopesSupported = append(h.ScopesSupported, args...)
		case "client_secret_ttl":
			var v string
			if err := singleString(d, &v); err != nil {
				return err
			}
			if h.ClientSecretTTL != 0 {
				return d.Errf("%s already specified", name)
			}
			dur, err := caddy.ParseDuration(v)
			if err != nil {
				return d.Errf("%s: %v", name, err)
			}
			if dur < 0 {
				return d.Errf("%s must not be negative", name)
			}
			h.ClientSecretTTL = caddy.Duration(dur)
		case "max_body_size":
			var v string
			if err := singleString(d, &v); err != nil {
				return err
			}
			if h.MaxBodySize != 0 {
				return d.Errf("%s already specified", name)
			}
			size, err := humanize.ParseBytes(v)
			if err != nil || size == 0 || size > 1<<30 {
				return d.Errf("%s: %q is not a size between 1 byte and 1GiB", name, v)
			}
			h.MaxBodySize = int64(size)
		default:
			return d.Errf("unrecognized dcr subdirective %q", name)
		}
	}
	return nil
}

// singleString reads the one argument of the current subdirective into
// *dst, refusing a repeated subdirective.
func singleString(d *caddyfile.Dispenser, dst *string) error {
	name := d.Val()
	if !d.NextArg() {
		return d.ArgErr()
	}
	v := d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	if *dst != "" {
		return d.Errf("%s already specified: %s", name, strconv.Quote(*dst))
	}
	*dst = v
	return nil
}
