package caddydcr

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-dcr/caddy-dcr/internal/login"
)

// unmarshalLogin reads a login block, the current subdirective of d:
//
//	login oidc <name> {
//	    issuer <url>
//	    client_id <id>
//	    client_secret <secret>
//	    scopes <scope...>
//	    subject_claim <claim>
//	    display_name <text>
//	    allow_email <email...>
//	    allow_domain <domain...>
//	    allow_subject <subject...>
//	    allow_group <claim> <value>
//	    allow_any
//	}
//	login github <name> {
//	    client_id <id>
//	    client_secret <secret>
//	    scopes <scope...>
//	    display_name <text>
//	    allow_user <login...>
//	    allow_org <org...>
//	    allow_team <org>/<team>...
//	    allow_any
//	    base_url <url>
//	    api_url <url>
//	}
//
// The allow rules add up; every other setting may appear once. Whether
// the block has a rule is checked when the config loads (login.Config's
// Validate), after its placeholders are replaced.
func unmarshalLogin(d *caddyfile.Dispenser) (login.Config, error) {
	var c login.Config
	if !d.Args(&c.Kind, &c.Name) || d.NextArg() {
		return c, d.ArgErr()
	}
	if c.Kind != login.KindOIDC && c.Kind != login.KindGitHub {
		return c, d.Errf("login %s: kind %q is neither oidc nor github", c.Name, c.Kind)
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		name := d.Val()
		switch name {
		case "issuer", "client_id", "client_secret", "subject_claim", "display_name", "base_url", "api_url":
			dst := map[string]*string{"issuer": &c.Issuer, "client_id": &c.ClientID, "client_secret": &c.ClientSecret,
				"subject_claim": &c.SubjectClaim, "display_name": &c.DisplayName, "base_url": &c.BaseURL, "api_url": &c.APIURL}[name]
			if *dst != "" {
				// Not singleString: its message would show the secret.
				return c, d.Errf("login %s: %s already specified", c.Name, name)
			}
			if err := singleString(d, dst); err != nil {
				return c, err
			}
		case "scopes", "allow_email", "allow_domain", "allow_subject", "allow_user", "allow_org", "allow_team":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return c, d.ArgErr()
			}
			dst := map[string]*[]string{"scopes": &c.Scopes, "allow_email": &c.AllowEmail, "allow_domain": &c.AllowDomain,
				"allow_subject": &c.AllowSubject, "allow_user": &c.AllowUser, "allow_org": &c.AllowOrg, "allow_team": &c.AllowTeam}[name]
			*dst = append(*dst, args...)
		case "allow_group":
			var g login.GroupRule
			if !d.Args(&g.Claim, &g.Value) || d.NextArg() {
				return c, d.ArgErr()
			}
			c.AllowGroup = append(c.AllowGroup, g)
		case "allow_any":
			if d.NextArg() {
				return c, d.ArgErr()
			}
			c.AllowAny = true
		default:
			return c, d.Errf("login %s: unrecognized subdirective %q", c.Name, name)
		}
	}
	return c, nil
}
