// Package handlers implements caddy-dcr's HTTP side: the OAuth endpoints
// (registration, client configuration) and the seam where every other
// request is passed to the token gate.
package handlers

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-dcr/caddy-dcr/internal/login"
	"github.com/caddy-dcr/caddy-dcr/internal/ratelimit"
	"github.com/caddy-dcr/caddy-dcr/storage"
)

// DefaultMaxBodyBytes bounds request bodies when Config.MaxBodyBytes is 0.
const DefaultMaxBodyBytes = 64 << 10

// Config is a Server's resolved configuration; the Caddy module fills it in
// from its own fields and defaults.
type Config struct {
	// Issuer is the issuer identifier URL. Empty: scheme://host of each
	// request.
	Issuer string
	// RegistrationPath is the path of the RFC 7591 registration endpoint;
	// each client's configuration endpoint is below it.
	RegistrationPath string
	// InitialAccessTokens gate registration when not empty: a request must
	// carry one of them as a Bearer token.
	InitialAccessTokens []string
	// ScopesSupported lists the scopes a client may register; nil: any.
	ScopesSupported []string
	// ClientSecretTTL is how long a client secret lasts; 0: forever.
	ClientSecretTTL time.Duration
	// MaxBodyBytes bounds request bodies; 0: DefaultMaxBodyBytes.
	MaxBodyBytes int64

	// TokenPath, IntrospectionPath, RevocationPath and JWKSPath are the
	// paths of those endpoints.
	TokenPath, IntrospectionPath, RevocationPath, JWKSPath string
	// AccessTokenTTL and RefreshTokenTTL are the token lifetimes.
	AccessTokenTTL, RefreshTokenTTL time.Duration
	// KeyRotation is how long a signing key signs before a new one
	// takes over.
	KeyRotation time.Duration
	// AccessTokenSigningAlg signs access tokens: ES256 or RS256 (one of
	// AccessTokenSigningAlgs). Default: DefaultAccessTokenSigningAlg.
	AccessTokenSigningAlg string
	// RefreshReuseWindow is how long after a refresh token's rotation (or
	// a code's exchange) its own client may present it again without it
	// counting as a replay; 0: never (strict rotation).
	RefreshReuseWindow time.Duration

	// Resource is the resource identifier of the gate (RFC 8707, RFC
	// 9728); "": the origin of each request.
	Resource string
	// RequireScope lists scopes every gated request's token must carry.
	RequireScope []string
	// SubjectHeader, ClientIDHeader and ScopeHeader name the request
	// headers that tell the upstream who called; "" sends none.
	SubjectHeader, ClientIDHeader, ScopeHeader string
	// StripAuthorization removes the Authorization header before the
	// request goes upstream.
	StripAuthorization bool
	// AllowPreflight lets CORS preflight requests through the gate
	// without a token.
	AllowPreflight bool
	// TokenCacheSize is how many verified access tokens the store's
	// cache holds; handlers on one store share one cache, as large as the
	// largest of their sizes. 0: DefaultTokenCacheSize.
	TokenCacheSize int
	// FailClosed makes the gate refuse every token (503) while the store
	// cannot tell it about revocations made elsewhere.
	FailClosed bool

	// AuthorizationPath and GrantsPath are the authorization endpoint and
	// the person's grants.
	AuthorizationPath, GrantsPath string
	// UserinfoPath is the OpenID Connect userinfo endpoint.
	UserinfoPath string
	// User is the placeholder that names the person at the
	// authorization endpoint. Default: {http.auth.user.id}.
	User string
	// TrustedClients skip the consent page.
	TrustedClients []string
	// ResourceServers are the clients that may introspect any token;
	// any other client only its own.
	ResourceServers []string
	// CodeTTL is the lifetime of authorization codes.
	CodeTTL time.Duration
	// ScopeDescriptions are what the consent page says a scope allows,
	// by scope, in place of the scope itself; they add to and override
	// DefaultScopeDescriptions.
	ScopeDescriptions map[string]string
	// Claims are extra token claims by name; values may hold
	// placeholders, evaluated at authorization time.
	Claims map[string]string
	// Logins are the upstream identity providers people sign in
	// through; none: the user placeholder names the person.
	Logins []*login.Login
	// SessionTTL is how long a sign-in through a login lasts.
	SessionTTL time.Duration
	// MetadataDocuments configures client ID metadata documents; nil
	// turns them off.
	MetadataDocuments *MetadataDocumentConfig
	// Limits bound registration and what it may register.
	Limits Limits
	// Logger receives the handlers' logs. Default: no-op.
	Logger *zap.Logger
	// AuditLogger receives one line for every change made to a client,
	// a grant or a token (see audit). Default: no-op.
	AuditLogger *zap.Logger
	// Now is the clock. Default: time.Now.
	Now func() time.Time
}

