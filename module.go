// Package caddydcr is a Caddy HTTP handler that makes Caddy the OAuth 2.0
// authorization server for the backends behind it: dynamic client
// registration (RFC 7591, RFC 7592), a token endpoint issuing signed JWTs,
// introspection, revocation, discovery, and a token gate in front of the
// upstream, with everything kept in an embedded Badger database or in
// PostgreSQL (dcr.storage modules).
package caddydcr

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-dcr/caddy-dcr/internal/handlers"
	"github.com/caddy-dcr/caddy-dcr/internal/login"
	"github.com/caddy-dcr/caddy-dcr/storage"
	"github.com/caddy-dcr/caddy-dcr/storage/badger"
	_ "github.com/caddy-dcr/caddy-dcr/storage/postgres" // registers dcr.storage.postgres
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler is the dcr HTTP handler. It serves the OAuth endpoints at their
// paths, and lets every other request through to the next handler only
// with a valid access token.
type Handler struct {
	// Issuer is the authorization server's issuer identifier, an absolute
	// URL; endpoint URLs are built on its scheme and host. Placeholders
	// known at load time ({env.*}) are replaced. Default: the scheme and
	// host of each request, which needs every site on the server's
	// address to have a host name (so that Caddy's host matcher, not the
	// caller, decides the host) and the Host header's port to be the one
	// the request came in on (so set it behind a proxy or a port
	// mapping).
	Issuer string `json:"issuer,omitempty"`

	// StorageRaw is the store, a dcr.storage guest module:
	// {"module": "badger", "dir": ...} or {"module": "postgres", "dsn":
	// ...}. Handlers that configure the same store share it. A JSON string
	// is read as a Badger directory, as configs before storage modules
	// wrote it. Default: Badger in "dcr" under Caddy's data directory.
	StorageRaw json.RawMessage `json:"storage,omitempty" caddy:"namespace=dcr.storage inline_key=module"`

	// SyncWrites is the Badger store's sync_writes, for a Badger store
	// given as a directory or by default. Default: false.
	SyncWrites bool `json:"sync_writes,omitempty"`

	// RegistrationPath is the path of the RFC 7591 registration endpoint;
	// each client's RFC 7592 configuration endpoint is
	// <registration_path>/<client_id>. Default: /oauth/register.
	RegistrationPath string `json:"registration_path,omitempty"`

	// InitialAccessTokens, when set, gate registration: a request must
	// carry one of them as a Bearer token. Placeholders known at load
	// time ({env.*}) are replaced. Default: none (open registration).
	InitialAccessTokens []string `json:"initial_access_tokens,omitempty"`

	// ScopesSupported lists the scopes a client may register. A client
	// that registers no scope gets all of them. Default: any scope.
	ScopesSupported []string `json:"scopes_supported,omitempty"`

	// ClientSecretTTL is how long an issued client secret stays valid.
	// Default: 0, secrets never expire.
	ClientSecretTTL caddy.Duration `json:"client_secret_ttl,omitempty"`

	// MaxBodySize bounds request bodies, in bytes. Default: 65536.
	MaxBodySize int64 `json:"max_body_size,omitempty"`

	// TokenPath is the token endpoint. Default: /oauth/token.
	TokenPath string `json:"token_path,omitempty"`
	// IntrospectionPath is the RFC 7662 endpoint. Default: /oauth/introspect.
	IntrospectionPath string `json:"introspection_path,omitempty"`
	// RevocationPath is the RFC 7009 endpoint. Default: /oauth/revoke.
	RevocationPath string `json:"revocation_path,omitempty"`
	// JWKSPath publishes the token signing keys. Default: /oauth/jwks.
	JWKSPath string `json:"jwks_path,omitempty"`

	// AccessTokenTTL is the lifetime of access tokens. Default: 1h.
	AccessTokenTTL caddy.Duration `json:"access_token_ttl,omitempty"`
	// RefreshTokenTTL is the lifetime of refresh tokens. Default: 30 days.
	RefreshTokenTTL caddy.Duration `json:"refresh_token_ttl,omitempty"`
	// KeyRotation is how long a signing key signs before a new one takes
	// over; the old one keeps verifying until its tokens expired.
	// Default: 30 days.
	KeyRotation caddy.Duration `json:"key_rotation,omitempty"`
	// AccessTokenSigningAlg signs access tokens: ES256 or RS256. ES256
	// signs about 35 times faster than RSA-2048 (BenchmarkJWTAlgorithms),
	// makes shorter tokens and is what the gate's performance budget is
	// measured with; RS256 is for resource servers that verify nothing
	// else (RFC 9068 §2.1 has every authorization server support it). ID
	// tokens follow each client's id_token_signed_response_alg instead.
	// Default: ES256 (handlers.DefaultAccessTokenSigningAlg).
	AccessTokenSigningAlg string `json:"access_token_signing_alg,omitempty"`
	// RefreshReuseWindow is how long after a refresh token was rotated
	// (or a code exchanged) its own client may present it again, as
	// clients that refresh in parallel do, and get a sibling token (or,
	// for a code, a plain invalid_grant) instead of having the whole
	// token family revoked as a replay. 0 makes rotation strict.
	// Default: 10s.
	RefreshReuseWindow *caddy.Duration `json:"refresh_reuse_window,omitempty"`

	// Resource is this gate's resource identifier (RFC 8707, RFC 9728):
	// tokens must be for it or a URL below it. Default: the origin of
	// each request.
	Resource string `json:"resource,omitempty"`
	// RequireScope lists scopes a token must all carry to pass this gate.
	RequireScope []string `json:"require_scope,omitempty"`
	// SubjectHeader, ClientIDHeader and ScopeHeader name the request
	// headers that tell the upstream who called; any copy the caller sent
	// is removed first. "off" sends none. Defaults: X-Auth-Subject,
	// X-Auth-Client-Id, X-Auth-Scope.
	SubjectHeader  string `json:"subject_header,omitempty"`
	ClientIDHeader string `json:"client_id_header,omitempty"`
	ScopeHeader    string `json:"scope_header,omitempty"`
	// StripAuthorization removes the Authorization header before the
	// request goes upstream. Default: false (the upstream sees the token).
	StripAuthorization bool `json:"strip_authorization,omitempty"`
	// AllowPreflight lets CORS preflight requests (OPTIONS with Origin
	// and Access-Control-Request-Method) through the gate without a
	// token, for browser-based clients; the upstream answers them.
	// Default: false.
	AllowPreflight bool `json:"allow_preflight,omitempty"`
	// FailClosed makes the gate refuse every request (503 with
	// Retry-After) while the store cannot tell this instance about
	// revocations made by others (PostgreSQL unreachable). Default: false,
	// the gate keeps accepting the tokens it verified and refusing the
	// revocations it knows, so an outage of the database is not an
	// outage of the API.
	FailClosed bool `json:"fail_closed,omitempty"`
	// TokenCacheSize is how many verified access tokens are kept in
	// memory, so that a token's signature is checked once, not on every
	// request; an entry takes about 400-500 bytes. Every handler on one store
	// shares one cache, as large as the largest size among them. Make it
	// larger than the number of tokens in use at once (about one per
	// connected client). Default: 100000 (handlers.DefaultTokenCacheSize).
	TokenCacheSize int `json:"token_cache_size,omitempty"`

	// AuthorizationPath is the authorization endpoint. Default:
	// /oauth/authorize.
	AuthorizationPath string `json:"authorization_path,omitempty"`
	// GrantsPath lists and revokes the signed-in person's grants.
	// Default: /oauth/grants.
	GrantsPath string `json:"grants_path,omitempty"`
	// UserinfoPath is the OpenID Connect userinfo endpoint. Default:
	// /oauth/userinfo.
	UserinfoPath string `json:"userinfo_path,omitempty"`
	// User is the placeholder naming the person at the authorization
	// endpoint, set by an authentication handler that runs before dcr.
	// Default: {http.auth.user.id}.
	User string `json:"user,omitempty"`
	// TrustedClients skip the consent page.
	TrustedClients []string `json:"trusted_clients,omitempty"`
	// ResourceServers are client ids of resource servers that may
	// introspect any token (RFC 7662 §2.1). Any other client may
	// introspect only tokens issued to itself. Default: none.
	ResourceServers []string `json:"resource_servers,omitempty"`
	// CodeTTL is the lifetime of authorization codes. Default: 60s.
	CodeTTL caddy.Duration `json:"code_ttl,omitempty"`
	// ScopeDescriptions are what the consent page says each scope
	// allows, shown in place of the bare scope. Default: descriptions of
	// the OpenID Connect scopes (openid, profile, email, phone,
	// offline_access).
	ScopeDescriptions map[string]string `json:"scope_descriptions,omitempty"`
	// Claims are extra claims carried in the tokens of a grant, by name;
	// values may hold placeholders, evaluated when the person authorizes.
	Claims map[string]string `json:"claims,omitempty"`
	// Logins are upstream identity providers (OpenID Connect, GitHub)
	// that people sign in through at the authorization endpoint; the
	// upstream's claims become {http.auth.user.*} placeholders. Client
	// ids, secrets and issuers take placeholders known at load time
	// ({env.*}). Default: none, the user placeholder names the person.
	Logins []login.Config `json:"logins,omitempty"`
	// SessionTTL is how long a sign-in through a login lasts. Default:
	// 12h.
	SessionTTL caddy.Duration `json:"session_ttl,omitempty"`
	// MetadataDocuments turns client ID metadata documents on or off.
	// Default: on.
	MetadataDocuments *bool `json:"client_id_metadata_documents,omitempty"`
	// MetadataDocumentHosts restricts the hosts that may serve client ID
	// metadata documents. Default: any public host.
	MetadataDocumentHosts []string `json:"metadata_document_hosts,omitempty"`
	// MetadataDocumentAllowPrivate lets documents come from loopback and
	// private addresses. Default: false.
	MetadataDocumentAllowPrivate bool `json:"metadata_document_allow_private,omitempty"`

	// Limits bound registration and the clients kept (see Limits).
	Limits

	server *handlers.Server
	logger *zap.Logger
	// reaper is the store's, shared; reaperKey is set once a share of it
	// was taken, so that Cleanup lets go only of what Provision took.
	reaper    *reaper
	reaperKey string
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.dcr",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision fills in defaults, opens (or shares) the database and builds
// the endpoints.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()

	repl := caddy.NewReplacer()
	h.Issuer = repl.ReplaceKnown(h.Issuer, "")
	h.Resource = repl.ReplaceKnown(h.Resource, "")
	for i, t := range h.InitialAccessTokens {
		resolved := repl.ReplaceKnown(t, "")
		if resolved == "" {
			// Never log the value: it may be the secret itself.
			return fmt.Errorf("initial_access_token #%d is empty once its placeholders are replaced", i+1)
		}
		h.InitialAccessTokens[i] = resolved
	}
	for _, hd := range []struct {
		name *string
		def  string
	}{{&h.SubjectHeader, "X-Auth-Subject"}, {&h.ClientIDHeader, "X-Auth-Client-Id"}, {&h.ScopeHeader, "X-Auth-Scope"}} {
		if *hd.name == "" {
			*hd.name = hd.def
		}
	}
	if h.RefreshReuseWindow == nil {
		w := caddy.Duration(handlers.DefaultRefreshReuseWindow)
		h.RefreshReuseWindow = &w
	}
	h.provisionLimits()
	for i := range h.Logins {
		l := &h.Logins[i]
		for _, v := range []*string{&l.Issuer, &l.ClientID, &l.ClientSecret, &l.BaseURL, &l.APIURL} {
			*v = repl.ReplaceKnown(*v, "")
		}
	}
	if err := h.validate(); err != nil {
		return err
	}
	var logins []*login.Login
	for _, lc := range h.Logins {
		l, err := login.New(lc)
		if err != nil {
			return err
		}
		logins = append(logins, l)
	}

	if h.Issuer == "" {
		if srv, ok := ctx.Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server); ok && !hostRouted(srv) {
			return fmt.Errorf("issuer is required here: a site on this address answers requests for any host name, " +
				"so the issuer cannot come from the Host header (any caller could mint tokens for another site); " +
				"set issuer, or give every site on this address a host name")
		}
	}

	store, err := h.loadStorage(ctx)
	if err != nil {
		return err
	}

	var documents *handlers.MetadataDocumentConfig
	if h.MetadataDocuments == nil || *h.MetadataDocuments {
		documents = &handlers.MetadataDocumentConfig{AllowedHosts: h.MetadataDocumentHosts, AllowPrivate: h.MetadataDocumentAllowPrivate}
	}
	h.server, err = handlers.New(ctx, store, handlers.Config{
		Issuer:                h.Issuer,
		RegistrationPath:      h.RegistrationPath,
		InitialAccessTokens:   h.InitialAccessTokens,
		ScopesSupported:       h.ScopesSupported,
		ClientSecretTTL:       time.Duration(h.ClientSecretTTL),
		MaxBodyBytes:          h.MaxBodySize,
		TokenPath:             h.TokenPath,
		IntrospectionPath:     h.IntrospectionPath,
		RevocationPath:        h.RevocationPath,
		JWKSPath:              h.JWKSPath,
		AccessTokenTTL:        time.Duration(h.AccessTokenTTL),
		RefreshTokenTTL:       time.Duration(h.RefreshTokenTTL),
		KeyRotation:           time.Duration(h.KeyRotation),
		AccessTokenSigningAlg: h.AccessTokenSigningAlg,
		RefreshReuseWindow:    time.Duration(*h.RefreshReuseWindow),
		Resource:              h.Resource,
		RequireScope:          h.RequireScope,
		SubjectHeader:         headerName(h.SubjectHeader),
		ClientIDHeader:        headerName(h.ClientIDHeader),
		ScopeHeader:           headerName(h.ScopeHeader),
		StripAuthorization:    h.StripAuthorization,
		AllowPreflight:        h.AllowPreflight,
		FailClosed:            h.FailClosed,
		TokenCacheSize:        h.TokenCacheSize,
		AuthorizationPath:     h.AuthorizationPath,
		GrantsPath:            h.GrantsPath,
		UserinfoPath:          h.UserinfoPath,
		User:                  h.User,
		TrustedClients:        h.TrustedClients,
		ResourceServers:       h.ResourceServers,
		CodeTTL:               time.Duration(h.CodeTTL),
		Claims:                h.Claims,
		ScopeDescriptions:     h.ScopeDescriptions,
		Logins:                logins,
		SessionTTL:            time.Duration(h.SessionTTL),
		MetadataDocuments:     documents,
		Limits:                h.handlerLimits(),
		Logger:                h.logger,
		AuditLogger:           handlers.AuditLogger(ctx),
	}.WithDefaults())
	if err != nil {
		return err
	}
	h.reaper, h.reaperKey, err = joinReaper(store, h,
		reapTTLs{unused: time.Duration(*h.UnusedClientTTL), idle: time.Duration(*h.IdleClientTTL)}, h.logger.Named("reaper"))
	if err != nil {
		return err
	}
	if len(h.InitialAccessTokens) == 0 {
		h.logger.Warn("client registration is open: anyone who can reach the registration endpoint can register a client; set initial_access_token to gate it",
			zap.String("registration_path", h.RegistrationPath))
	}
	// Last: the admin API reaches the handler until its config is
	// unloaded.
	return servers.expose(ctx, h.server)
}

