package handlers

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-dcr/caddy-dcr/storage"
)

// tokenGrantTypes are the grants the token endpoint serves.
var tokenGrantTypes = []string{grantAuthorizationCode, grantClientCredentials, grantRefreshToken}

// tokenResponse is the successful answer of RFC 6749 §5.1.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	Scope        string `json:"scope,omitempty"`
	RefreshToken string `json:"refresh_token,omitempty"`
	// IDToken is the OpenID Connect ID token, for a person's grant with
	// the openid scope (OpenID Connect Core 1.0 §3.1.3.3).
	IDToken string `json:"id_token,omitempty"`
}

// serveToken is the token endpoint of RFC 6749 §3.2.
func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	client, ok := s.clientRequest(w, r, "resource")
	if !ok {
		return
	}
	grant := r.PostForm.Get("grant_type")
	switch {
	case grant == "":
		writeError(w, ErrInvalidRequest.WithDescription("grant_type is required"))
		return
	case !slices.Contains(tokenGrantTypes, grant):
		writeError(w, ErrUnsupportedGrantType.WithDescription(fmt.Sprintf("grant type %q is not supported", grant)))
		return
	case !slices.Contains(client.Metadata.GrantTypes, grant):
		writeError(w, ErrUnauthorizedClient.WithDescription(fmt.Sprintf("the client did not register the %s grant", grant)))
		return
	}
	aud, oerr := s.requestedResource(r)
	if oerr != nil {
		writeError(w, oerr)
		return
	}
	var (
		resp *tokenResponse
		err  error
	)
	switch grant {
	case grantAuthorizationCode:
		resp, err = s.grantAuthorizationCode(r, client, aud)
	case grantClientCredentials:
		resp, err = s.grantClientCredentials(r, client, aud)
	case grantRefreshToken:
		resp, err = s.grantRefreshToken(r, client, aud)
	}
	var oe *Error
	switch {
	case errors.As(err, &oe):
		writeError(w, oe)
		return
	case err != nil:
		s.internalError(w, "issuing tokens", client.ID, err)
		return
	}
	s.recordUse(r.Context(), client)
	if ce := s.log.Check(zapcore.DebugLevel, "tokens issued"); ce != nil {
		ce.Write(zap.String("client_id", client.ID), zap.String("grant_type", grant), zap.String("scope", resp.Scope))
	}
	// RFC 6749 §5.1: scope is sent when it differs from the request.
	if resp.Scope == strings.Join(strings.Fields(r.PostForm.Get("scope")), " ") {
		resp.Scope = ""
	}
	writeJSONBytes(w, http.StatusOK, resp.appendJSON(make([]byte, 0, 640)))
}

// appendJSON appends the response as JSON, as json.Marshal writes it
// (TestTokenResponseAsMarshal): every token request ends here, and
// reflection was a tenth of the endpoint's own time.
func (t *tokenResponse) appendJSON(b []byte) []byte {
	b = append(b, `{"access_token":`...)
	b = appendJSONString(b, t.AccessToken)
	b = append(b, `,"token_type":`...)
	b = appendJSONString(b, t.TokenType)
	b = append(b, `,"expires_in":`...)
	b = strconv.AppendInt(b, t.ExpiresIn, 10)
	if t.Scope != "" {
		b = append(b, `,"scope":`...)
		b = appendJSONString(b, t.Scope)
	}
	if t.RefreshToken != "" {
		b = append(b, `,"refresh_token":`...)
		b = appendJSONString(b, t.RefreshToken)
	}
	if t.IDToken != "" {
		b = append(b, `,"id_token":`...)
		b = appendJSONString(b, t.IDToken)
	}
	return append(b, '}')
}

// maxRefreshReuses bounds how often one rotated refresh token may be
// presented again within the reuse window: enough for a client's parallel
// refreshes, not a way to mint an unbounded number of sibling tokens.
const maxRefreshReuses = 16

// grantClientCredentials is RFC 6749 §4.4: the client acts for itself, so
// it is the subject, and gets no refresh token (§4.4.3).
func (s *Server) grantClientCredentials(r *http.Request, c *storage.Client, aud string) (*tokenResponse, error) {
	scope, oerr := s.grantScope(r.PostForm.Get("scope"), c.Metadata.Scope)
	if oerr != nil {
		return nil, oerr
	}
	return s.issueTokens(r, c, issued{subject: c.ID, scope: scope, audience: aud}, nil)
}

// reuseWindow is refresh_reuse_window in whole seconds, as the store
// compares it with the unix times it records.
func (s *Server) reuseWindow() int64 { return int64(s.cfg.RefreshReuseWindow / time.Second) }

