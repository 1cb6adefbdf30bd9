package caddydcr

import (
	"slices"
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"

	"github.com/caddy-dcr/caddy-dcr/internal/handlers"
	"github.com/caddy-dcr/caddy-dcr/storage/badger"
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
//	    storage badger [<dir>] { sync_writes }
//	    storage postgres <dsn> { max_conns <n> }
//	    storage <dir>
//	    sync_writes
//	    registration_path <path>
//	    initial_access_token <token...>
//	    scopes_supported <scope...>
//	    client_secret_ttl <duration>
//	    max_body_size <size>
//	    token_path <path>
//	    introspection_path <path>
//	    revocation_path <path>
//	    jwks_path <path>
//	    access_token_ttl <duration>
//	    refresh_token_ttl <duration>
//	    key_rotation <duration>
//	    access_token_signing_alg ES256|RS256
//	    refresh_reuse_window <duration>
//	    resource <url>
//	    require_scope <scope...>
//	    subject_header <name>|off
//	    client_id_header <name>|off
//	    scope_header <name>|off
//	    strip_authorization
//	    allow_preflight
//	    fail_closed
//	    token_cache_size <entries>
//	    authorization_path <path>
//	    grants_path <path>
//	    userinfo_path <path>
//	    user <placeholder>
//	    trusted_client <client_id...>
//	    resource_server <client_id...>
//	    code_ttl <duration>
//	    claim <name> <value>
//	    scope_description <scope> <text>
//	    client_id_metadata_documents on|off
//	    metadata_document_hosts <host...>
//	    metadata_document_allow_private
//	    registration_limit <burst> <window>|off
//	    registration_limit_exempt <ip|cidr...>
//	    max_clients <n>
//	    unused_client_ttl <duration>|off
//	    idle_client_ttl <duration>|off
//	    allowed_grant_types <grant_type...>
//	    allowed_redirect_schemes <scheme...>
//	    allowed_redirect_hosts <host...>
//	    public_clients on|off
//	    login oidc|github <name> { ... }
//	    session_ttl <duration>
//	}
//
// login blocks are described at unmarshalLogin.
//
// initial_access_token, scopes_supported, require_scope, trusted_client,
// resource_server, claim, scope_description, login, metadata_document_hosts,
// registration_limit_exempt and the allowed_* lists may be repeated;
// their values add up. Every other subdirective may appear once.
//
// storage names a dcr.storage module and its options; storage <dir> (a
// word that names no storage module) is short for storage badger <dir>,
// and sync_writes outside a storage block sets the Badger store's.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	var store caddyfile.Unmarshaler // the storage module, once given
	var storeName string
	for d.NextBlock(0) {
		name := d.Val()
		switch name {
		case "issuer":
			if err := singleString(d, &h.Issuer); err != nil {
				return err
			}
		case "storage":
			if store != nil {
				return d.Errf("storage already specified: %s", storeName)
			}
			if !d.NextArg() {
				return d.ArgErr()
			}
			storeName = d.Val()
			if _, err := caddy.GetModule("dcr.storage." + storeName); err == nil {
				unm, err := caddyfile.UnmarshalModule(d, "dcr.storage."+storeName)
				if err != nil {
					return err
				}
				store = unm
				break
			}
			if d.NextArg() || d.NextBlock(1) {
				return d.Errf("storage %s: %q names no storage module; write storage badger <dir> or storage postgres <dsn>", storeName, storeName)
			}
			store, storeName = &badger.Module{Dir: storeName}, "badger"
		case "registration_path", "token_path", "introspection_path", "revocation_path", "jwks_path",
			"authorization_path", "grants_path", "userinfo_path":
			dst := map[string]*string{
				"registration_path": &h.RegistrationPath, "token_path": &h.TokenPath,
				"introspection_path": &h.IntrospectionPath, "revocation_path": &h.RevocationPath, "jwks_path": &h.JWKSPath,
				"authorization_path": &h.AuthorizationPath, "grants_path": &h.GrantsPath,
				"userinfo_path": &h.UserinfoPath,
			}[name]
			if err := singleString(d, dst); err != nil {
				return err
			}
			if err := checkEndpointPath(name, *dst); err != nil {
				return d.Err(err.Error())
			}
		case "resource":
			if err := singleString(d, &h.Resource); err != nil {
				return err
			}
		case "user":
			if err := singleString(d, &h.User); err != nil {
				return err
			}
		case "trusted_client", "resource_server", "metadata_document_hosts":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			dst := map[string]*[]string{"trusted_client": &h.TrustedClients, "resource_server": &h.ResourceServers,
				"metadata_document_hosts": &h.MetadataDocumentHosts}[name]
			*dst = append(*dst, args...)
		case "claim":
			var claimName, value string
			if !d.Args(&claimName, &value) || d.NextArg() {
				return d.ArgErr()
			}
			if handlers.IsReservedClaim(claimName) {
				return d.Errf("claim %q is a name the token already uses", claimName)
			}
			if _, dup := h.Claims[claimName]; dup {
				return d.Errf("claim %q already specified", claimName)
			}
			if h.Claims == nil {
				h.Claims = map[string]string{}
			}
			h.Claims[claimName] = value
		case "client_id_metadata_documents":
			var v string
			if err := singleString(d, &v); err != nil {
				return err
			}
			if h.MetadataDocuments != nil {
				return d.Errf("%s already specified", name)
			}
			if v != "on" && v != "off" {
				return d.Errf("%s must be on or off", name)
			}
			on := v == "on"
			h.MetadataDocuments = &on
		case "subject_header", "client_id_header", "scope_header":
			dst := map[string]*string{"subject_header": &h.SubjectHeader, "client_id_header": &h.ClientIDHeader, "scope_header": &h.ScopeHeader}[name]
			if err := singleString(d, dst); err != nil {
				return err
			}
		case "sync_writes", "strip_authorization", "allow_preflight", "fail_closed", "metadata_document_allow_private":
			dst := map[string]*bool{"sync_writes": &h.SyncWrites, "strip_authorization": &h.StripAuthorization,
				"allow_preflight": &h.AllowPreflight, "fail_closed": &h.FailClosed,
				"metadata_document_allow_private": &h.MetadataDocumentAllowPrivate}[name]
			if d.NextArg() {
				return d.ArgErr()
			}
			if *dst {
				return d.Errf("%s already specified", name)
			}
			*dst = true
		case "require_scope":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			h.RequireScope = append(h.RequireScope, args...)
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
		case "scope_description":
			var scope, text string
			if !d.Args(&scope, &text) || d.NextArg() {
				return d.ArgErr()
			}
			if _, dup := h.ScopeDescriptions[scope]; dup {
				return d.Errf("scope_description %s already specified", scope)
			}
			if h.ScopeDescriptions == nil {
				h.ScopeDescriptions = map[string]string{}
			}
			h.ScopeDescriptions[scope] = text
		case "login":
			lc, err := unmarshalLogin(d)
			if err != nil {
				return err
			}
			h.Logins = append(h.Logins, lc)
		case "client_secret_ttl", "access_token_ttl", "refresh_token_ttl", "key_rotation", "code_ttl", "session_ttl":
			dst := map[string]*caddy.Duration{
				"client_secret_ttl": &h.ClientSecretTTL, "access_token_ttl": &h.AccessTokenTTL,
				"refresh_token_ttl": &h.RefreshTokenTTL, "key_rotation": &h.KeyRotation, "code_ttl": &h.CodeTTL,
				"session_ttl": &h.SessionTTL,
			}[name]
			var v string
			if err := singleString(d, &v); err != nil {
				return err
			}
			if *dst != 0 {
				return d.Errf("%s already specified", name)
			}
			dur, err := caddy.ParseDuration(v)
			if err != nil {
				return d.Errf("%s: %v", name, err)
			}
			if dur < 0 {
				return d.Errf("%s must not be negative", name)
			}
			if dur == 0 && name != "client_secret_ttl" {
				return d.Errf("%s must be positive", name)
			}
			*dst = caddy.Duration(dur)
		case "access_token_signing_alg":
			if err := singleString(d, &h.AccessTokenSigningAlg); err != nil {
				return err
			}
			if err := handlers.CheckAccessTokenSigningAlg(h.AccessTokenSigningAlg); err != nil {
				return d.Errf("%s: %v", name, err)
			}
		case "refresh_reuse_window":
			var v string
			if err := singleString(d, &v); err != nil {
				return err
			}
			if h.RefreshReuseWindow != nil {
				return d.Errf("%s already specified", name)
			}
			dur, err := caddy.ParseDuration(v)
			if err != nil || dur < 0 {
				return d.Errf("%s: %q is not a duration of 0 or more", name, v)
			}
			w := caddy.Duration(dur)
			h.RefreshReuseWindow = &w
		case "token_cache_size":
			var v string
			if err := singleString(d, &v); err != nil {
				return err
			}
			if h.TokenCacheSize != 0 {
				return d.Errf("%s already specified: %d", name, h.TokenCacheSize)
			}
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return d.Errf("%s: %q is not a positive number of entries", name, v)
			}
			h.TokenCacheSize = n
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
			if slices.Contains(limitSubdirectives, name) {
				if err := h.unmarshalLimit(d); err != nil {
					return err
				}
				break
			}
			return d.Errf("unrecognized dcr subdirective %q", name)
		}
	}
	if h.SyncWrites {
		if store == nil {
			store, storeName = &badger.Module{}, "badger"
		}
		b, ok := store.(*badger.Module)
		if !ok {
			return d.Errf("sync_writes applies to the Badger storage, not %s", storeName)
		}
		b.SyncWrites, h.SyncWrites = true, false
	}
	if store != nil {
		h.StorageRaw = caddyconfig.JSONModuleObject(store, "module", storeName, nil)
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
