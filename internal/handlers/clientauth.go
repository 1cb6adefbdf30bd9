package handlers

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/caddy-dcr/caddy-dcr/storage"
)

// fakeSecretHash stands in for the secret hash of an unknown client, so
// that a miss costs the same comparison as a wrong secret for a known
// client (the timing defense of Caddy's basic_auth; the store's Client
// makes a miss cost what a read costs).
var fakeSecretHash = storage.HashSecret("caddy-dcr: no such client")

// clientCredentials are what a request presented to identify its client.
type clientCredentials struct {
	id, secret string
	// method is how they came: client_secret_basic, client_secret_post
	// or none (a client_id alone).
	method string
}

// readForm reads a bounded application/x-www-form-urlencoded body (RFC 6749
// §3.2) into r.PostForm. Parameters may not repeat (RFC 6749 §3.1, §3.2),
// except those listed in multi.
func (s *Server) readForm(w http.ResponseWriter, r *http.Request, multi ...string) *Error {
	const form = "application/x-www-form-urlencoded"
	if ct := r.Header.Get("Content-Type"); ct != form { // the usual spelling needs no parsing
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != form {
			return ErrInvalidRequest.WithDescription("Content-Type must be application/x-www-form-urlencoded")
		}
	}
	r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
	body, err := io.ReadAll(r.Body)
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return ErrInvalidRequest.WithStatus(http.StatusRequestEntityTooLarge).WithDescription(
				fmt.Sprintf("the body is larger than %d bytes", s.cfg.MaxBodyBytes))
		}
		return ErrInvalidRequest.WithDescription("the body is not a valid form")
	}
	// What r.ParseForm does for this body, without what it adds for the
	// token endpoint's every request: a second parse of the Content-Type,
	// r.Form as a copy of r.PostForm and a map for an empty query string.
	// The query is still checked as ParseForm checks it, and a later
	// ParseForm or FormValue builds r.Form from r.PostForm.
	values, err := url.ParseQuery(string(body))
	if err == nil && r.URL.RawQuery != "" {
		_, err = url.ParseQuery(r.URL.RawQuery)
	}
	if err != nil {
		return ErrInvalidRequest.WithDescription("the body is not a valid form")
	}
	r.PostForm = values
	for name, values := range r.PostForm {
		if len(values) > 1 && !slices.Contains(multi, name) {
			return ErrInvalidRequest.WithDescription(fmt.Sprintf("parameter %s is repeated", name))
		}
	}
	return nil
}

// readClientCredentials finds the client's credentials in the Authorization
// header and the form (already parsed). When both carry them, they must be
// identical (RFC 6749 §2.3: one method per request).
func readClientCredentials(r *http.Request) (clientCredentials, *Error) {
	formID, formSecret := r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	header := r.Header.Get("Authorization")
	if isBasic(header) {
		id, secret, ok := parseBasic(header)
		if !ok {
			return clientCredentials{}, ErrInvalidClient.WithDescription("the Basic credentials are malformed")
		}
		if (formID != "" && formID != id) || (formSecret != "" && formSecret != secret) {
			return clientCredentials{}, ErrInvalidRequest.WithDescription(
				"the client credentials in the Authorization header and in the body differ")
		}
		// A public client sending its id with an empty password, as
		// golang.org/x/oauth2 does, authenticates with "none".
		if secret == "" {
			return clientCredentials{id: id, method: storage.AuthMethodNone}, nil
		}
		return clientCredentials{id: id, secret: secret, method: storage.AuthMethodBasic}, nil
	}
	switch {
	case formID != "" && formSecret != "":
		return clientCredentials{id: formID, secret: formSecret, method: storage.AuthMethodPost}, nil
	case formID != "":
		return clientCredentials{id: formID, method: storage.AuthMethodNone}, nil
	}
	return clientCredentials{}, ErrInvalidClient.WithDescription("client authentication is required")
}

// isBasic reports whether an Authorization header value is of the Basic
// scheme, in any case, without the copy strings.ToLower makes of it.
func isBasic(header string) bool {
	return len(header) >= len("basic ") && strings.EqualFold(header[:len("basic ")], "basic ")
}

// clientRequest starts every endpoint that a client calls with a form and
// its credentials (token, introspection, revocation): POST only, a bounded
// form, then client authentication. It answers the request itself when it
// reports false.
func (s *Server) clientRequest(w http.ResponseWriter, r *http.Request, multi ...string) (*storage.Client, bool) {
	if !allowMethods(w, r, http.MethodPost) {
		return nil, false
	}
	if oerr := s.readForm(w, r, multi...); oerr != nil {
		writeError(w, oerr)
		return nil, false
	}
	return s.authenticateClient(w, r)
}

// authenticateClient reads and checks the request's client credentials.
// Every failure leaves through one branch and an unknown client costs the
// same hash comparison as a known one. It answers the request itself when
// it reports false.
func (s *Server) authenticateClient(w http.ResponseWriter, r *http.Request) (*storage.Client, bool) {
	creds, oerr := readClientCredentials(r)
	if oerr != nil {
		s.writeClientError(w, oerr, r)
		return nil, false
	}
	c, err := s.clientByID(r, creds.id)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		s.internalError(w, "reading client", creds.id, err)
		return nil, false
	}
	known := err == nil
	want := fakeSecretHash
	if known && !c.Public() {
		want = c.SecretHash
	}
	secretOK := subtle.ConstantTimeCompare(storage.HashSecret(creds.secret), want) == 1
	var ok bool
	switch {
	case !known:
	case c.Public():
		ok = creds.method == storage.AuthMethodNone
	default:
		// A confidential client uses the method it registered, and its
		// secret must not have expired (RFC 7591 §3.2.1).
		ok = secretOK && creds.method == c.Metadata.TokenEndpointAuthMethod &&
			(c.SecretExpiresAt == 0 || s.now().Unix() < c.SecretExpiresAt)
	}
	if !ok {
		s.writeClientError(w, ErrInvalidClient.WithDescription("client authentication failed"), r)
		return nil, false
	}
	if c.Settings.Disabled {
		s.writeClientError(w, errClientDisabled, r)
		return nil, false
	}
	return c, true
}

// clientByID finds a registered client, or a client whose id is the URL of
// its metadata document when those are on. A document that cannot be used
// is ErrNotFound: to the token endpoint, an unknown client.
func (s *Server) clientByID(r *http.Request, id string) (*storage.Client, error) {
	if s.cimd != nil && strings.HasPrefix(id, "https://") {
		c, err := s.cimd.client(r.Context(), id)
		if err != nil {
			return nil, storage.ErrNotFound
		}
		return c, nil
	}
	return s.store.Client(r.Context(), id)
}

// writeClientError answers an error; invalid_client after HTTP Basic is 401
// with a Basic challenge (RFC 6749 §5.2), and only then: a client such as
// oauth4webapi reads any other challenge on an error as a reason to hide
// the error code.
func (s *Server) writeClientError(w http.ResponseWriter, oerr *Error, r *http.Request) {
	if errors.Is(oerr, ErrInvalidClient) {
		if isBasic(r.Header.Get("Authorization")) {
			w.Header().Set("WWW-Authenticate", `Basic realm="oauth", charset="UTF-8"`)
		}
	}
	writeError(w, oerr)
}