// Validate checks the configuration.
func (h *Handler) Validate() error { return h.validate() }

func (h *Handler) validate() error {
	if h.Issuer != "" {
		u, err := url.Parse(h.Issuer)
		if err != nil || !u.IsAbs() || u.Host == "" {
			return fmt.Errorf("issuer %q is not an absolute URL", h.Issuer)
		}
		if u.Scheme != "https" && u.Scheme != "http" {
			return fmt.Errorf("issuer %q must be an https URL", h.Issuer)
		}
		// RFC 8414 §2: the issuer has no query or fragment.
		if u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(h.Issuer, "?") || strings.Contains(h.Issuer, "#") {
			return fmt.Errorf("issuer %q must not have a query or fragment", h.Issuer)
		}
	}
	seen := map[string]string{}
	for _, p := range []struct{ name, value string }{
		{"registration_path", h.RegistrationPath}, {"token_path", h.TokenPath},
		{"introspection_path", h.IntrospectionPath}, {"revocation_path", h.RevocationPath}, {"jwks_path", h.JWKSPath},
		{"authorization_path", h.AuthorizationPath}, {"grants_path", h.GrantsPath},
		{"userinfo_path", h.UserinfoPath},
	} {
		if err := checkEndpointPath(p.name, p.value); err != nil {
			return err
		}
		if other, ok := seen[p.value]; ok && p.value != "" {
			return fmt.Errorf("%s and %s are both %s", other, p.name, p.value)
		}
		seen[p.value] = p.name
	}
	for _, d := range []struct {
		name  string
		value caddy.Duration
	}{
		{"client_secret_ttl", h.ClientSecretTTL}, {"access_token_ttl", h.AccessTokenTTL},
		{"refresh_token_ttl", h.RefreshTokenTTL}, {"key_rotation", h.KeyRotation}, {"code_ttl", h.CodeTTL},
		{"refresh_reuse_window", ptrValue(h.RefreshReuseWindow)}, {"session_ttl", h.SessionTTL},
	} {
		if d.value < 0 {
			return fmt.Errorf("%s must not be negative", d.name)
		}
	}
	// Revocations are remembered for these maximums (see
	// handlers.RevocationRetention), whichever handler on the store
	// issued the tokens they cover.
	if time.Duration(h.AccessTokenTTL) > handlers.MaxAccessTokenTTL {
		return fmt.Errorf("access_token_ttl must be at most %s", handlers.MaxAccessTokenTTL)
	}
	if time.Duration(h.CodeTTL) > handlers.MaxCodeTTL {
		return fmt.Errorf("code_ttl must be at most %s", handlers.MaxCodeTTL)
	}
	if time.Duration(h.RefreshTokenTTL) > handlers.MaxRefreshTokenTTL {
		return fmt.Errorf("refresh_token_ttl must be at most %s", handlers.MaxRefreshTokenTTL)
	}
	if time.Duration(h.SessionTTL) > handlers.MaxSessionTTL {
		return fmt.Errorf("session_ttl must be at most %s (the session key's period)", handlers.MaxSessionTTL)
	}
	for name := range h.Claims {
		if handlers.IsReservedClaim(name) {
			return fmt.Errorf("claim %q is a name the token already uses", name)
		}
		if name == "" || strings.ContainsAny(name, " {}") {
			return fmt.Errorf("claim name %q is not usable", name)
		}
	}
	if h.Resource != "" {
		if err := handlers.CheckResource(h.Resource); err != nil {
			return err
		}
	}
	if h.MaxBodySize < 0 {
		return fmt.Errorf("max_body_size must not be negative")
	}
	if h.AccessTokenSigningAlg != "" {
		if err := handlers.CheckAccessTokenSigningAlg(h.AccessTokenSigningAlg); err != nil {
			return fmt.Errorf("access_token_signing_alg %w", err)
		}
	}
	if h.TokenCacheSize < 0 {
		return fmt.Errorf("token_cache_size must not be negative")
	}
	if err := h.validateLimits(); err != nil {
		return err
	}
	return h.validateLogins()
}

