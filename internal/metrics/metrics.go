// Package metrics holds caddy-dcr's Prometheus collectors, named
// caddy_dcr_*, and registers them in Caddy's metrics registry, so that
// Caddy's own metrics handler (and its admin /metrics) exposes them.
//
// The collectors are package values made once: counters keep counting
// across config reloads, as a process's counters should, and each new
// config's registry (Caddy makes one per config load, which every handler
// of that config shares) gets the same collectors registered once. The
// label sets are small and fixed (never a client id, a path or a store's
// address), and the children that per-request paths use are resolved here
// once, so counting a request costs an atomic add and no allocation.
package metrics

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

const namespace, subsystem = "caddy", "dcr"

func opts(name, help string) prometheus.Opts {
	return prometheus.Opts{Namespace: namespace, Subsystem: subsystem, Name: name, Help: help}
}

var (
	registrations = prometheus.NewCounterVec(prometheus.CounterOpts(opts("registrations_total",
		"Client registration requests (RFC 7591) by outcome: created, unauthorized (no valid initial access token), "+
			"rejected (bad metadata or policy), rate_limited, full (max_clients reached), error (server or storage failure).")), []string{"outcome"})
	tokensIssued = prometheus.NewCounterVec(prometheus.CounterOpts(opts("tokens_issued_total",
		"Successful token endpoint responses by grant type.")), []string{"grant_type"})
	tokenErrors = prometheus.NewCounterVec(prometheus.CounterOpts(opts("token_errors_total",
		"Token endpoint error responses by OAuth error code.")), []string{"error"})
	gateDecisions = prometheus.NewCounterVec(prometheus.CounterOpts(opts("gate_decisions_total",
		"Token gate decisions by outcome.")), []string{"outcome"})
	clientsReaped = prometheus.NewCounterVec(prometheus.CounterOpts(opts("clients_reaped_total",
		"Clients removed by reaping, by reason.")), []string{"reason"})
	storeLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Subsystem: subsystem, Name: "store_operation_duration_seconds",
		Help: "Latency of operations that reach the storage backend (in-memory answers are not counted), by operation and outcome.",
		// Badger answers in microseconds, PostgreSQL in milliseconds.
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	}, []string{"operation", "outcome"})
)

// RegistrationOutcome is how a registration request ended.
type RegistrationOutcome int

// Registration outcomes.
const (
	RegistrationCreated RegistrationOutcome = iota
	RegistrationUnauthorized
	RegistrationRejected
	RegistrationRateLimited
	RegistrationFull
	RegistrationError
	numRegistrationOutcomes
)

var registrationOutcomes = [numRegistrationOutcomes]string{"created", "unauthorized", "rejected", "rate_limited", "full", "error"}

// GateOutcome is what the token gate decided about a request.
type GateOutcome int

// Gate outcomes.
const (
	GateAllowed GateOutcome = iota
	GatePreflight
	GateNoToken
	GateInvalidToken
	GateExpired
	GateRevoked
	GateWrongAudience
	GateInsufficientScope
	GateUnavailable
	GateInvalidRequest
	numGateOutcomes
)

var gateOutcomes = [numGateOutcomes]string{"allowed", "preflight", "no_token", "invalid_token", "expired",
	"revoked", "wrong_audience", "insufficient_scope", "unavailable", "invalid_request"}

// Counter children resolved once, for the per-request paths.
var (
	registrationsBy = resolveAll(registrations, registrationOutcomes[:])
	gateBy          = resolveAll(gateDecisions, gateOutcomes[:])
	// tokensBy knows the grant types the token endpoint serves.
	tokensBy = resolve(tokensIssued, "authorization_code", "client_credentials", "refresh_token")
	// tokenErrorsBy knows every code the token endpoint sends; any other
	// is counted as "other", so that the label set stays bounded.
	tokenErrorsBy = resolve(tokenErrors, "invalid_request", "invalid_client", "invalid_grant",
		"unauthorized_client", "unsupported_grant_type", "invalid_scope", "invalid_target", "server_error", "other")
)

func resolveAll(v *prometheus.CounterVec, names []string) []prometheus.Counter {
	out := make([]prometheus.Counter, len(names))
	for i, name := range names {
		out[i] = v.WithLabelValues(name)
	}
	return out
}

func resolve(v *prometheus.CounterVec, values ...string) map[string]prometheus.Counter {
	m := make(map[string]prometheus.Counter, len(values))
	for _, value := range values {
		m[value] = v.WithLabelValues(value)
	}
	return m
}

// Registration counts one registration request by outcome.
func Registration(o RegistrationOutcome) { registrationsBy[o].Inc() }

// Gate counts one gate decision by outcome.
func Gate(o GateOutcome) { gateBy[o].Inc() }

// TokenIssued counts one successful token response by grant type.
func TokenIssued(grantType string) {
	if c, ok := tokensBy[grantType]; ok {
		c.Inc()
	}
}

// TokenError counts one token endpoint error by its OAuth error code.
func TokenError(code string) {
	c, ok := tokenErrorsBy[code]
	if !ok {
		c = tokenErrorsBy["other"]
	}
	c.Inc()
}

// ClientsReaped counts n clients removed by reaping for reason (a short
// fixed word such as "unused", "idle" or "max_clients"; never a client
// id). The reaper calls it once per run.
func ClientsReaped(reason string, n int) {
	if n > 0 {
		clientsReaped.WithLabelValues(reason).Add(float64(n))
	}
}

// StoreLatency returns the observer of one store operation's latency with
// one outcome ("ok" or "error"), for the caller to resolve once and
// reuse.
func StoreLatency(operation, outcome string) prometheus.Observer {
	return storeLatency.WithLabelValues(operation, outcome)
}

// Register adds the collectors, and extra ones, to reg, once: a second
// call with the same registry (several dcr handlers in one config) is no
// error.
func Register(reg *prometheus.Registry, extra ...prometheus.Collector) error {
	if reg == nil {
		return nil
	}
	var errs []error
	for _, c := range append([]prometheus.Collector{registrations, tokensIssued, tokenErrors, gateDecisions,
		clientsReaped, storeLatency}, extra...) {
		if err := reg.Register(c); err != nil {
			if _, dup := errors.AsType[prometheus.AlreadyRegisteredError](err); dup {
				continue
			}
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
