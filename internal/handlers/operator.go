package handlers

import (
	"context"
	"errors"
	"net/http"
	"strings"

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
	ClientID                string           `json:"client_id"`
	ClientIDIssuedAt        int64            `json:"client_id_issued_at"`
	ClientSecret            string           `json:"client_secret,omitempty"`
	ClientSecretExpiresAt   *int64           `json:"client_secret_expires_at,omitempty"`
	RegistrationAccessToken string           `json:"registration_access_token,omitempty"`
	Public                  bool             `json:"public"`
	Metadata                storage.Metadata `json:"metadata"`
}

// NewClientView shows c, without any secret.
func NewClientView(c *storage.Client) *ClientView {
	v := &ClientView{ClientID: c.ID, ClientIDIssuedAt: c.IssuedAt, Public: c.Public(), Metadata: c.Metadata}
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
}

func (f ClientFilter) match(c *storage.Client) bool {
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
		if f.Query != "" {
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
// metadata, validated as the registration endpoint validates it; a
// confidential client's secret and the registration access token are in
// the answer and nowhere else. Invalid metadata is an *Error.
func (s *Server) CreateClient(r *http.Request, body []byte) (*ClientView, error) {
	req, oerr := s.checkMetadata(body)
	if oerr != nil {
		s.audit(r, auditRegister, "", actorOperator, oerr.Code, nil)
		return nil, oerr
	}
	c := &storage.Client{IssuedAt: s.now().Unix(), Metadata: req.meta}
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