func ptrValue[T any](p *T) (v T) {
	if p != nil {
		v = *p
	}
	return v
}

// hostRouted reports whether every route of srv passes a host matcher, so
// that a request reaches dcr only for a host name the site was configured
// for. Caddy provisions a server's top-level matchers before its handlers,
// so they are loaded when dcr is provisioned.
func hostRouted(srv *caddyhttp.Server) bool {
	for _, rt := range srv.Routes {
		if len(rt.MatcherSets) == 0 {
			return false
		}
		for _, set := range rt.MatcherSets {
			if !slices.ContainsFunc(set, namesHosts) {
				return false
			}
		}
	}
	return true
}

// namesHosts reports whether m is a host matcher that names hosts: not one
// that matches any name ("*", "*.*", a placeholder), which a caller picks
// with the Host header.
func namesHosts(m any) bool {
	hosts, ok := m.(*caddyhttp.MatchHost)
	if !ok || len(*hosts) == 0 {
		return false
	}
	for _, h := range *hosts {
		if strings.Contains(h, "{") || strings.Trim(h, "*.") == "" {
			return false
		}
	}
	return true
}

// headerName maps the "off" of a header subdirective to no header.
func headerName(v string) string {
	if v == "off" {
		return ""
	}
	return v
}

// checkEndpointPath requires an absolute, clean path, so that the endpoint
// is matched exactly as written.
func checkEndpointPath(name, p string) error {
	if p == "" {
		return nil
	}
	if p[0] != '/' || path.Clean(p) != p || p == "/" || strings.ContainsAny(p, "?#{}") {
		return fmt.Errorf("%s %q must be a clean absolute path such as /oauth/register", name, p)
	}
	return nil
}