// withinReuseWindow reports whether a code first used at the unix time
// usedAt may be presented again at now without counting as a replay: a
// client racing itself presents it twice in a short while.
func (s *Server) withinReuseWindow(usedAt int64, now time.Time) bool {
	return storage.WithinReuseWindow(usedAt, now.Unix(), s.reuseWindow())
}

// grantRefreshToken is RFC 6749 §6 with OAuth 2.1 rotation: each use
// returns a new refresh token and retires the old one. The same client
// presenting a retired one again within the reuse window gets a sibling
// in the same family; after the window it is a replay, which revokes the
// whole family (OAuth 2.1 §4.3.1). The scope may narrow, never widen.
func (s *Server) grantRefreshToken(r *http.Request, c *storage.Client, aud string) (*tokenResponse, error) {
	presented := r.PostForm.Get("refresh_token")
	if presented == "" {
		return nil, ErrInvalidRequest.WithDescription("refresh_token is required")
	}
	ctx := r.Context()
	hash := storage.HashSecret(presented)
	now := s.now()
	// An unknown, expired or foreign refresh token is invalid_grant,
	// never invalid_client (clients answer invalid_client by registering
	// again), and another client's token revokes nothing: anyone who
	// found an old token in a log could otherwise end the person's
	// session.
	invalid := ErrInvalidGrant.WithDescription("the refresh token is invalid or expired")
	old, err := s.store.RefreshToken(ctx, hash)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return nil, invalid
	case err != nil:
		return nil, err
	case old.ClientID != c.ID || now.Unix() >= old.ExpiresAt:
		return nil, invalid
	}
	scope, oerr := s.refreshScope(r.PostForm.Get("scope"), old.Scope)
	if oerr != nil {
		return nil, oerr
	}
	// The operator's narrowing is checked before the token is rotated: a
	// refusal must leave the refresh token as it was.
	if scope, oerr = allowedScope(c, scope); oerr != nil {
		return nil, oerr
	}
	if r.PostForm.Has("resource") && aud != old.Audience {
		return nil, ErrInvalidTarget.WithDescription("the resource differs from the one the grant was made for")
	}
	next := newSecret()
	successor := &storage.RefreshToken{
		ClientID: c.ID, Subject: old.Subject, Scope: old.Scope, Audience: old.Audience,
		IssuedAt: now.Unix(), ExpiresAt: now.Add(s.refreshTTL(c)).Unix(),
		Family: old.Family, Grant: old.Grant, Claims: old.Claims, AuthTime: old.AuthTime,
	}
	_, err = s.store.RotateRefreshToken(ctx, hash, storage.Rotation{
		ClientID: c.ID, At: now.Unix(), ReuseWindow: s.reuseWindow(), MaxReuses: maxRefreshReuses,
		NextHash: storage.HashSecret(next), Next: successor,
	})
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return nil, invalid
	case errors.Is(err, storage.ErrTooManyReuses):
		// Within the window: the client racing itself, not a replay.
		return nil, ErrInvalidGrant.WithDescription("the refresh token was presented again too often; use the newest one")
	case errors.Is(err, storage.ErrTokenReused):
		// OAuth 2.1 §4.3.1: a rotated refresh token came back after the
		// reuse window, so one of its holders is not the client:
		// revoke the whole family.
		rctx, cancel := revocationContext(ctx)
		defer cancel()
		if rerr := s.store.RevokeFamily(rctx, old.Family, s.familyRevokedUntil()); rerr != nil {
			return nil, rerr
		}
		s.log.Warn("refresh token replayed; its token family is revoked", zap.String("client_id", c.ID))
		return nil, ErrInvalidGrant.WithDescription("the refresh token was already used")
	case err != nil:
		return nil, err
	}
	// OpenID Connect Core 1.0 §12.2: the ID token of a refresh keeps the
	// original auth_time and carries no nonce.
	resp, err := s.issueTokens(r, c, issued{subject: old.Subject, scope: scope, audience: old.Audience,
		family: old.Family, grant: old.Grant, claims: old.Claims, person: true, authTime: old.AuthTime}, nil)
	if err != nil {
		return nil, err
	}
	resp.RefreshToken = next
	return resp, nil
}

