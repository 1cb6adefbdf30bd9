package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddy-dcr/caddy-dcr/storage"
)

// The operator's side of the server: what Caddy's admin API (the
// admin.api.dcr module) does to clients and grants. Every write goes
// through the code the OAuth endpoints use (metadata validation, deletion
// with its revocations, rotation, grant revocation), through the server's
// store and so its cache, and is audited with the operator as the actor.

// ClientView is a client as the admin API shows it. The secret and the
// registration access token are there only in the answer that issued
// them: the store keeps their hashes only.
type ClientView struct {
	ClientID                string `json:"client_id"`
	ClientIDIssuedAt        int64  `json:"client_id_issued_at"`
	ClientSecret            string `json:"client_secret,omitempty"`
	ClientSecretExpiresAt   *int64 `json:"client_secret_expires_at,omitempty"`
	RegistrationAccessToken string `json:"registration_access_token,omitempty"`
	Public                  bool   `json:"public"`
	// Origin is how the client came to be: dynamic (open RFC 7591
	// registration), initial_access_token or operator.
	Origin string `json:"origin"`
	// LastUsedAt is the unix time of the last token issued to it; 0:
	// never.
	LastUsedAt int64                  `json:"last_used_at"`
	Settings   storage.ClientSettings `json:"settings"`
	// Reapable tells whether reaping may remove the client when unused.
	Reapable bool             `json:"reapable"`
	Metadata storage.Metadata `json:"metadata"`
}

// NewClientView shows c, without any secret.
func NewClientView(c *storage.Client) *ClientView {
	v := &ClientView{ClientID: c.ID, ClientIDIssuedAt: c.IssuedAt, Public: c.Public(), Origin: c.Origin,
		LastUsedAt: c.LastUsedAt, Settings: c.Settings, Reapable: c.Reapable(), Metadata: c.Metadata}
	if v.Origin == storage.OriginDynamic {
		v.Origin = "dynamic"
	}
	if !c.Public() {
		exp := c.SecretExpiresAt
		v.ClientSecretExpiresAt = &exp
	}
	return v
}

// Store returns the server's store, for the admin API's reads.
func (s *Server) Store() storage.Store { return s.store }

// ClientFilter selects clients in a listing; its zero value selects all.
type ClientFilter struct {
	// Query matches a client whose id or client_name contains it,
	// ignoring case.
	Query string
	// Origin, when set, matches the clients of that origin ("dynamic"
	// for open registration).
	Origin string
}

func (f ClientFilter) match(c *storage.Client) bool {
	if f.Origin != "" && f.Origin != c.Origin && !(f.Origin == "dynamic" && c.Origin == storage.OriginDynamic) {
		return false
	}
	if f.Query == "" {
		return true
	}
	q := strings.ToLower(f.Query)
	return strings.Contains(strings.ToLower(c.ID), q) || strings.Contains(strings.ToLower(c.Metadata.ClientName), q)
}

// maxScanned bounds the clients one listing reads to find its matches, so
// that a filter matching nothing in a large store answers in bounded time
// (with a cursor to go on from).
const maxScanned = 10000

// ListClients returns up to limit clients that f selects, in id order,
// after the id cursor ("" for the start), and the cursor of the next page
// ("" when there is none). A page may hold fewer than limit clients and
// still have a next one: it stops after reading maxScanned clients.
func (s *Server) ListClients(ctx context.Context, cursor string, limit int, f ClientFilter) ([]*storage.Client, string, error) {
	out := []*storage.Client{}
	scanned := 0
	for {
		batch := limit
		if f.Query != "" || f.Origin != "" {
			batch = max(limit, 500)
		}
		page, next, err := s.store.Clients(ctx, cursor, batch)
		if err != nil {
			return nil, "", err
		}
		for _, c := range page {
			scanned++
			cursor = c.ID
			if f.match(c) {
				out = append(out, c)
			}
			if len(out) == limit || scanned >= maxScanned {
				if c.ID == page[len(page)-1].ID && next == "" {
					return out, "", nil
				}
				return out, cursor, nil
			}
		}
		if next == "" {
			return out, "", nil
		}
		cursor = next
	}
}

