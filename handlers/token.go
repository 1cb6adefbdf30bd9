package handlers

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
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
	if ce := s.log.Check(zapcore.DebugLevel, "tokens issued"); ce != nil {
		ce.Write(zap.String("client_id", client.ID), zap.String("grant_type", grant), zap.String("scope", resp.Scope))
	}
	// RFC 6749 §5.1: scope is sent when it differs from the request.
	if resp.Scope == strings.Join(strings.Fields(r.PostForm.Get("scope")), " ") {
		resp.Scope = ""
	}
	writeJSON(w, http.StatusOK, resp)
}

// grantClientCredentials is RFC 6749 §4.4: the client acts for itself, so
// it is the subject, and gets no refresh token (§4.4.3).
func (s *Server) grantClientCredentials(r *http.Request, c *storage.Client, aud string) (*tokenResponse, error) {
	scope, oerr := s.grantScope(r.PostForm.Get("scope"), c.Metadata.Scope)
	if oerr != nil {
		return nil, oerr
	}
	return s.issueTokens(r, c, c.ID, scope, aud, "", nil, nil)
}

// grantRefreshToken is RFC 6749 §6 with OAuth 2.1 rotation: each use
// returns a new refresh token and retires the old one; presenting a
// retired one revokes its whole family. The scope may narrow, never widen.
func (s *Server) grantRefreshToken(r *http.Request, c *storage.Client, aud string) (*tokenResponse, error) {
	presented := r.PostForm.Get("refresh_token")
	if presented == "" {
		return nil, ErrInvalidRequest.WithDescription("refresh_token is required")
	}
	hash := storage.HashSecret(presented)
	now := s.now()
	next := newSecret()
	var resp *tokenResponse
	reused, err := s.store.RotateRefreshToken(r.Context(), hash, func(old *storage.RefreshToken) ([]byte, *storage.RefreshToken, error) {
		// An unknown, expired, replayed or foreign refresh token is
		// invalid_grant, never invalid_client: clients answer
		// invalid_client by registering again.
		if old.ClientID != c.ID || now.Unix() >= old.ExpiresAt {
			return nil, nil, ErrInvalidGrant.WithDescription("the refresh token is invalid or expired")
		}
		scope := old.Scope
		if req := strings.Fields(r.PostForm.Get("scope")); len(req) > 0 {
			granted := strings.Fields(old.Scope)
			for _, sc := range req {
				if !slices.Contains(granted, sc) {
					return nil, nil, ErrInvalidScope.WithDescription(fmt.Sprintf("scope %q was not granted to this refresh token", sc))
				}
			}
			scope = strings.Join(dedupe(req), " ")
		}
		tokenAud := old.Audience
		if r.PostForm.Has("resource") && aud != old.Audience {
			return nil, nil, ErrInvalidTarget.WithDescription("the resource differs from the one the grant was made for")
		}
		t := &storage.RefreshToken{
			ClientID: c.ID, Subject: old.Subject, Scope: old.Scope, Audience: old.Audience,
			IssuedAt: now.Unix(), ExpiresAt: now.Add(s.cfg.RefreshTokenTTL).Unix(),
			Family: old.Family, Claims: old.Claims,
		}
		var err error
		resp, err = s.issueTokens(r, c, old.Subject, scope, tokenAud, old.Family, old.Claims, nil)
		if err != nil {
			return nil, nil, err
		}
		resp.RefreshToken = next
		return storage.HashSecret(next), t, nil
	})
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return nil, ErrInvalidGrant.WithDescription("the refresh token is invalid or expired")
	case errors.Is(err, storage.ErrTokenReused):
		// OAuth 2.1 §4.3.1: a rotated refresh token came back, so one of
		// its holders is not the client: revoke the whole family.
		if rerr := s.store.RevokeFamily(r.Context(), reused.Family, now.Add(s.cfg.AccessTokenTTL).Unix()); rerr != nil {
			return nil, rerr
		}
		s.log.Warn("refresh token replayed; its grant is revoked", zap.String("client_id", c.ID))
		return nil, ErrInvalidGrant.WithDescription("the refresh token was already used")
	case err != nil:
		return nil, err
	}
	return resp, nil
}

// grantAuthorizationCode is RFC 6749 §4.1.3 with PKCE (RFC 7636 §4.6).
// The client was authenticated before the code is consumed, so a client
// library that retries with another authentication style finds the code
// still unused. A bad, expired or replayed code is invalid_grant; a
// replayed one also revokes what the code issued (RFC 6749 §4.1.2).
func (s *Server) grantAuthorizationCode(r *http.Request, c *storage.Client, aud string) (*tokenResponse, error) {
	code, verifier := r.PostForm.Get("code"), r.PostForm.Get("code_verifier")
	if code == "" {
		return nil, ErrInvalidRequest.WithDescription("code is required")
	}
	now := s.now()
	ac, err := s.store.ConsumeAuthCode(r.Context(), storage.HashSecret(code))
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return nil, ErrInvalidGrant.WithDescription("the code is invalid or expired")
	case errors.Is(err, storage.ErrTokenReused):
		if ac.ClientID == c.ID {
			if rerr := s.store.RevokeFamily(r.Context(), ac.Family, now.Add(s.cfg.AccessTokenTTL).Unix()); rerr != nil {
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
	case r.PostForm.Get("redirect_uri") != ac.RedirectURI:
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
			IssuedAt: now.Unix(), ExpiresAt: now.Add(s.cfg.RefreshTokenTTL).Unix(), Family: ac.Family, Claims: ac.Claims,
		}
	}
	return s.issueTokens(r, c, ac.Subject, ac.Scope, ac.Audience, ac.Family, ac.Claims, refresh)
}

