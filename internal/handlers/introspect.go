package handlers

import (
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"slices"
	"strconv"
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

// appendJSON appends the answer as MarshalJSON writes it
// (TestIntrospectionAsMarshal), without reflection: resource servers
// introspect on every request they serve.
func (i *introspection) appendJSON(b []byte) []byte {
	str := func(b []byte, name, v string) []byte {
		if v == "" {
			return b
		}
		b = append(b, ',', '"')
		b = append(b, name...)
		b = append(b, '"', ':')
		return appendJSONString(b, v)
	}
	num := func(b []byte, name string, v int64) []byte {
		if v == 0 {
			return b
		}
		b = append(b, ',', '"')
		b = append(b, name...)
		b = append(b, '"', ':')
		return strconv.AppendInt(b, v, 10)
	}
	b = append(b, `{"active":`...)
	b = strconv.AppendBool(b, i.Active)
	b = str(b, "scope", i.Scope)
	b = str(b, "client_id", i.ClientID)
	b = str(b, "sub", i.Subject)
	// omitempty leaves out only a nil interface.
	switch aud := i.Audience.(type) {
	case nil:
	case string:
		b = append(b, `,"aud":`...)
		b = appendJSONString(b, aud)
	default:
		if v, err := json.Marshal(aud); err == nil {
			b = append(b, `,"aud":`...)
			b = append(b, v...)
		}
	}
	b = str(b, "iss", i.Issuer)
	b = num(b, "exp", i.Expiry)
	b = num(b, "iat", i.IssuedAt)
	b = str(b, "jti", i.ID)
	b = str(b, "token_type", i.TokenType)
	for _, k := range slices.Sorted(maps.Keys(i.Extra)) {
		b = append(b, ',')
		b = appendJSONString(b, k)
		b = append(b, ':')
		b = appendJSONString(b, i.Extra[k])
	}
	return append(b, '}')
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
			writeJSONBytes(w, http.StatusOK, res.appendJSON(make([]byte, 0, 512)))
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
	// The store leaves out what a revocation covers; the view adds the
	// disabled clients, whose refresh tokens cannot be used either.
	if refused, err := s.store.Revoked(r.Context(), "", t.ClientID, t.Family, t.Grant); err != nil || refused {
		return nil, err
	}
	res := &introspection{Active: true, Scope: t.Scope, ClientID: t.ClientID, Subject: t.Subject,
		Issuer: s.issuer(r), Expiry: t.ExpiresAt, IssuedAt: t.IssuedAt, TokenType: "refresh_token", Extra: t.Claims}
	if t.Audience != "" {
		res.Audience = t.Audience
	}
	return res, nil
}
