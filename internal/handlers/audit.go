package handlers

import (
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-dcr/caddy-dcr/internal/metrics"
	"github.com/caddy-dcr/caddy-dcr/storage"
)

// AuditLoggerName is the name of the audit log, so that a Caddy log can
// take (include dcr.audit) or leave (exclude dcr.audit) it whole, apart
// from the handlers' own logs.
const AuditLoggerName = "dcr.audit"

// auditLog names the audit logger: Caddy names a module's logger after
// its ID, so the audit lines of every dcr handler and of the admin API
// share one name. It is never registered as a module.
type auditLog struct{}

func (auditLog) CaddyModule() caddy.ModuleInfo { return caddy.ModuleInfo{ID: AuditLoggerName} }

// AuditLogger returns the audit logger of ctx's config.
func AuditLogger(ctx caddy.Context) *zap.Logger { return ctx.Logger(auditLog{}) }

// Audited actions: the message of each audit line.
const (
	auditRegister    = "client registered"
	auditUpdate      = "client updated"
	auditDelete      = "client deleted"
	auditRotate      = "client credentials rotated"
	auditReap        = "client reaped"
	auditSettings    = "client settings changed"
	auditConsent     = "consent"
	auditGrantRevoke = "grant revoked"
	auditTokenRevoke = "token revoked"
	auditIATCreate   = "initial access token created"
	auditIATDelete   = "initial access token deleted"
)

// Who acted.
const (
	// actorAnonymous registered (or tried to): nobody is authenticated
	// at an open registration endpoint.
	actorAnonymous = "anonymous"
	// actorTokenHolder registered with an initial access token made at
	// run time.
	actorTokenHolder = "initial_access_token"
	// actorClient is the client itself, authenticated by its secret or
	// its registration access token.
	actorClient = "client"
	// actorUser is the signed-in person (named in the subject field).
	actorUser = "user"
	// actorOperator is whoever called Caddy's admin API.
	actorOperator = "operator"
	// actorReaper is the server removing stale clients.
	actorReaper = "reaper"
)

// audit writes one audit line: what happened (action), to which client,
// from which address, who acted, and the outcome: "success" when failure
// is "", and otherwise "failure" with failure (an OAuth error code) as
// error. The address is Caddy's client IP, so trusted_proxies apply; r may
// be nil for what no request caused (reaping). Never pass a secret, a
// token, a code or a registration access token in extra.
func (s *Server) audit(r *http.Request, action, clientID, actor, failure string, extra []zap.Field) {
	ce := s.auditLog.Check(zapcore.InfoLevel, action)
	if ce == nil {
		return
	}
	fields := make([]zap.Field, 0, 6+len(extra))
	fields = append(fields, zap.String("client_id", clientID), zap.String("actor", actor))
	if r != nil {
		ip := r.RemoteAddr
		if a, ok := clientAddr(r); ok {
			ip = a.String()
		}
		fields = append(fields, zap.String("remote_ip", ip))
	}
	if failure == "" {
		fields = append(fields, zap.String("outcome", "success"))
	} else {
		fields = append(fields, zap.String("outcome", "failure"), zap.String("error", failure))
	}
	ce.Write(append(fields, extra...)...)
}

// registrant is who registered c: whoever held a run-time initial access
// token, or else anybody.
func registrant(c *storage.Client) string {
	if c.Origin == storage.OriginInitialAccessToken {
		return actorTokenHolder
	}
	return actorAnonymous
}

// auditRefusedConfiguration audits an RFC 7592 update, deletion or
// rotation refused for want of a valid registration access token (a read
// changes nothing and is not audited). The client id is the one the
// request named, which may not exist.
func (s *Server) auditRefusedConfiguration(r *http.Request, id string) {
	var action string
	switch r.Method {
	case http.MethodPut:
		action = auditUpdate
	case http.MethodDelete:
		action = auditDelete
	case http.MethodPost:
		action = auditRotate
	default:
		return
	}
	s.audit(r, action, id, actorClient, ErrInvalidToken.Code, nil)
}

// ClientsReaped reports clients that reaping removed, for reason (a fixed
// word such as "unused", "idle" or "max_clients"): it counts them in
// caddy_dcr_clients_reaped_total and writes an audit line for each.
func (s *Server) ClientsReaped(reason string, ids []string) {
	metrics.ClientsReaped(reason, len(ids))
	for _, id := range ids {
		s.audit(nil, auditReap, id, actorReaper, "", []zap.Field{zap.String("reason", reason)})
	}
}