// CreateClient registers a client for the operator from RFC 7591
// metadata, validated as the registration endpoint validates it but for
// the registration policy (forOperator); a confidential client's secret
// and the registration access token are in the answer and nowhere else.
// Invalid metadata is an *Error.
func (s *Server) CreateClient(r *http.Request, body []byte) (*ClientView, error) {
	req, oerr := s.checkMetadata(body, s.policy.forOperator())
	if oerr != nil {
		s.audit(r, auditRegister, "", actorOperator, oerr.Code, nil)
		return nil, oerr
	}
	c := &storage.Client{IssuedAt: s.now().Unix(), Metadata: req.meta, Origin: storage.OriginOperator}
	secret := s.issueSecret(c, newSecret())
	token := newSecret()
	c.RegistrationTokenHash = storage.HashSecret(token)
	var err error
	for range 3 { // as serveRegister: a collision only costs a new draw
		c.ID = newClientID()
		if err = s.store.CreateClient(r.Context(), c); !errors.Is(err, storage.ErrExists) {
			break
		}
	}
	if err != nil {
		s.audit(r, auditRegister, c.ID, actorOperator, ErrServerError.Code, nil)
		return nil, err
	}
	s.audit(r, auditRegister, c.ID, actorOperator, "", nil)
	v := NewClientView(c)
	v.ClientSecret, v.RegistrationAccessToken = secret, token
	return v, nil
}

// DeleteClient deletes a client and revokes everything issued to it, as
// the RFC 7592 delete does. An unknown id is storage.ErrNotFound.
func (s *Server) DeleteClient(r *http.Request, id string) error {
	err := s.deleteClient(r.Context(), id)
	s.audit(r, auditDelete, id, actorOperator, failureCode(err), nil)
	return err
}

// RotateClient gives a client a new secret (when confidential) and a new
// registration access token, as the client's own rotate_secret does; the
// old ones stop working at once. An unknown id is storage.ErrNotFound.
func (s *Server) RotateClient(r *http.Request, id string) (*ClientView, error) {
	v, err := s.rotateClient(r.Context(), id)
	s.audit(r, auditRotate, id, actorOperator, failureCode(err), nil)
	return v, err
}

func (s *Server) rotateClient(ctx context.Context, id string) (*ClientView, error) {
	var err error
	for range 3 {
		var current *storage.Client
		if current, err = s.store.Client(ctx, id); err != nil {
			return nil, err
		}
		c, secret, token := s.newCredentials(current)
		// The write holds only if nobody rotated meanwhile; if someone
		// did, rotate what they left.
		err = s.store.ReplaceClient(ctx, &c, current.RegistrationTokenHash)
		if errors.Is(err, storage.ErrConflict) {
			continue
		}
		if err != nil {
			return nil, err
		}
		v := NewClientView(&c)
		v.ClientSecret, v.RegistrationAccessToken = secret, token
		return v, nil
	}
	return nil, err
}

// RevokeGrant removes a person's grant to a client with everything issued
// under it, as the person's own revocation does. A missing grant is
// storage.ErrNotFound.
func (s *Server) RevokeGrant(r *http.Request, subject, clientID string) error {
	err := s.revokeGrant(r.Context(), subject, clientID)
	s.audit(r, auditGrantRevoke, clientID, actorOperator, failureCode(err), []zap.Field{zap.String("subject", subject)})
	return err
}

// failureCode is the audit outcome of an operator's write.
func failureCode(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, storage.ErrNotFound):
		return "not_found"
	}
	var oe *Error
	if errors.As(err, &oe) {
		return oe.Code
	}
	return ErrServerError.Code
}

// deleteClient deletes a client and revokes what was issued to it (RFC
// 7592 §2.3), finishing even if the caller hangs up.
func (s *Server) deleteClient(ctx context.Context, id string) error {
	ctx, cancel := revocationContext(ctx)
	defer cancel()
	return s.store.DeleteClient(ctx, id, s.revokedUntil())
}

// newCredentials returns current with a new secret (for a confidential
// client) and a new registration access token, and their plaintexts.
func (s *Server) newCredentials(current *storage.Client) (c storage.Client, secret, token string) {
	c = *current
	token = newSecret()
	secret = s.issueSecret(&c, newSecret())
	c.RegistrationTokenHash = storage.HashSecret(token)
	return c, secret, token
}

// revokeGrant revokes a person's grant to a client and everything issued
// under it, finishing even if the caller hangs up.
func (s *Server) revokeGrant(ctx context.Context, subject, clientID string) error {
	ctx, cancel := revocationContext(ctx)
	defer cancel()
	_, err := s.store.RevokeGrant(ctx, subject, clientID, s.revokedUntil())
	return err
}