// pkceMatches checks a code_verifier (RFC 7636 §4.1: 43 to 128 unreserved
// characters) against an S256 challenge, in constant time.
func pkceMatches(verifier, challenge string) bool {
	if len(verifier) < 43 || len(verifier) > 128 {
		return false
	}
	for i := 0; i < len(verifier); i++ {
		c := verifier[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~') {
			return false
		}
	}
	sum := sha256.Sum256([]byte(verifier))
	return subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(challenge)) == 1
}

// issueTokens signs an access token and, when refresh is not nil, stores
// the refresh token described by it under a new value.
func (s *Server) issueTokens(r *http.Request, c *storage.Client, subject, scope, aud, family string,
	extra map[string]string, refresh *storage.RefreshToken) (*tokenResponse, error) {
	now := s.now()
	claims := &accessClaims{
		Issuer: s.issuer(r), Subject: subject, Audience: audience{aud},
		IssuedAt: now.Unix(), Expiry: now.Add(s.cfg.AccessTokenTTL).Unix(),
		ID: randomString(16), ClientID: c.ID, Scope: scope, Family: family, Extra: extra,
	}
	at, err := s.keys.sign(r.Context(), claims)
	if err != nil {
		return nil, fmt.Errorf("signing access token: %w", err)
	}
	resp := &tokenResponse{AccessToken: at, TokenType: "Bearer", ExpiresIn: int64(s.cfg.AccessTokenTTL / time.Second), Scope: scope}
	if refresh != nil {
		value := newSecret()
		if err := s.store.CreateRefreshToken(r.Context(), storage.HashSecret(value), refresh); err != nil {
			return nil, fmt.Errorf("storing refresh token: %w", err)
		}
		resp.RefreshToken = value
	}
	return resp, nil
}

// grantScope decides the scope of a token (RFC 6749 §3.3): no scope asks
// for all the client registered; a requested scope must be within it. A
// client that registered no scope (on a server that restricts none) may
// ask for any well-formed scope.
func (s *Server) grantScope(requested, registered string) (string, *Error) {
	req := dedupe(strings.Fields(requested))
	if len(req) == 0 {
		return registered, nil
	}
	allowed := strings.Fields(registered)
	if len(allowed) == 0 && s.cfg.ScopesSupported != nil {
		allowed = s.cfg.ScopesSupported
	}
	for _, sc := range req {
		if !isScopeToken(sc) {
			return "", ErrInvalidScope.WithDescription(fmt.Sprintf("scope %q is malformed", sc))
		}
		if len(allowed) > 0 && !slices.Contains(allowed, sc) {
			return "", ErrInvalidScope.WithDescription(fmt.Sprintf("scope %q is not registered for this client", sc))
		}
	}
	return strings.Join(req, " "), nil
}

// requestedResource reads the resource parameter (RFC 8707 §2) and returns
// the audience of the token: the resource asked for, or this server's
// resource identifier. A resource must be an absolute URI without a
// fragment, at or below this server's resource identifier or origin.
func (s *Server) requestedResource(r *http.Request) (string, *Error) {
	return s.resourceFrom(r, r.PostForm["resource"])
}

// resourceFrom checks the resource parameter's values.
func (s *Server) resourceFrom(r *http.Request, values []string) (string, *Error) {
	switch len(values) {
	case 0:
		return s.resource(r), nil
	case 1:
	default:
		return "", ErrInvalidTarget.WithDescription("ask for one resource per token")
	}
	res := values[0]
	if err := checkResource(res); err != nil {
		return "", ErrInvalidTarget.WithDescription(err.Error())
	}
	if !atOrBelow(res, s.resource(r)) && !atOrBelow(res, s.baseURL(r)) {
		return "", ErrInvalidTarget.WithDescription(fmt.Sprintf("%s is not a resource of this server", res))
	}
	return res, nil
}

// resource is the resource identifier of this handler's gate.
func (s *Server) resource(r *http.Request) string {
	if s.cfg.Resource != "" {
		return s.cfg.Resource
	}
	return s.baseURL(r)
}

// checkResource requires an absolute http(s) URI with no fragment (RFC
// 8707 §2).
func checkResource(res string) error {
	u, err := url.Parse(res)
	if err != nil || !u.IsAbs() || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return fmt.Errorf("resource %q is not an absolute http(s) URI", res)
	}
	if strings.Contains(res, "#") {
		return fmt.Errorf("resource %q has a fragment", res)
	}
	return nil
}

// atOrBelow reports whether uri is base or a URL under it, on a path
// segment boundary (https://a.example/mcp is below https://a.example, but
// https://a.example/mcpx is not below https://a.example/mcp).
func atOrBelow(uri, base string) bool {
	base = strings.TrimSuffix(base, "/")
	if uri == base || uri == base+"/" {
		return true
	}
	if !strings.HasPrefix(uri, base) {
		return false
	}
	switch uri[len(base)] {
	case '/', '?':
		return true
	}
	return false
}
