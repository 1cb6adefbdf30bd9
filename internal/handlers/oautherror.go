package handlers

import (
	"encoding/json"
	"errors"
	"net/http"
)

// Error is an OAuth error response: the code and description of RFC 6749
// §5.2 (and of the RFCs that add codes), with the HTTP status it is sent with.
type Error struct {
	Code        string `json:"error"`
	Description string `json:"error_description,omitempty"`
	Status      int    `json:"-"`
}

// Error values by code. Use WithDescription to say what went wrong; the
// package values themselves never change.
var (
	// RFC 6749 §5.2.
	ErrInvalidRequest       = &Error{Code: "invalid_request", Status: http.StatusBadRequest}
	ErrInvalidClient        = &Error{Code: "invalid_client", Status: http.StatusUnauthorized}
	ErrInvalidGrant         = &Error{Code: "invalid_grant", Status: http.StatusBadRequest}
	ErrUnauthorizedClient   = &Error{Code: "unauthorized_client", Status: http.StatusBadRequest}
	ErrUnsupportedGrantType = &Error{Code: "unsupported_grant_type", Status: http.StatusBadRequest}
	ErrInvalidScope         = &Error{Code: "invalid_scope", Status: http.StatusBadRequest}
	ErrServerError          = &Error{Code: "server_error", Status: http.StatusInternalServerError}
	// RFC 6749 §4.1.2.1.
	ErrAccessDenied            = &Error{Code: "access_denied", Status: http.StatusForbidden}
	ErrUnsupportedResponseType = &Error{Code: "unsupported_response_type", Status: http.StatusBadRequest}
	ErrTemporarilyUnavailable  = &Error{Code: "temporarily_unavailable", Status: http.StatusServiceUnavailable}

	// RFC 8707 §2.
	ErrInvalidTarget = &Error{Code: "invalid_target", Status: http.StatusBadRequest}

	// RFC 9101 §6.3 (and OpenID Connect Core §6.2): request objects are
	// not supported.
	ErrRequestNotSupported    = &Error{Code: "request_not_supported", Status: http.StatusBadRequest}
	ErrRequestURINotSupported = &Error{Code: "request_uri_not_supported", Status: http.StatusBadRequest}

	// RFC 6750 §3.1.
	ErrInvalidToken      = &Error{Code: "invalid_token", Status: http.StatusUnauthorized}
	ErrInsufficientScope = &Error{Code: "insufficient_scope", Status: http.StatusForbidden}

	// RFC 7591 §3.2.2.
	ErrInvalidRedirectURI          = &Error{Code: "invalid_redirect_uri", Status: http.StatusBadRequest}
	ErrInvalidClientMetadata       = &Error{Code: "invalid_client_metadata", Status: http.StatusBadRequest}
	ErrInvalidSoftwareStatement    = &Error{Code: "invalid_software_statement", Status: http.StatusBadRequest}
	ErrUnapprovedSoftwareStatement = &Error{Code: "unapproved_software_statement", Status: http.StatusBadRequest}
)

// WithDescription returns a copy of e with the given description.
func (e *Error) WithDescription(desc string) *Error {
	c := *e
	c.Description = desc
	return &c
}

// WithStatus returns a copy of e sent with another HTTP status.
func (e *Error) WithStatus(status int) *Error {
	c := *e
	c.Status = status
	return &c
}

func (e *Error) Error() string {
	if e.Description == "" {
		return e.Code
	}
	return e.Code + ": " + e.Description
}

// Is reports whether target is an *Error with the same code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// writeJSON sends v as JSON with the headers that every OAuth response
// carries: RFC 6749 §5.1 forbids caching token responses, and RFC 7591
// §3.2.1 and RFC 7592 §3 ask the same of registration responses.
func writeJSON(w http.ResponseWriter, status int, v any) {
	if e, ok := v.(*Error); ok {
		noteError(w, e.Code)
	}
	b, err := json.Marshal(v)
	if err != nil {
		// Every value passed here is made of strings, numbers and raw
		// JSON already validated; report a failure as one, never as text.
		status = http.StatusInternalServerError
		b = []byte(`{"error":"server_error"}`)
	}
	writeJSONBytes(w, status, b)
}

// writeJSONBytes sends b, JSON, with writeJSON's headers. Their three
// values share one allocation instead of one each (Header.Set); each is
// capped at its length, so a later Add to one of them copies it rather
// than overwrite the next.
func writeJSONBytes(w http.ResponseWriter, status int, b []byte) {
	v := make([]string, 3)
	v[0], v[1], v[2] = "application/json", "no-store", "no-cache"
	h := w.Header()
	h["Content-Type"], h["Cache-Control"], h["Pragma"] = v[0:1:1], v[1:2:2], v[2:3:3]
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// writeError sends an OAuth error. An error that is not an *Error is
// reported to the client as server_error only; the caller logs it.
func writeError(w http.ResponseWriter, err error) {
	var oe *Error
	if !errors.As(err, &oe) {
		oe = ErrServerError
	}
	writeJSON(w, oe.Status, oe)
}
