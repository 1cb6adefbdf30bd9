package handlers

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-dcr/caddy-dcr/storage"
)

// The per-client settings only the operator may set (storage.ClientSettings)
// are applied here: a disabled client is refused (see disabledClient), and
// the lifetimes and scopes it is issued are narrowed, never widened.

// touchGranularity is how stale a client's LastUsedAt may be before the
// token endpoint records a new use: at most one store write per client
// per hour, so issuing tokens stays free of writes. Reaping works in days.
const touchGranularity = time.Hour

// accessTTL is the lifetime of the access tokens issued to c: the
// server's, or the client's own when the operator set a shorter one.
func (s *Server) accessTTL(c *storage.Client) time.Duration {
	return clientTTL(s.cfg.AccessTokenTTL, c.Settings.AccessTokenTTL)
}

// refreshTTL is accessTTL for refresh tokens.
func (s *Server) refreshTTL(c *storage.Client) time.Duration {
	return clientTTL(s.cfg.RefreshTokenTTL, c.Settings.RefreshTokenTTL)
}

func clientTTL(server time.Duration, seconds int64) time.Duration {
	if seconds <= 0 {
		return server
	}
	return min(server, time.Duration(seconds)*time.Second)
}

// allowedScope narrows scope to what the operator allows c
// (Settings.Scope; "" allows what the server does). A scope that keeps
// nothing is invalid_scope: a token without the scopes asked for would
// only fail later, at the resource.
func allowedScope(c *storage.Client, scope string) (string, *Error) {
	allowed := strings.Fields(c.Settings.Scope)
	if len(allowed) == 0 || scope == "" {
		return scope, nil
	}
	var kept []string
	for _, sc := range strings.Fields(scope) {
		if slices.Contains(allowed, sc) {
			kept = append(kept, sc)
		}
	}
	if len(kept) == 0 {
		return "", ErrInvalidScope.WithDescription("none of the scopes asked for is allowed for this client")
	}
	return strings.Join(kept, " "), nil
}

// errClientDisabled is the answer to a disabled client.
var errClientDisabled = ErrInvalidClient.WithDescription("the client is disabled")

// recordUse records that tokens were issued to c (TouchClient) when its
// recorded last use is older than touchGranularity: the reaper reads it.
// A failure is logged, not answered: the tokens were issued.
func (s *Server) recordUse(ctx context.Context, c *storage.Client) {
	now := s.now()
	if strings.HasPrefix(c.ID, "https://") || now.Unix()-c.LastUsedAt < int64(touchGranularity/time.Second) {
		return // a metadata document client is not stored
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := s.store.TouchClient(ctx, c.ID, now.Unix()); err != nil {
		s.log.Warn("recording client use failed", zap.String("client_id", c.ID), zap.Error(err))
	}
}

// disabledRegistration answers an RFC 7592 request for a disabled client.
func disabledRegistration(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token", error_description="the client is disabled"`)
	writeError(w, errClientDisabled)
}