// Server serves caddy-dcr's endpoints. It is safe for concurrent use and
// read-only after New, but for reapPause.
type Server struct {
	store  storage.Store
	cfg    Config
	origin string // scheme://host from cfg.Issuer, or "" to derive it
	// cfgResourceOrigin is scheme://host of cfg.Resource, "" without one.
	cfgResourceOrigin string
	issuerPath        string   // the path of cfg.Issuer, without a trailing slash
	iatHashes         [][]byte // hashes of cfg.InitialAccessTokens
	policy            metadataPolicy
	limiter           *ratelimit.Limiter // nil: registration is not rate limited
	log               *zap.Logger
	auditLog          *zap.Logger
	now               func() time.Time

	keys   *keyRing
	tokens *tokenCache
	// releaseCache lets go of this server's claim on the size of tokens.
	releaseCache func()
	// releaseLimiter lets go of this server's share of limiter's buckets.
	releaseLimiter func()
	// csrfKey signs consent forms; cimd fetches client ID metadata
	// documents (nil when they are off).
	csrfKey []byte
	cimd    *metadataDocuments
	// identityHeaders are the canonical forms of SubjectHeader,
	// ClientIDHeader and ScopeHeader, in that order ("" for none).
	identityHeaders [3]string
	endpoints       map[string]http.HandlerFunc // by exact path
	// logins is the upstream login side; nil when none is configured.
	logins *loginState
	// reapPause is the unix time in nanoseconds before which
	// roomForClient does not try to reap (see reapPauseAfterNothing).
	reapPause atomic.Int64
}

// Default endpoint paths and lifetimes.
const (
	DefaultRegistrationPath  = "/oauth/register"
	DefaultTokenPath         = "/oauth/token"
	DefaultIntrospectionPath = "/oauth/introspect"
	DefaultRevocationPath    = "/oauth/revoke"
	DefaultJWKSPath          = "/oauth/jwks"
	DefaultAuthorizationPath = "/oauth/authorize"
	DefaultGrantsPath        = "/oauth/grants"
	DefaultUserinfoPath      = "/oauth/userinfo"
	DefaultUser              = "{http.auth.user.id}"
	DefaultCodeTTL           = time.Minute
	DefaultAccessTokenTTL    = time.Hour
	DefaultRefreshTokenTTL   = 30 * 24 * time.Hour
	DefaultKeyRotation       = 30 * 24 * time.Hour
	// DefaultAccessTokenSigningAlg is ES256: it signs about 35 times
	// faster than RSA-2048 (BenchmarkJWTAlgorithms), its tokens are a
	// third shorter, and it is what the gate's performance budget is
	// measured with. RS256 (RFC 9068 §2.1's MUST) is there for resource
	// servers that verify nothing else.
	DefaultAccessTokenSigningAlg = jwtAlg
	// DefaultRefreshReuseWindow is the Caddy module's default; a Config
	// that leaves RefreshReuseWindow at 0 rotates strictly.
	DefaultRefreshReuseWindow = 10 * time.Second
)