// PatchClientSettings changes the operator's settings of a client: body
// is a JSON object of the members to change (disabled, access_token_ttl,
// refresh_token_ttl, scope, keep), the others keep their values. A
// lifetime is a number of seconds or a duration such as "2h" (0: the
// server's), at most the server's maximum; scope is a space-separated
// list of supported scopes ("": what the server allows); keep is true,
// false or null (by origin). An invalid body is an *Error and changes
// nothing; an unknown id is storage.ErrNotFound.
//
// The write is a compare-and-swap of the settings read: a patch that
// lost a race to another reads the client again and applies its members
// to what the other left, so neither is lost (a disable undone by a
// concurrent change of a lifetime would re-enable a client). Still
// losing after a few tries is storage.ErrConflict.
func (s *Server) PatchClientSettings(r *http.Request, id string, body []byte) (*ClientView, error) {
	c, changed, err := s.patchClientSettings(r.Context(), id, body)
	s.audit(r, auditSettings, id, actorOperator, failureCode(err), changed)
	if err != nil {
		return nil, err
	}
	return NewClientView(c), nil
}

func (s *Server) patchClientSettings(ctx context.Context, id string, body []byte) (*storage.Client, []zap.Field, error) {
	if err := checkIJSON(body); err != nil {
		return nil, nil, ErrInvalidRequest.WithDescription(err.Error())
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(body, &members); err != nil || members == nil {
		return nil, nil, ErrInvalidRequest.WithDescription("the body is not a JSON object")
	}
	var err error
	// Each conflict is another patch written: a few tries are enough
	// unless the client is being patched without pause.
	for range 5 {
		var current *storage.Client
		if current, err = s.store.Client(ctx, id); err != nil {
			return nil, nil, err
		}
		set, changed, oerr := s.applySettings(current.Settings, members)
		if oerr != nil {
			return nil, nil, oerr
		}
		var c *storage.Client
		if c, err = s.store.SetClientSettings(ctx, id, current.Settings, set); errors.Is(err, storage.ErrConflict) {
			continue
		}
		return c, changed, err
	}
	return nil, nil, err
}

// applySettings returns set with the members of a settings request
// applied, and the changes to audit.
func (s *Server) applySettings(set storage.ClientSettings, members map[string]json.RawMessage) (storage.ClientSettings, []zap.Field, *Error) {
	var changed []zap.Field
	for name, raw := range members {
		var oerr *Error
		switch name {
		case "disabled":
			oerr = decodeMember(name, raw, &set.Disabled, "true or false")
			changed = append(changed, zap.Bool(name, set.Disabled))
		case "access_token_ttl":
			set.AccessTokenTTL, oerr = decodeTTL(name, raw, MaxAccessTokenTTL)
			changed = append(changed, zap.Int64(name, set.AccessTokenTTL))
		case "refresh_token_ttl":
			set.RefreshTokenTTL, oerr = decodeTTL(name, raw, MaxRefreshTokenTTL)
			changed = append(changed, zap.Int64(name, set.RefreshTokenTTL))
		case "scope":
			if oerr = decodeMember(name, raw, &set.Scope, "a string"); oerr == nil && set.Scope != "" {
				set.Scope, oerr = s.policy.checkScope(set.Scope)
			}
			changed = append(changed, zap.String(name, set.Scope))
		case "keep":
			set.Keep = nil
			if !isNull(raw) {
				var keep bool
				oerr = decodeMember(name, raw, &keep, "true, false or null")
				set.Keep = &keep
			}
			changed = append(changed, zap.Any(name, set.Keep))
		default:
			oerr = ErrInvalidRequest.WithDescription(fmt.Sprintf("%q is not a client setting; the settings are disabled, access_token_ttl, refresh_token_ttl, scope and keep", name))
		}
		if oerr != nil {
			return set, nil, oerr
		}
	}
	return set, changed, nil
}

// decodeMember decodes one member of a settings or token request.
func decodeMember(name string, raw json.RawMessage, v any, want string) *Error {
	if isNull(raw) || json.Unmarshal(raw, v) != nil {
		return ErrInvalidRequest.WithDescription(fmt.Sprintf("%s must be %s", name, want))
	}
	return nil
}

// decodeTTL reads a lifetime in whole seconds: a non-negative number, or
// a duration string as Caddy reads them ("90m", "7d"), at most limit.
func decodeTTL(name string, raw json.RawMessage, limit time.Duration) (int64, *Error) {
	bad := ErrInvalidRequest.WithDescription(fmt.Sprintf(
		"%s must be a number of seconds or a duration such as \"2h\", from 0 to %s", name, limit))
	var d time.Duration
	var n json.Number
	var str string
	switch {
	case json.Unmarshal(raw, &n) == nil:
		secs, err := strconv.ParseInt(n.String(), 10, 64)
		if err != nil || secs < 0 || secs > int64(limit/time.Second) {
			return 0, bad
		}
		return secs, nil
	case json.Unmarshal(raw, &str) == nil:
		var err error
		if d, err = caddy.ParseDuration(str); err != nil {
			return 0, bad
		}
	default:
		return 0, bad
	}
	if d < 0 || d > limit || d%time.Second != 0 {
		return 0, bad
	}
	return int64(d / time.Second), nil
}

// DefaultInitialAccessTokenTTL is how long an initial access token made
// without a ttl lasts.
const DefaultInitialAccessTokenTTL = 24 * time.Hour

// InitialAccessTokenView is an initial access token as the admin API
// shows it: never its hash, and its value only in the answer that made
// it.
type InitialAccessTokenView struct {
	ID          string `json:"id"`
	Token       string `json:"token,omitempty"`
	Description string `json:"description,omitempty"`
	CreatedAt   int64  `json:"created_at"`
	ExpiresAt   int64  `json:"expires_at"`
	MaxUses     int    `json:"max_uses"`
	Uses        int    `json:"uses"`
}

func newTokenView(t *storage.InitialAccessToken) *InitialAccessTokenView {
	return &InitialAccessTokenView{ID: t.ID, Description: t.Description, CreatedAt: t.CreatedAt,
		ExpiresAt: t.ExpiresAt, MaxUses: t.MaxUses, Uses: t.Uses}
}

// maxDescription bounds an initial access token's description.
const maxDescription = 200

// CreateInitialAccessToken makes an initial access token from body, a
// JSON object with ttl (seconds or a duration string; 0 never expires;
// default DefaultInitialAccessTokenTTL), max_uses (0: no limit) and
// description, all optional. The token's value is in the answer and
// nowhere else. An invalid body is an *Error.
func (s *Server) CreateInitialAccessToken(r *http.Request, body []byte) (*InitialAccessTokenView, error) {
	v, err := s.createInitialAccessToken(r.Context(), body)
	id := ""
	if v != nil {
		id = v.ID
	}
	s.audit(r, auditIATCreate, "", actorOperator, failureCode(err), []zap.Field{zap.String("token_id", id)})
	return v, err
}

func (s *Server) createInitialAccessToken(ctx context.Context, body []byte) (*InitialAccessTokenView, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	if err := checkIJSON(body); err != nil {
		return nil, ErrInvalidRequest.WithDescription(err.Error())
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(body, &members); err != nil || members == nil {
		return nil, ErrInvalidRequest.WithDescription("the body is not a JSON object")
	}
	now := s.now()
	t := &storage.InitialAccessToken{CreatedAt: now.Unix(), ExpiresAt: now.Add(DefaultInitialAccessTokenTTL).Unix()}
	for name, raw := range members {
		var oerr *Error
		switch name {
		case "ttl":
			var secs int64
			if secs, oerr = decodeTTL(name, raw, 10*365*24*time.Hour); oerr == nil {
				t.ExpiresAt = 0
				if secs > 0 {
					t.ExpiresAt = now.Unix() + secs
				}
			}
		case "max_uses":
			if oerr = decodeMember(name, raw, &t.MaxUses, "a whole number"); oerr == nil && t.MaxUses < 0 {
				oerr = ErrInvalidRequest.WithDescription("max_uses must not be negative")
			}
		case "description":
			if oerr = decodeMember(name, raw, &t.Description, "a string"); oerr == nil && len(t.Description) > maxDescription {
				oerr = ErrInvalidRequest.WithDescription(fmt.Sprintf("description must be at most %d bytes", maxDescription))
			}
		default:
			oerr = ErrInvalidRequest.WithDescription(fmt.Sprintf("%q is not known; send ttl, max_uses and description", name))
		}
		if oerr != nil {
			return nil, oerr
		}
	}
	token := newSecret()
	t.Hash = storage.HashSecret(token)
	var err error
	for range 3 {
		t.ID = randomString(9)
		if err = s.store.CreateInitialAccessToken(ctx, t); !errors.Is(err, storage.ErrExists) {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	v := newTokenView(t)
	v.Token = token
	return v, nil
}

// InitialAccessTokens lists the initial access tokens that have not
// expired, oldest first, without their values.
func (s *Server) InitialAccessTokens(ctx context.Context) ([]*InitialAccessTokenView, error) {
	list, err := s.store.InitialAccessTokens(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*InitialAccessTokenView, len(list))
	for i, t := range list {
		out[i] = newTokenView(t)
	}
	return out, nil
}

// DeleteInitialAccessToken deletes one; clients it registered stay. A
// missing one is storage.ErrNotFound.
func (s *Server) DeleteInitialAccessToken(r *http.Request, id string) error {
	err := s.store.DeleteInitialAccessToken(r.Context(), id)
	s.audit(r, auditIATDelete, "", actorOperator, failureCode(err), []zap.Field{zap.String("token_id", id)})
	return err
}
