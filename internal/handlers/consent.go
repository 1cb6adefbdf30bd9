package handlers

import (
	"slices"
	"strings"

	"github.com/caddy-dcr/caddy-dcr/storage"
)

// DefaultScopeDescriptions say what the OpenID Connect scopes let an
// application know; an operator's scope_description replaces them.
var DefaultScopeDescriptions = map[string]string{
	scopeOpenID:      "Know who you are on this server",
	"profile":        "See your name and profile",
	"email":          "See your email address",
	"phone":          "See your phone number",
	"offline_access": "Keep access while you are away",
}

// scopeLine is one scope as the consent page shows it.
type scopeLine struct {
	Scope, Description string
}

// describeScopes pairs each scope of a request with the operator's
// description of it, or the default one, or none.
func (s *Server) describeScopes(scope string) []scopeLine {
	var out []scopeLine
	for sc := range strings.FieldsSeq(scope) {
		d, ok := s.cfg.ScopeDescriptions[sc]
		if !ok {
			d = DefaultScopeDescriptions[sc]
		}
		out = append(out, scopeLine{Scope: sc, Description: d})
	}
	return out
}

// selfAsserted reports whether what the consent page shows of the client
// (name, logo, website) is only what the client said about itself: a
// client that registered itself (RFC 7591), unless the operator made it
// (admin API) or trusts it. A metadata-document client is shown by the
// host that serves its document instead, which is known.
func (s *Server) selfAsserted(req *authzRequest) bool {
	return req.host == "" && req.client.Origin != storage.OriginOperator && !slices.Contains(s.cfg.TrustedClients, req.client.ID)
}