// grantAuthorizationCode is RFC 6749 §4.1.3 with PKCE (RFC 7636 §4.6).
// The client was authenticated before the code is consumed, so a client
// library that retries with another authentication style finds the code
// still unused. A bad, expired or replayed code is invalid_grant; a code
// its own client presents again after the reuse window also revokes what
// the code issued (RFC 6749 §4.1.2). Within the window it is a second
// exchange racing the first, which keeps what it got.
func (s *Server) grantAuthorizationCode(r *http.Request, c *storage.Client, aud string) (*tokenResponse, error) {
	code, verifier := r.PostForm.Get("code"), r.PostForm.Get("code_verifier")
	switch {
	case code == "":
		return nil, ErrInvalidRequest.WithDescription("code is required")
	case verifier == "":
		return nil, ErrInvalidRequest.WithDescription("code_verifier is required (PKCE)")
	case !wellFormedVerifier(verifier):
		// Refused before the code is consumed: a malformed request
		// leaves the code for the client's corrected retry.
		return nil, ErrInvalidRequest.WithDescription("code_verifier must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~ (RFC 7636 §4.1)")
	}
	now := s.now()
	ac, err := s.store.ConsumeAuthCode(r.Context(), storage.HashSecret(code), now.Unix())
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return nil, ErrInvalidGrant.WithDescription("the code is invalid or expired")
	case errors.Is(err, storage.ErrTokenReused):
		if ac.ClientID == c.ID && !s.withinReuseWindow(ac.UsedAt, now) {
			rctx, cancel := revocationContext(r.Context())
			defer cancel()
			if rerr := s.store.RevokeFamily(rctx, ac.Family, s.familyRevokedUntil()); rerr != nil {
				return nil, rerr
			}
			s.log.Warn("authorization code replayed; its tokens are revoked", zap.String("client_id", c.ID))
		}
		return nil, ErrInvalidGrant.WithDescription("the code was already used")
	case err != nil:
		return nil, err
	}
	switch {
	case ac.ClientID != c.ID || now.Unix() >= ac.ExpiresAt:
		return nil, ErrInvalidGrant.WithDescription("the code is invalid or expired")
	case redirectMismatch(r.PostForm.Get("redirect_uri"), ac):
		return nil, ErrInvalidGrant.WithDescription("redirect_uri differs from the authorization request's")
	case !pkceMatches(verifier, ac.Challenge):
		return nil, ErrInvalidGrant.WithDescription("code_verifier does not match the code_challenge")
	case r.PostForm.Has("resource") && aud != ac.Audience:
		return nil, ErrInvalidTarget.WithDescription("the resource differs from the authorization request's")
	}
	var refresh *storage.RefreshToken
	if slices.Contains(c.Metadata.GrantTypes, grantRefreshToken) {
		refresh = &storage.RefreshToken{
			ClientID: c.ID, Subject: ac.Subject, Scope: ac.Scope, Audience: ac.Audience,
			IssuedAt: now.Unix(), ExpiresAt: now.Add(s.refreshTTL(c)).Unix(),
			Family: ac.Family, Grant: ac.Grant, Claims: ac.Claims, AuthTime: ac.AuthTime,
		}
	}
	return s.issueTokens(r, c, issued{subject: ac.Subject, scope: ac.Scope, audience: ac.Audience,
		family: ac.Family, grant: ac.Grant, claims: ac.Claims, person: true, nonce: ac.Nonce, authTime: ac.AuthTime}, refresh)
}

// redirectMismatch reports whether the token request's redirect_uri
// (RFC 6749 §4.1.3) fails the code: it must be sent, and equal, when the
// authorization request sent it; otherwise it may be left out, but one
// that is sent must still be the URI the code was issued for. An empty
// value counts as left out (RFC 6749 §3.2).
func redirectMismatch(sent string, ac *storage.AuthCode) bool {
	return (sent != "" || !ac.RedirectURIOmitted) && sent != ac.RedirectURI
}

// wellFormedVerifier reports whether a code_verifier has the form of RFC
// 7636 §4.1: 43 to 128 unreserved characters.
func wellFormedVerifier(verifier string) bool {
	if len(verifier) < 43 || len(verifier) > 128 {
		return false
	}
	for i := 0; i < len(verifier); i++ {
		c := verifier[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~') {
			return false
		}
	}
	return true
}

// pkceMatches checks a code_verifier (RFC 7636 §4.1: 43 to 128 unreserved
// characters) against an S256 challenge, in constant time.
func pkceMatches(verifier, challenge string) bool {
	if !wellFormedVerifier(verifier) {
		return false
	}
	sum := sha256.Sum256([]byte(verifier))
	return subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(challenge)) == 1
}

// issued describes the access token to issue: for whom, with what scope,
// for which resource, and what it hangs on (its refresh token family and
// the person's grant, "" for none), with the grant's extra claims.
type issued struct {
	subject, scope, audience, family, grant string
	claims                                  map[string]string
	// person marks a person's grant (a code or its refresh tokens), which
	// gets an ID token with the openid scope; nonce and authTime go into
	// it.
	person   bool
	nonce    string
	authTime int64
}