// loadStorage loads the storage guest module, which opens the store or
// shares the one already open; Caddy cleans the module up (letting go of
// the store) with this handler's context, also after a Provision that
// failed part way.
func (h *Handler) loadStorage(ctx caddy.Context) (storage.Store, error) {
	if len(h.StorageRaw) == 0 || h.StorageRaw[0] == '"' {
		var dir string
		if len(h.StorageRaw) > 0 {
			if err := json.Unmarshal(h.StorageRaw, &dir); err != nil {
				return nil, fmt.Errorf("storage: %w", err)
			}
		}
		h.StorageRaw = caddyconfig.JSONModuleObject(badger.Module{Dir: dir, SyncWrites: h.SyncWrites}, "module", "badger", nil)
	} else if h.SyncWrites {
		return nil, errors.New("sync_writes belongs to the Badger storage: write it in its block (storage badger <dir> { sync_writes })")
	}
	mod, err := ctx.LoadModule(h, "StorageRaw")
	if err != nil {
		return nil, fmt.Errorf("loading storage: %w", err)
	}
	backend, ok := mod.(storage.Backend)
	if !ok {
		return nil, fmt.Errorf("storage module %T provides no store", mod)
	}
	return backend.Store(), nil
}

// Cleanup lets go of the handler's shares of its store's token cache and
// reaper; the storage module lets go of the store itself. It is safe after
// a Provision that failed part way.
func (h *Handler) Cleanup() error {
	if h.server != nil {
		h.server.Close()
	}
	if h.reaperKey == "" {
		return nil
	}
	h.reaper.leave(h)
	_, err := reapers.Delete(h.reaperKey)
	h.reaperKey = ""
	return err
}

// ServeHTTP serves the OAuth endpoints and passes other requests on.
func (h Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	return h.server.ServeHTTP(w, r, next)
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
	_ caddyfile.Unmarshaler       = (*Handler)(nil)
)
