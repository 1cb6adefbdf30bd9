package handlers

import (
	"errors"
	"net/http"
	"sync"

	"github.com/caddy-dcr/caddy-dcr/internal/metrics"
)

// outcome is the ResponseWriter the token and registration endpoints
// answer through when they are counted: it keeps the status and the OAuth
// error code of the answer (writeJSON notes it), so that every way an
// endpoint can end is counted without a line at each of them.
type outcome struct {
	http.ResponseWriter
	status int
	code   string
}

// outcomes recycles the recorders: the token endpoint is a hot path, and
// counting must not cost it an allocation.
var outcomes = sync.Pool{New: func() any { return new(outcome) }}

func (o *outcome) WriteHeader(status int) {
	if o.status == 0 {
		o.status = status
	}
	o.ResponseWriter.WriteHeader(status)
}

func (o *outcome) Write(b []byte) (int, error) {
	if o.status == 0 {
		o.status = http.StatusOK
	}
	return o.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (o *outcome) Unwrap() http.ResponseWriter { return o.ResponseWriter }

// noteError records the OAuth error code of an answer, when w counts.
func noteError(w http.ResponseWriter, code string) {
	if o, ok := w.(*outcome); ok {
		o.code = code
	}
}

// observe runs h with a recorder and hands what it answered to done.
func observe(h http.HandlerFunc, done func(r *http.Request, o *outcome)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		o := outcomes.Get().(*outcome)
		*o = outcome{ResponseWriter: w}
		h(o, r)
		if r.Method != http.MethodOptions {
			done(r, o)
		}
		*o = outcome{}
		outcomes.Put(o)
	}
}

// countToken counts a token endpoint answer: tokens issued by grant type,
// or the error code.
func countToken(r *http.Request, o *outcome) {
	switch {
	case o.code != "":
		metrics.TokenError(o.code)
	case o.status == http.StatusOK:
		metrics.TokenIssued(r.PostForm.Get("grant_type"))
	}
}

// countRegistration counts a registration answer by outcome and audits a
// refused one (a created client is audited where it is stored, with its
// id).
func (s *Server) countRegistration(r *http.Request, o *outcome) {
	var m metrics.RegistrationOutcome
	switch {
	case o.status == http.StatusCreated:
		metrics.Registration(metrics.RegistrationCreated)
		return
	case o.status == http.StatusUnauthorized:
		m = metrics.RegistrationUnauthorized
	case o.status == http.StatusTooManyRequests:
		m = metrics.RegistrationRateLimited
	case o.code == errTemporarilyUnavailable:
		// max_clients reached: the server is full, not broken.
		m = metrics.RegistrationFull
	case o.status >= 500:
		m = metrics.RegistrationError
	default:
		m = metrics.RegistrationRejected
	}
	metrics.Registration(m)
	s.audit(r, auditRegister, "", actorAnonymous, o.code, nil)
}

// errTemporarilyUnavailable is the code of a registration refused because
// the store holds max_clients clients (RFC 6749 §4.1.2.1 names it).
const errTemporarilyUnavailable = "temporarily_unavailable"

// gateFailure classifies why checkAccessToken refused a token.
func gateFailure(err error) metrics.GateOutcome {
	switch {
	case errors.Is(err, errTokenExpired):
		return metrics.GateExpired
	case errors.Is(err, errTokenRevoked):
		return metrics.GateRevoked
	}
	return metrics.GateInvalidToken
}