// WithDefaults returns c with every setting left at its zero value set to
// its default: the one place the handlers' defaults are applied.
func (c Config) WithDefaults() Config {
	for _, p := range []struct {
		path *string
		def  string
	}{
		{&c.RegistrationPath, DefaultRegistrationPath}, {&c.TokenPath, DefaultTokenPath},
		{&c.IntrospectionPath, DefaultIntrospectionPath}, {&c.RevocationPath, DefaultRevocationPath},
		{&c.JWKSPath, DefaultJWKSPath}, {&c.AuthorizationPath, DefaultAuthorizationPath},
		{&c.GrantsPath, DefaultGrantsPath}, {&c.UserinfoPath, DefaultUserinfoPath},
	} {
		if *p.path == "" {
			*p.path = p.def
		}
	}
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{
		{&c.AccessTokenTTL, DefaultAccessTokenTTL}, {&c.RefreshTokenTTL, DefaultRefreshTokenTTL},
		{&c.KeyRotation, DefaultKeyRotation}, {&c.CodeTTL, DefaultCodeTTL},
		{&c.SessionTTL, DefaultSessionTTL},
	} {
		if *d.v <= 0 {
			*d.v = d.def
		}
	}
	if c.User == "" {
		c.User = DefaultUser
	}
	if c.AccessTokenSigningAlg == "" {
		c.AccessTokenSigningAlg = DefaultAccessTokenSigningAlg
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.TokenCacheSize <= 0 {
		c.TokenCacheSize = DefaultTokenCacheSize
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.AuditLogger == nil {
		c.AuditLogger = zap.NewNop()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// New returns a Server over store and loads the signing keys (making the
// first one on a new store). cfg is taken as resolved and validated by the
// Caddy module (see WithDefaults): New checks only that the endpoints it
// serves have distinct paths.
func New(ctx context.Context, store storage.Store, cfg Config) (*Server, error) {
	if store == nil {
		return nil, errors.New("no store")
	}
	s := &Server{
		store: store,
		cfg:   cfg,
		policy: metadataPolicy{scopes: cfg.ScopesSupported, grantTypes: cfg.Limits.AllowedGrantTypes,
			redirectSchemes: cfg.Limits.AllowedRedirectSchemes, redirectHosts: cfg.Limits.AllowedRedirectHosts,
			noPublicClients: cfg.Limits.NoPublicClients},
		log: cfg.Logger,
		now: cfg.Now,
	}
	s.auditLog = cfg.AuditLogger
	// The token and authorization endpoints check scopes against
	// cfg.ScopesSupported: give them the same list as registration and
	// discovery.
	s.cfg.ScopesSupported = s.policy.supportedScopes()
	if cfg.Issuer != "" {
		u, err := url.Parse(cfg.Issuer)
		if err != nil || u.Scheme == "" || u.Host == "" {
			return nil, fmt.Errorf("issuer %q is not an absolute URL", cfg.Issuer)
		}
		s.origin = u.Scheme + "://" + u.Host
		s.issuerPath = strings.TrimSuffix(u.Path, "/")
	}
	if u, err := url.Parse(cfg.Resource); cfg.Resource != "" && err == nil {
		s.cfgResourceOrigin = u.Scheme + "://" + u.Host
	}
	for _, t := range cfg.InitialAccessTokens {
		s.iatHashes = append(s.iatHashes, storage.HashSecret(t))
	}
	var err error
	// A retired key verifies as long as any handler's tokens may live,
	// not only this one's: others on the store may give longer lifetimes.
	s.keys, err = newKeyRing(ctx, store, s.now, cfg.KeyRotation, MaxAccessTokenTTL)
	if err != nil {
		return nil, err
	}
	if err := CheckAccessTokenSigningAlg(cfg.AccessTokenSigningAlg); err != nil {
		return nil, fmt.Errorf("access token signing algorithm %w", err)
	}
	if s.keys.accessAlg = cfg.AccessTokenSigningAlg; s.keys.accessAlg == algRS256 {
		// Resource servers may fetch the JWKS before the first token is
		// issued: the RS256 key exists from the start, not from then.
		if err := s.keys.load(ctx, true, true); err != nil {
			return nil, err
		}
	}
	s.tokens = tokenCacheOf(store)
	// The consent forms' key lives in the store, so a form stays valid
	// across a config reload and whichever handler receives it.
	if s.csrfKey, err = store.ServerSecret(ctx, "csrf"); err != nil {
		return nil, fmt.Errorf("reading the consent form key: %w", err)
	}
	if cfg.MetadataDocuments != nil {
		s.cimd = newMetadataDocuments(*cfg.MetadataDocuments, s.policy, s.log)
	}
	for i, h := range []string{cfg.SubjectHeader, cfg.ClientIDHeader, cfg.ScopeHeader} {
		if h != "" {
			s.identityHeaders[i] = textproto.CanonicalMIMEHeaderKey(h)
		}
	}
	s.endpoints = map[string]http.HandlerFunc{
		cfg.RegistrationPath:  observe(s.serveRegister, s.countRegistration),
		cfg.TokenPath:         observe(s.serveToken, countToken),
		cfg.IntrospectionPath: s.serveIntrospect,
		cfg.RevocationPath:    s.serveRevoke,
		cfg.JWKSPath:          s.serveJWKS,
		wellKnownServer:       s.serveServerMetadata,
		wellKnownOpenID:       s.serveOpenIDConfiguration,
		wellKnownResource:     s.serveResourceMetadata,
		cfg.AuthorizationPath: s.serveAuthorize,
		cfg.GrantsPath:        s.serveGrants,
		cfg.UserinfoPath:      s.serveUserinfo,
	}
	if len(s.endpoints) != 11 {
		return nil, errors.New("two endpoints share a path")
	}
	if err := s.setupLogins(ctx); err != nil {
		return nil, err
	}
	// Last, so that a New that fails holds no share of the cache or of
	// the registration and sign-in limits' buckets.
	s.releaseCache = s.tokens.want(max(cfg.TokenCacheSize, 1))
	s.limiter, s.releaseLimiter = registrationLimiter(store, cfg.Limits)
	s.shareSignInLimit()
	return s, nil
}

// Close lets go of what New took that outlives the Server: its share of
// the store's token cache and of its registration and sign-in limits'
// buckets. The store stays open.
func (s *Server) Close() {
	if s.releaseCache != nil {
		s.releaseCache()
		s.releaseCache = nil
	}
	if s.releaseLimiter != nil {
		s.releaseLimiter()
		s.releaseLimiter = nil
	}
	if s.logins != nil && s.logins.releasePerAddress != nil {
		s.logins.releasePerAddress()
		s.logins.releasePerAddress = nil
	}
}

// tokenCacheOf returns the token cache of store, shared by every Server
// on it; a store that keeps no shared state (a bare backend in tests)
// gets a cache of its own.
func tokenCacheOf(store storage.Store) *tokenCache {
	type tokenCacheKey struct{}
	if sh, ok := store.(interface {
		Shared(key any, create func() any) any
	}); ok {
		return sh.Shared(tokenCacheKey{}, func() any { return newTokenCache() }).(*tokenCache)
	}
	return newTokenCache()
}

// ServeHTTP answers the request if its path is one of the endpoints, and
// otherwise lets it through the token gate to next.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if s.origin == "" && !hostPortServed(r) {
		// The issuer would come from a Host this server does not
		// answer for: refuse before anything is issued or accepted.
		writeJSON(w, http.StatusMisdirectedRequest, ErrInvalidRequest.WithStatus(http.StatusMisdirectedRequest).WithDescription(
			"the Host header names a port this server did not receive the request on; behind a proxy or a port mapping, set issuer"))
		return nil
	}
	p := r.URL.Path
	if h, ok := s.endpoints[p]; ok {
		h(w, r)
		return nil
	}
	if s.serveLoginPath(w, r, p) {
		return nil
	}
	reg := s.cfg.RegistrationPath
	switch {
	case strings.HasPrefix(p, wellKnownResource+"/"):
		s.serveResourceMetadata(w, r)
		return nil
	case strings.HasPrefix(p, wellKnownServer+"/") && s.origin != "" && p == wellKnownServer+s.issuerPath:
		// RFC 8414 §3.1: an issuer with a path has its metadata at
		// /.well-known/oauth-authorization-server/<path>.
		s.serveServerMetadata(w, r)
		return nil
	case s.issuerPath != "" && (p == s.issuerPath+wellKnownOpenID || p == wellKnownOpenID+s.issuerPath):
		// OpenID Connect Discovery 1.0 §4 appends the well-known path
		// to the issuer; MCP clients also try it inserted, as RFC 8414
		// does.
		s.serveOpenIDConfiguration(w, r)
		return nil
	case strings.HasPrefix(p, s.cfg.GrantsPath+"/"):
		s.serveGrant(w, r, p[len(s.cfg.GrantsPath)+1:])
		return nil
	case strings.HasPrefix(p, reg+"/"):
		id, action, _ := strings.Cut(p[len(reg)+1:], "/")
		switch action {
		case "":
			s.serveClientConfiguration(w, r, id)
		case "rotate_secret":
			s.serveRotateSecret(w, r, id)
		default:
			writeJSON(w, http.StatusNotFound, ErrInvalidRequest.WithDescription("no such endpoint"))
		}
		return nil
	}
	s.stripLoginCookies(r)
	return s.serveGated(w, r, next)
}

// issuer is the issuer identifier: the configured one exactly as written,
// or else the request's origin. The same string goes into the metadata,
// the tokens and the protected resource documents (clients compare it byte
// for byte).
func (s *Server) issuer(r *http.Request) string {
	if s.cfg.Issuer != "" {
		return s.cfg.Issuer
	}
	return s.baseURL(r)
}

// hostPortServed reports whether the request's Host names the port the
// connection came in on (the scheme's default port when it names none).
// With no configured issuer, the issuer is derived from the Host, and the
// site's host matcher has checked only the name: a caller sending
// "Host: 127.0.0.1:6666" to the site on port 8080 would otherwise mint
// tokens, and read metadata, for an issuer at port 6666, which another
// site on the same store accepts. Outside a real server (httptest) the
// local address is unknown and the port is not checked.
func hostPortServed(r *http.Request) bool {
	var localPort int
	switch a := r.Context().Value(http.LocalAddrContextKey).(type) {
	case *net.TCPAddr:
		localPort = a.Port
	case *net.UDPAddr:
		localPort = a.Port
	default:
		return true
	}
	port := 80
	if r.TLS != nil {
		port = 443
	}
	// The port follows the last colon, unless that colon is inside an
	// IPv6 literal ("[::1]" has none).
	if i := strings.LastIndexByte(r.Host, ':'); i >= 0 && !strings.Contains(r.Host[i:], "]") {
		// One spelling only: "018080" or "+18080" would make another
		// issuer string.
		p, err := strconv.Atoi(r.Host[i+1:])
		if err != nil || strconv.Itoa(p) != r.Host[i+1:] {
			return false
		}
		port = p
	}
	return port == localPort
}

// baseURL is scheme://host for the endpoint URLs the server hands out: the
// configured issuer's, or else the request's own.
func (s *Server) baseURL(r *http.Request) string {
	if s.origin != "" {
		return s.origin
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// allowMethods answers a CORS preflight or a request with a method not in
// allowed, and reports whether the request should go on. Registration and
// configuration are authenticated by bearer tokens, never cookies, so any
// origin may call them; browser-based MCP clients do.
func allowMethods(w http.ResponseWriter, r *http.Request, allowed ...string) bool {
	list := strings.Join(allowed, ", ")
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	if r.Method == http.MethodOptions {
		h.Set("Allow", list+", OPTIONS")
		h.Set("Access-Control-Allow-Methods", list)
		h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
		h.Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
		return false
	}
	if slices.Contains(allowed, r.Method) {
		return true
	}
	h.Set("Allow", list+", OPTIONS")
	writeJSON(w, http.StatusMethodNotAllowed, ErrInvalidRequest.WithDescription(
		fmt.Sprintf("method %s is not allowed here; use %s", r.Method, list)))
	return false
}

// readJSONBody reads a bounded JSON request body. RFC 7591 §3.1 requires
// application/json; parameters such as charset are allowed.
func (s *Server) readJSONBody(w http.ResponseWriter, r *http.Request) ([]byte, *Error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return nil, ErrInvalidClientMetadata.WithDescription("Content-Type must be application/json")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, ErrInvalidRequest.WithStatus(http.StatusRequestEntityTooLarge).WithDescription(
				fmt.Sprintf("the body is larger than %d bytes", s.cfg.MaxBodyBytes))
		}
		return nil, ErrInvalidRequest.WithDescription("reading the body failed")
	}
	return body, nil
}

// internalError logs err and answers server_error. The log names the
// operation and the client, never a secret.
//
// A store that is down or too slow (storage.ErrUnavailable) is a 503 with
// Retry-After: the client may try again shortly, and a load balancer may
// try another instance; never a 500, which says the request itself broke
// the server.
func (s *Server) internalError(w http.ResponseWriter, op, clientID string, err error) {
	s.log.Error(op+" failed", zap.String("client_id", clientID), zap.Error(err))
	if errors.Is(err, storage.ErrUnavailable) {
		w.Header().Set("Retry-After", retryAfterSeconds)
		writeError(w, ErrServerError.WithStatus(http.StatusServiceUnavailable).WithDescription("storage is unavailable; try again shortly"))
		return
	}
	writeError(w, ErrServerError)
}

// retryAfterSeconds is the Retry-After of an answer given while the store
// is unavailable.
const retryAfterSeconds = "2"

// challenge sends 401 invalid_token with the RFC 6750 §3 challenge, for
// endpoints authenticated by a bearer token (initial access tokens, RFC 7592
// registration access tokens).
func challenge(w http.ResponseWriter, desc string) {
	w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
	writeJSON(w, http.StatusUnauthorized, ErrInvalidToken.WithDescription(desc))
}

// initialAccess decides whether the request may register, and how. A
// request carrying a bearer token presents an initial access token (RFC
// 7591 §3): one of the configured ones (static, every one compared in
// constant time), or else, it is assumed, one created at run time, which
// the registration itself counts (runtime). Without a token, a request
// may register only while registration is open (no configured tokens).
func (s *Server) initialAccess(r *http.Request) (ok, presented, runtime bool, token string) {
	token, presented = bearerToken(r)
	got := storage.HashSecret(token)
	match := 0
	for _, want := range s.iatHashes {
		match |= subtle.ConstantTimeCompare(got, want)
	}
	switch {
	case presented && match == 1:
		return true, true, false, token
	case presented:
		return true, true, true, token
	}
	return len(s.iatHashes) == 0, false, false, ""
}

// The longest token and code lifetimes any handler may have.
const (
	MaxAccessTokenTTL  = 24 * time.Hour
	MaxCodeTTL         = 10 * time.Minute
	MaxRefreshTokenTTL = 90 * 24 * time.Hour
	// RevocationRetention is how long a revocation of a family, grant or
	// client is remembered: until the last access token or code it can
	// cover has expired, whichever handler on the store issued it (a
	// handler's own lifetimes would let a revocation made at a handler
	// with short ones be forgotten while another's tokens live on).
	RevocationRetention = MaxAccessTokenTTL + MaxCodeTTL
)

// revokedUntil is the unix time until which a revocation made now is
// remembered.
func (s *Server) revokedUntil() int64 {
	return s.now().Add(RevocationRetention).Unix()
}

// familyRevokedUntil is revokedUntil for a refresh token family: a
// family's revocation also stands in for any of its refresh tokens that
// its deletion missed, so it lasts as long as they may.
func (s *Server) familyRevokedUntil() int64 {
	return s.now().Add(max(RevocationRetention, MaxRefreshTokenTTL)).Unix()
}

// revocationContext is ctx for a revocation that must finish even if the
// client that triggered it hangs up (a replayed refresh token's family, a
// person's grant), bounded so that it cannot run forever.
func revocationContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
}
