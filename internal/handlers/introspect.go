package handlers

import (
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/caddy-dcr/caddy-dcr/storage"
)

// introspection is the answer of RFC 7662 §2.2.
type introspection struct {
	Active    bool   `json:"active"`
	Scope     string `json:"scope,omitempty"`
	ClientID  string `json:"client_id,omitempty"`
	Subject   string `json:"sub,omitempty"`
	Audience  any    `json:"aud,omitempty"`
	Issuer    string `json:"iss,omitempty"`
	Expiry    int64  `json:"exp,omitempty"`
	IssuedAt  int64  `json:"iat,omitempty"`
	ID        string `json:"jti,omitempty"`
	TokenType string `json:"token_type,omitempty"`
	// Extra holds the grant's extra claims (the claim subdirective).
	Extra map[string]string `json:"-"`
}

type introspectionFields introspection

// MarshalJSON writes the RFC 7662 members, then the extra claims.
func (i introspection) MarshalJSON() ([]byte, error) {
	return marshalWithExtra(introspectionFields(i), i.Extra)
}

// serveIntrospect is the introspection endpoint of RFC 7662. Only
// confidential clients may call it (§2.1: the endpoint requires
// authorization), and a client learns about a token only if it is the
// token's own client or a resource server the operator named (§4: the
// answer holds the person's identity, which no other client may read).
// Any other token, whatever the reason, is just {"active": false} (§2.2).
func (s *Server) serveIntrospect(w http.ResponseWriter, r *http.Request) {
	client, ok := s.clientRequest(w, r)
	if !ok {
		return
	}
	if client.Public() {
		s.writeClientError(w, ErrInvalidClient.WithDescription("introspection needs a confidential client"), r)
		return
	}
	token := r.PostForm.Get("token")
	if token == "" {
		writeError(w, ErrInvalidRequest.WithDescription("token is required"))
		return
	}
	// The hint only orders the lookups (RFC 7662 §2.1).
	kinds := []string{"access_token", "refresh_token"}
	if r.PostForm.Get("token_type_hint") == "refresh_token" {
		kinds = []string{"refresh_token", "access_token"}
	}
	for _, kind := range kinds {
		var (
			res *introspection
			err error
		)
		if kind == "access_token" {
			res = s.introspectAccessToken(r, token)
		} else {
			res, err = s.introspectRefreshToken(r, token)
		}
		if err != nil {
			s.internalError(w, "introspecting token", client.ID, err)
			return
		}
		if res != nil && (res.ClientID == client.ID || slices.Contains(s.cfg.ResourceServers, client.ID)) {
			writeJSON(w, http.StatusOK, res)
			return
		}
		if res != nil {
			break // active, but not this caller's to know about
		}
	}
	writeJSON(w, http.StatusOK, introspection{Active: false})
}

func (s *Server) introspectAccessToken(r *http.Request, token string) *introspection {
	if strings.Count(token, ".") != 2 {
		return nil
	}
	c, err := s.checkAccessToken(r.Context(), r, token)
	if err != nil {
		return nil
	}
	var aud any = []string(c.Audience)
	if len(c.Audience) == 1 {
		aud = c.Audience[0]
	}
	return &introspection{Active: true, Scope: c.Scope, ClientID: c.ClientID, Subject: c.Subject,
		Audience: aud, Issuer: c.Issuer, Expiry: c.Expiry, IssuedAt: c.IssuedAt, ID: c.ID, TokenType: "Bearer", Extra: c.Extra}
}

func (s *Server) introspectRefreshToken(r *http.Request, token string) (*introspection, error) {
	t, err := s.store.RefreshToken(r.Context(), storage.HashSecret(token))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if t.Used || s.now().Unix() >= t.ExpiresAt {
		return nil, nil
	}
	res := &introspection{Active: true, Scope: t.Scope, ClientID: t.ClientID, Subject: t.Subject,
		Issuer: s.issuer(r), Expiry: t.ExpiresAt, IssuedAt: t.IssuedAt, TokenType: "refresh_token", Extra: t.Claims}
	if t.Audience != "" {
		res.Audience = t.Audience
	}
	return res, nil
}