// issueTokens signs an access token and, when refresh is not nil, stores
// the refresh token described by it under a new value.
func (s *Server) issueTokens(r *http.Request, c *storage.Client, t issued, refresh *storage.RefreshToken) (*tokenResponse, error) {
	scope, oerr := allowedScope(c, t.scope)
	if oerr != nil {
		return nil, oerr
	}
	t.scope = scope
	now := s.now()
	ttl := s.accessTTL(c)
	claims := &accessClaims{
		Issuer: s.issuer(r), Subject: t.subject, Audience: audience{t.audience},
		IssuedAt: now.Unix(), Expiry: now.Add(ttl).Unix(),
		ID: randomString(16), ClientID: c.ID, Scope: t.scope, Family: t.family, Grant: t.grant, Extra: t.claims,
	}
	at, err := s.keys.sign(r.Context(), claims)
	if err != nil {
		return nil, fmt.Errorf("signing access token: %w", err)
	}
	resp := &tokenResponse{AccessToken: at, TokenType: "Bearer", ExpiresIn: int64(ttl / time.Second), Scope: t.scope}
	if t.person && hasScope(t.scope, scopeOpenID) {
		resp.IDToken, err = s.idToken(r.Context(), idTokenRequest{issuer: claims.Issuer, subject: t.subject, clientID: c.ID,
			scope: t.scope, nonce: t.nonce, authTime: t.authTime, accessToken: at, claims: t.claims, ttl: ttl,
			alg: idTokenAlg(&c.Metadata)})
		if err != nil {
			return nil, err
		}
	}
	if refresh != nil {
		value := newSecret()
		err := s.store.CreateRefreshToken(r.Context(), storage.HashSecret(value), refresh)
		if errors.Is(err, storage.ErrRevoked) {
			// The grant or family was revoked while the code was
			// exchanged: the access token just signed dies with it.
			return nil, ErrInvalidGrant.WithDescription("the grant was revoked")
		}
		if err != nil {
			return nil, fmt.Errorf("storing refresh token: %w", err)
		}
		resp.RefreshToken = value
	}
	return resp, nil
}

// grantScope decides the scope of a new grant (RFC 6749 §3.3): the
// intersection of what was asked (no scope asks for all the client
// registered), what the client registered (a client that registered none
// may ask for any well-formed scope) and what this handler supports now.
// The client may have registered at another handler on the same store, or
// before the operator narrowed scopes_supported, so registration alone
// decides nothing.
func (s *Server) grantScope(requested, registered string) (string, *Error) {
	limit := strings.Fields(registered)
	if len(limit) == 0 {
		limit = nil // registered none: any
	}
	return s.scopeWithin(requested, limit, "registered for this client")
}

// refreshScope decides the scope of a refreshed access token: what was
// asked (no scope asks for all of the grant) within what the grant
// covered, and what this handler supports now.
func (s *Server) refreshScope(requested, granted string) (string, *Error) {
	// Never nil: an empty grant allows nothing more.
	return s.scopeWithin(requested, strings.Fields(granted), "granted to this refresh token")
}

// scopeWithin is grantScope and refreshScope: limit nil allows any
// well-formed scope; what is outside it is refused with "scope %q is not
// <outside>".
func (s *Server) scopeWithin(requested string, limit []string, outside string) (string, *Error) {
	supported := s.cfg.ScopesSupported
	req := dedupe(strings.Fields(requested))
	if len(req) == 0 {
		var scope []string
		for _, sc := range limit {
			if supported == nil || slices.Contains(supported, sc) {
				scope = append(scope, sc)
			}
		}
		if len(limit) > 0 && len(scope) == 0 {
			return "", ErrInvalidScope.WithDescription("none of the scopes this client may have is supported here")
		}
		return strings.Join(scope, " "), nil
	}
	for _, sc := range req {
		switch {
		case !isScopeToken(sc):
			return "", ErrInvalidScope.WithDescription(fmt.Sprintf("scope %q is malformed", sc))
		case limit != nil && !slices.Contains(limit, sc):
			return "", ErrInvalidScope.WithDescription(fmt.Sprintf("scope %q is not %s", sc, outside))
		case supported != nil && !slices.Contains(supported, sc):
			return "", ErrInvalidScope.WithDescription(fmt.Sprintf("scope %q is not supported here", sc))
		}
	}
	return strings.Join(req, " "), nil
}
