package handlers

import (
	"crypto/subtle"
	"errors"
	"net/http"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-dcr/caddy-dcr/storage"
)

// authenticateRegistration checks the registration access token of an RFC
// 7592 request for client id. A missing or wrong token, another client's
// token and an unknown client all fail the same way (RFC 7592 §2: 401, and
// nothing revealed about whether the client exists). It reports false after
// answering the request.
func (s *Server) authenticateRegistration(w http.ResponseWriter, r *http.Request, id string) (*storage.Client, []byte, bool) {
	token, ok := bearerToken(r)
	if !ok {
		s.auditRefusedConfiguration(r, id)
		challenge(w, "a registration access token is required")
		return nil, nil, false
	}
	hash := storage.HashSecret(token)
	c, err := s.store.ClientByRegistrationToken(r.Context(), hash)
	if errors.Is(err, storage.ErrNotFound) || err == nil && subtle.ConstantTimeCompare([]byte(c.ID), []byte(id)) != 1 {
		s.auditRefusedConfiguration(r, id)
		challenge(w, "the registration access token is not valid for this client")
		return nil, nil, false
	}
	if err != nil {
		s.internalError(w, "reading client", id, err)
		return nil, nil, false
	}
	if c.Settings.Disabled {
		disabledRegistration(w)
		return nil, nil, false
	}
	return c, hash, true
}

// serveClientConfiguration is the client configuration endpoint of RFC 7592
// §2: read, update and delete a registration.
func (s *Server) serveClientConfiguration(w http.ResponseWriter, r *http.Request, id string) {
	if !allowMethods(w, r, http.MethodGet, http.MethodPut, http.MethodDelete) {
		return
	}
	c, tokenHash, ok := s.authenticateRegistration(w, r, id)
	if !ok {
		return
	}
	switch r.Method {
	case http.MethodGet:
		// RFC 7592 §2.1. The secret and the registration access token
		// are stored only as hashes, so neither is echoed; both stay
		// valid.
		s.writeClient(w, r, http.StatusOK, c, "", "")
	case http.MethodPut:
		s.updateClient(w, r, c, tokenHash)
	case http.MethodDelete:
		// RFC 7592 §2.3: delete the client and everything issued to it;
		// its registration access token stops working with it.
		if err := s.deleteClient(r.Context(), id); err != nil && !errors.Is(err, storage.ErrNotFound) {
			s.internalError(w, "deleting client", id, err)
			return
		}
		s.audit(r, auditDelete, id, actorClient, "", nil)
		if ce := s.log.Check(zapcore.DebugLevel, "client deleted"); ce != nil {
			ce.Write(zap.String("client_id", id))
		}
		h := w.Header()
		h.Set("Cache-Control", "no-store")
		h.Set("Pragma", "no-cache")
		w.WriteHeader(http.StatusNoContent)
	}
}

// updateClient is RFC 7592 §2.2: the request replaces the metadata whole.
// Members left out are reset to their defaults; client_id must be the
// client's own, and client_secret, if sent, its current secret. The
// server-set members (registration_access_token, registration_client_uri,
// client_id_issued_at, client_secret_expires_at) are ignored, so a client
// may send back what it read.
func (s *Server) updateClient(w http.ResponseWriter, r *http.Request, current *storage.Client, tokenHash []byte) {
	req, oerr := s.readMetadata(w, r)
	if oerr != nil {
		writeError(w, oerr)
		return
	}
	if req.clientID != current.ID {
		writeError(w, ErrInvalidRequest.WithDescription("client_id must be present and equal to this client's identifier"))
		return
	}
	if req.clientSecret != "" &&
		(current.Public() || subtle.ConstantTimeCompare(storage.HashSecret(req.clientSecret), current.SecretHash) != 1) {
		writeError(w, ErrInvalidRequest.WithDescription("client_secret does not match the current secret"))
		return
	}
	c := *current
	c.Metadata = req.meta
	var issued string
	switch {
	case c.Public():
		s.issueSecret(&c, "") // drops the secret
	case current.Public():
		// A public client turned confidential needs its first secret.
		issued = s.issueSecret(&c, newSecret())
	}
	if !s.replaceClient(w, r, &c, tokenHash, "updating client") {
		return
	}
	s.audit(r, auditUpdate, c.ID, actorClient, "", nil)
	s.writeClient(w, r, http.StatusOK, &c, issued, "")
}

// replaceClient stores c if its registration access token is still the
// one that authenticated the request (a concurrent rotation makes it
// invalid: 401, as for any stale token). It answers the request itself
// when it reports false.
func (s *Server) replaceClient(w http.ResponseWriter, r *http.Request, c *storage.Client, tokenHash []byte, op string) bool {
	err := s.store.ReplaceClient(r.Context(), c, tokenHash)
	switch {
	case errors.Is(err, storage.ErrConflict), errors.Is(err, storage.ErrNotFound):
		challenge(w, "the registration access token is not valid for this client")
		return false
	case err != nil:
		s.internalError(w, op, c.ID, err)
		return false
	}
	return true
}

// serveRotateSecret issues a new client secret (for a confidential client)
// and a new registration access token, invalidating the old ones at once.
func (s *Server) serveRotateSecret(w http.ResponseWriter, r *http.Request, id string) {
	if !allowMethods(w, r, http.MethodPost) {
		return
	}
	current, tokenHash, ok := s.authenticateRegistration(w, r, id)
	if !ok {
		return
	}
	c, issued, token := s.newCredentials(current)
	if !s.replaceClient(w, r, &c, tokenHash, "rotating client secret") {
		return
	}
	s.audit(r, auditRotate, id, actorClient, "", nil)
	if ce := s.log.Check(zapcore.DebugLevel, "client secret rotated"); ce != nil {
		ce.Write(zap.String("client_id", id))
	}
	s.writeClient(w, r, http.StatusOK, &c, issued, token)
}

func (s *Server) writeClient(w http.ResponseWriter, r *http.Request, status int, c *storage.Client, secret, token string) {
	body, err := s.clientInformation(r, c, secret, token)
	if err != nil {
		s.internalError(w, "encoding registration", c.ID, err)
		return
	}
	writeJSONBytes(w, status, body)
}
