package handlers

import (
	"errors"
	"net/http"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-dcr/caddy-dcr/storage"
)

// serveRevoke is the revocation endpoint of RFC 7009. A client revokes its
// own tokens; revoking a refresh token revokes its whole family, with the
// access tokens issued from it (§2.1). An unknown or already invalid token
// still gets 200 (§2.2). A storage failure is a 503 (§2.2.1), never a
// silent success.
func (s *Server) serveRevoke(w http.ResponseWriter, r *http.Request) {
	client, ok := s.clientRequest(w, r)
	if !ok {
		return
	}
	token := r.PostForm.Get("token")
	if token == "" {
		writeError(w, ErrInvalidRequest.WithDescription("token is required"))
		return
	}
	ctx := r.Context()
	fail := func(err error) {
		// RFC 7009 §2.2.1: any failure here is a 503, never a 200 that
		// would pass for a revocation.
		s.log.Error("revoking token failed", zap.String("client_id", client.ID), zap.Error(err))
		w.Header().Set("Retry-After", retryAfterSeconds)
		writeJSON(w, http.StatusServiceUnavailable, ErrServerError.WithStatus(http.StatusServiceUnavailable))
	}
	notYours := ErrUnauthorizedClient.WithDescription("the token was not issued to this client")

	t, err := s.store.RefreshToken(ctx, storage.HashSecret(token))
	switch {
	case err == nil:
		if t.ClientID != client.ID {
			writeError(w, notYours)
			return
		}
		if err := s.store.RevokeFamily(ctx, t.Family, s.familyRevokedUntil()); err != nil {
			fail(err)
			return
		}
		s.logRevoked(r, client.ID, "refresh_token")
	case !errors.Is(err, storage.ErrNotFound):
		fail(err)
		return
	case strings.Count(token, ".") == 2:
		c, err := s.checkAccessToken(ctx, r, token)
		if err != nil {
			break // not ours, expired or already revoked: nothing to do
		}
		if c.ClientID != client.ID {
			writeError(w, notYours)
			return
		}
		if err := s.store.RevokeAccessToken(ctx, c.ID, c.Expiry); err != nil {
			fail(err)
			return
		}
		s.logRevoked(r, client.ID, "access_token")
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

func (s *Server) logRevoked(r *http.Request, clientID, kind string) {
	s.audit(r, auditTokenRevoke, clientID, actorClient, "", []zap.Field{zap.String("token_type", kind)})
	if ce := s.log.Check(zapcore.DebugLevel, "token revoked"); ce != nil {
		ce.Write(zap.String("client_id", clientID), zap.String("token_type", kind))
	}
}
