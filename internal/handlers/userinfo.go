package handlers

import (
	"errors"
	"net/http"
)

// serveUserinfo is the userinfo endpoint (OpenID Connect Core 1.0 §5.3):
// a person's access token with the openid scope, in the Authorization
// header (RFC 6750 §2.1), gets sub and the grant's claims that the token's
// scopes release (§5.4). The token may be meant for any resource: the
// userinfo endpoint belongs to this server, not to a resource, and the
// openid scope is what entitles a client to it.
func (s *Server) serveUserinfo(w http.ResponseWriter, r *http.Request) {
	if !allowMethods(w, r, http.MethodGet, http.MethodPost) {
		return
	}
	token, ok := bearerTokenUnchecked(r)
	if !ok {
		// RFC 6750 §3.1: no token, a challenge with no error code.
		w.Header().Set("WWW-Authenticate", `Bearer`)
		writeJSON(w, http.StatusUnauthorized, ErrInvalidToken.WithDescription("a bearer access token is required"))
		return
	}
	c, err := s.checkAccessToken(r.Context(), r, token)
	switch {
	case err != nil && !isTokenRefusal(err):
		s.internalError(w, "checking a userinfo token", "", err)
		return
	case err != nil:
		challenge(w, err.Error())
		return
	case c.Grant == "" || !hasScope(c.Scope, scopeOpenID):
		// A client's own token (client_credentials) names no person.
		w.Header().Set("WWW-Authenticate", `Bearer error="insufficient_scope", scope="openid"`)
		writeJSON(w, http.StatusForbidden, ErrInsufficientScope.WithDescription("the access token is not a person's with the openid scope"))
		return
	}
	claims := scopedClaims(c.Scope, c.Extra)
	claims["sub"] = c.Subject
	writeJSON(w, http.StatusOK, claims)
}

// isTokenRefusal reports whether err, from checkAccessToken, refuses the
// token, as opposed to a failure to check it.
func isTokenRefusal(err error) bool {
	for _, e := range []error{errBadToken, errTokenExpired, errTokenEarly, errTokenRevoked, errWrongIssuer} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
