// Package caddydcr is a Caddy HTTP handler that makes Caddy the OAuth 2.0
// authorization server for the backends behind it: dynamic client
// registration (RFC 7591, RFC 7592) with clients kept in an embedded Badger
// database.
package caddydcr

import (
	"fmt"
	"net/http"
	"net/url"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-dcr/caddy-dcr/handlers"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler is the dcr HTTP handler. It serves the OAuth endpoints at their
// paths and passes every other request on to the next handler.
type Handler struct {
	// Issuer is the authorization server's issuer identifier, an absolute
	// URL; endpoint URLs are built on its scheme and host. Placeholders
	// known at load time ({env.*}) are replaced. Default: the scheme and
	// host of each request.
	Issuer string `json:"issuer,omitempty"`

	// Storage is the directory of the Badger database. Handlers that name
	// the same directory share one database. Default: "dcr" under Caddy's
	// data directory.
	Storage string `json:"storage,omitempty"`

	// SyncWrites makes every write wait for the disk (fsync), so that a
	// power loss cannot lose an answered registration. Default: false (a
	// killed process loses nothing; a power loss may lose the last
	// writes).
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

	server   *handlers.Server
	storeKey string // the pool key once Provision holds the database
	logger   *zap.Logger
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
	h.Storage = repl.ReplaceKnown(h.Storage, "")
	for i, t := range h.InitialAccessTokens {
		resolved := repl.ReplaceKnown(t, "")
		if resolved == "" {
			// Never log the value: it may be the secret itself.
			return fmt.Errorf("initial_access_token #%d is empty once its placeholders are replaced", i+1)
		}
		h.InitialAccessTokens[i] = resolved
	}
	if h.Storage == "" {
		h.Storage = filepath.Join(caddy.AppDataDir(), "dcr")
	}
	if h.RegistrationPath == "" {
		h.RegistrationPath = "/oauth/register"
	}
	if err := h.validate(); err != nil {
		return err
	}

	dir, err := filepath.Abs(h.Storage)
	if err != nil {
		return fmt.Errorf("storage directory %s: %w", h.Storage, err)
	}
	store, err := openStore(dir, h.SyncWrites)
	if err != nil {
		return err
	}
	h.storeKey = dir

	h.server, err = handlers.New(store, handlers.Config{
		Issuer:              h.Issuer,
		RegistrationPath:    h.RegistrationPath,
		InitialAccessTokens: h.InitialAccessTokens,
		ScopesSupported:     h.ScopesSupported,
		ClientSecretTTL:     time.Duration(h.ClientSecretTTL),
		MaxBodyBytes:        h.MaxBodySize,
		Logger:              h.logger,
	})
	if err != nil {
		return err
	}
	if len(h.InitialAccessTokens) == 0 {
		h.logger.Warn("client registration is open: anyone who can reach the registration endpoint can register a client; set initial_access_token to gate it",
			zap.String("registration_path", h.RegistrationPath))
	}
	return nil
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
	if err := checkEndpointPath("registration_path", h.RegistrationPath); err != nil {
		return err
	}
	if h.ClientSecretTTL < 0 {
		return fmt.Errorf("client_secret_ttl must not be negative")
	}
	if h.MaxBodySize < 0 {
		return fmt.Errorf("max_body_size must not be negative")
	}
	return nil
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

// Cleanup releases the database if Provision took it; the last handler to
// let go closes it. It is safe after a Provision that failed part way.
func (h *Handler) Cleanup() error {
	if h.storeKey == "" {
		return nil
	}
	key := h.storeKey
	h.storeKey = ""
	return releaseStore(key)
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
