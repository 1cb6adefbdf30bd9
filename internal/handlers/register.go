package handlers

import (
	"encoding/json"
	"errors"
	"net/http"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-dcr/caddy-dcr/storage"
)

// registrationHead is the part of a client information response (RFC 7591
// §3.2.1, RFC 7592 §3) that the server sets; the metadata follows it.
type registrationHead struct {
	ClientID         string `json:"client_id"`
	ClientIDIssuedAt int64  `json:"client_id_issued_at"`
	ClientSecret     string `json:"client_secret,omitempty"`
	// ClientSecretExpiresAt is present for every confidential client
	// (RFC 7591 §3.2.1: required with client_secret; 0 = never).
	ClientSecretExpiresAt   *int64 `json:"client_secret_expires_at,omitempty"`
	RegistrationAccessToken string `json:"registration_access_token,omitempty"`
	RegistrationClientURI   string `json:"registration_client_uri"`
}

// clientInformation encodes the client information response for c. secret
// and token are the plaintexts issued by this very request, or "".
func (s *Server) clientInformation(r *http.Request, c *storage.Client, secret, token string) ([]byte, error) {
	head := registrationHead{
		ClientID:                c.ID,
		ClientIDIssuedAt:        c.IssuedAt,
		ClientSecret:            secret,
		RegistrationAccessToken: token,
		RegistrationClientURI:   s.baseURL(r) + s.cfg.RegistrationPath + "/" + c.ID,
	}
	if !c.Public() {
		exp := c.SecretExpiresAt
		head.ClientSecretExpiresAt = &exp
	}
	a, err := json.Marshal(head)
	if err != nil {
		return nil, err
	}
	m := c.Metadata
	m.Extra = honouredExtensions(m.Extra)
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return storage.JoinObjects(a, b), nil
}

// readMetadata reads, parses and validates a registration or update body.
func (s *Server) readMetadata(w http.ResponseWriter, r *http.Request) (*metadataRequest, *Error) {
	body, oerr := s.readJSONBody(w, r)
	if oerr != nil {
		return nil, oerr
	}
	return s.checkMetadata(body, s.policy)
}

// checkMetadata parses and validates a registration or update body
// against pol: the one check of client metadata, for the endpoints
// (s.policy) and the admin API (s.policy.forOperator()).
func (s *Server) checkMetadata(body []byte, pol metadataPolicy) (*metadataRequest, *Error) {
	req, oerr := parseMetadata(body)
	if oerr != nil {
		return nil, oerr
	}
	if req.softwareStatement != "" {
		return nil, checkSoftwareStatement(req.softwareStatement)
	}
	if oerr := pol.validateMetadata(&req.meta); oerr != nil {
		return nil, oerr
	}
	return req, nil
}

// issueSecret gives a confidential client a new secret and returns its
// plaintext; a public client gets none.
func (s *Server) issueSecret(c *storage.Client, secret string) string {
	if c.Public() {
		c.SecretHash, c.SecretExpiresAt = nil, 0
		return ""
	}
	c.SecretHash = storage.HashSecret(secret)
	c.SecretExpiresAt = 0
	if ttl := s.cfg.ClientSecretTTL; ttl > 0 {
		c.SecretExpiresAt = s.now().Add(ttl).Unix()
	}
	return secret
}

// serveRegister is the client registration endpoint of RFC 7591 §3.
func (s *Server) serveRegister(w http.ResponseWriter, r *http.Request) {
	if !allowMethods(w, r, http.MethodPost) || !s.registrationAllowed(w, r) {
		return
	}
	// RFC 7591 §3: an initial access token, when required, is a bearer
	// token; a request without a valid one gets RFC 6750's 401.
	granted, presented, runtime, iat := s.initialAccess(r)
	if granted && runtime {
		var err error
		if granted, err = s.runtimeTokenUsable(r.Context(), iat); err != nil {
			s.internalError(w, "reading initial access tokens", "", err)
			return
		}
	}
	if !granted {
		challenge(w, "registration requires a valid initial access token")
		return
	}
	req, oerr := s.readMetadata(w, r)
	if oerr != nil {
		writeError(w, oerr)
		return
	}
	if !s.roomForClient(w, r) {
		return
	}

	c := &storage.Client{IssuedAt: s.now().Unix(), Metadata: req.meta}
	if presented {
		c.Origin = storage.OriginInitialAccessToken
	}
	secret := s.issueSecret(c, newSecret())
	token := newSecret()
	c.RegistrationTokenHash = storage.HashSecret(token)
	var err error
	// 128 random bits do not collide in practice; the store still checks,
	// and a collision only costs a new draw.
	for range 3 {
		c.ID = newClientID()
		if runtime {
			// Counts one use of the token, in the same write.
			err = s.store.CreateClientWithInitialAccessToken(r.Context(), c, storage.HashSecret(iat), c.IssuedAt)
		} else {
			err = s.store.CreateClient(r.Context(), c)
		}
		if !errors.Is(err, storage.ErrExists) {
			break
		}
	}
	if runtime && errors.Is(err, storage.ErrNotFound) {
		challenge(w, "registration requires a valid initial access token")
		return
	}
	if err != nil {
		s.internalError(w, "registering client", c.ID, err)
		return
	}
	body, err := s.clientInformation(r, c, secret, token)
	if err != nil {
		s.internalError(w, "encoding registration", c.ID, err)
		return
	}
	s.audit(r, auditRegister, c.ID, registrant(c), "", nil)
	if ce := s.log.Check(zapcore.DebugLevel, "client registered"); ce != nil {
		ce.Write(zap.String("client_id", c.ID), zap.String("client_name", c.Metadata.ClientName),
			zap.String("token_endpoint_auth_method", c.Metadata.TokenEndpointAuthMethod))
	}
	writeJSONBytes(w, http.StatusCreated, body)
}
