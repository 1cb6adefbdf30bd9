package handlers

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"go.uber.org/zap"

	"github.com/caddy-dcr/caddy-dcr/storage"
)

// GrantView is a person's grant as the grants page and the admin API
// show it.
type GrantView struct {
	ClientID   string `json:"client_id"`
	ClientName string `json:"client_name,omitempty"`
	Scope      string `json:"scope"`
	CreatedAt  int64  `json:"created_at"`
	UpdatedAt  int64  `json:"updated_at"`
}

// GrantViews shows grants.
func GrantViews(grants []*storage.Grant) []GrantView {
	out := make([]GrantView, len(grants))
	for i, g := range grants {
		out[i] = GrantView{g.ClientID, g.ClientName, g.Scope, g.CreatedAt, g.UpdatedAt}
	}
	return out
}

// grantRow is a grant on the grants page, with its revoke form.
type grantRow struct {
	GrantView
	CSRF   string `json:"-"`
	Action string `json:"-"`
}

// wantsJSON reports whether the caller prefers JSON to HTML.
func wantsJSON(r *http.Request) bool {
	a := r.Header.Get("Accept")
	return strings.Contains(a, "application/json") && !strings.Contains(a, "text/html")
}

// serveGrants lists the clients the signed-in person authorized, as JSON
// or as a page with a revoke button for each.
func (s *Server) serveGrants(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET")
		s.showError(w, http.StatusMethodNotAllowed, "Method not allowed", "Use GET.")
		return
	}
	user, _ := s.identify(r)
	if user == "" {
		s.grantsUnauthenticated(w, r)
		return
	}
	grants, err := s.store.Grants(r.Context(), user)
	if err != nil {
		s.internalError(w, "listing grants", "", err)
		return
	}
	views := []grantRow{}
	for _, v := range GrantViews(grants) {
		views = append(views, grantRow{GrantView: v, Action: s.cfg.GrantsPath + "/" + url.PathEscape(v.ClientID),
			CSRF: s.csrfToken(user, url.Values{"revoke": {v.ClientID}})})
	}
	if wantsJSON(r) {
		writeJSON(w, http.StatusOK, map[string]any{"grants": views})
		return
	}
	s.renderPage(w, http.StatusOK, "grants.html", map[string]any{"User": user, "Grants": views})
}

func (s *Server) grantsUnauthenticated(w http.ResponseWriter, r *http.Request) {
	if wantsJSON(r) {
		writeJSON(w, http.StatusUnauthorized, ErrInvalidRequest.WithDescription("sign in first"))
		return
	}
	s.showError(w, http.StatusUnauthorized, "Sign-in required", "This server did not identify you.")
}

// serveGrant revokes the signed-in person's grant to one client, with
// every token issued under it: DELETE (JSON callers) or POST from the
// grants page (with its CSRF token).
func (s *Server) serveGrant(w http.ResponseWriter, r *http.Request, clientID string) {
	// clientID comes from the decoded path: decoding it again would make
	// an id holding "%" (a metadata-document URL) unreachable.
	if clientID == "" {
		writeJSON(w, http.StatusNotFound, ErrInvalidRequest.WithDescription("no such grant"))
		return
	}
	user, _ := s.identify(r)
	switch {
	case r.Method != http.MethodDelete && r.Method != http.MethodPost:
		w.Header().Set("Allow", "DELETE, POST")
		writeJSON(w, http.StatusMethodNotAllowed, ErrInvalidRequest.WithDescription("use DELETE"))
		return
	case user == "":
		s.grantsUnauthenticated(w, r)
		return
	}
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
		if err := r.ParseForm(); err != nil || !s.checkCSRF(r.PostForm.Get("csrf_token"), user, url.Values{"revoke": {clientID}}) {
			s.showError(w, http.StatusForbidden, "Form expired", "Reload the list of applications and try again.")
			return
		}
	}
	// Every token and code issued under the grant carries its ID: one
	// revocation reaches all of them, however many there are.
	err := s.revokeGrant(r.Context(), user, clientID)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		writeJSON(w, http.StatusNotFound, ErrInvalidRequest.WithDescription("no such grant"))
		return
	case err != nil:
		s.internalError(w, "revoking grant", clientID, err)
		return
	}
	s.audit(r, auditGrantRevoke, clientID, actorUser, "", []zap.Field{zap.String("subject", user)})
	if r.Method == http.MethodPost {
		http.Redirect(w, r, s.cfg.GrantsPath, http.StatusSeeOther)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}
