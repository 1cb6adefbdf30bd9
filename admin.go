package caddydcr

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-dcr/caddy-dcr/internal/handlers"
	"github.com/caddy-dcr/caddy-dcr/storage"
)

func init() {
	caddy.RegisterModule(AdminAPI{})
}

// AdminAPI is the admin.api.dcr module: routes under Caddy's admin
// endpoint (so on its listener, behind its access controls) to manage the
// clients, grants and initial access tokens of the dcr handlers' stores.
// Every answer, errors included, is JSON:
//
//	GET    /dcr/stores                             the stores dcr handlers use
//	GET    /dcr/clients?limit=&cursor=&q=&origin=  clients, a page at a time
//	GET    /dcr/clients?ids=a,b                    several clients by id
//	POST   /dcr/clients                            create one (RFC 7591 metadata)
//	GET    /dcr/clients/<id>                       one client
//	PATCH  /dcr/clients/<id>                       its operator settings
//	DELETE /dcr/clients/<id>                       delete it, revoking its tokens
//	POST   /dcr/clients/<id>/rotate_secret         new secret and registration token
//	POST   /dcr/initial_access_tokens              make one (ttl, max_uses, description)
//	GET    /dcr/initial_access_tokens              list them (never their values)
//	DELETE /dcr/initial_access_tokens/<id>         delete one
//	GET    /dcr/grants?subject=<subject>           a person's grants
//	DELETE /dcr/grants/<subject>/<client_id>       revoke one, with its tokens
//
// Where dcr handlers use several stores, a store query parameter (a name
// from /dcr/stores) says which; with one store it may be left out.
//
// Its writes are audited by the handler that makes them (the dcr.audit
// log), with the operator as the actor.
type AdminAPI struct{}

// CaddyModule returns the Caddy module information.
func (AdminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.dcr",
		New: func() caddy.Module { return new(AdminAPI) },
	}
}

// Routes returns the admin routes. Caddy loads admin modules before the
// apps of a config, so the dcr handlers are not there yet: a request
// finds them in servers when it comes.
func (a *AdminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{Pattern: adminPrefix, Handler: caddy.AdminHandlerFunc(a.serve)}}
}

const adminPrefix = "/dcr/"

// Bounds of the admin API's requests.
const (
	maxAdminBody  = 64 << 10
	defaultLimit  = 100
	maxLimit      = 1000
	maxIDsPerCall = 100
)

// serve routes a request below /dcr/. Path segments are unescaped one by
// one, so a subject holding "/" is sent as %2F.
func (a *AdminAPI) serve(w http.ResponseWriter, r *http.Request) error {
	var segs []string
	for _, raw := range strings.Split(strings.TrimPrefix(r.URL.EscapedPath(), adminPrefix), "/") {
		seg, err := url.PathUnescape(raw)
		if err != nil {
			return apiError(http.StatusBadRequest, fmt.Errorf("malformed path: %w", err))
		}
		segs = append(segs, seg)
	}
	if segs[0] == "stores" && len(segs) == 1 {
		if err := allow(r, http.MethodGet); err != nil {
			return err
		}
		return writeAdminJSON(w, http.StatusOK, map[string]any{"stores": servers.stores()})
	}
	srv, err := servers.server(r.URL.Query().Get("store"))
	if err != nil {
		return err
	}
	switch {
	case segs[0] == "clients" && len(segs) == 1:
		switch r.Method {
		case http.MethodGet:
			return a.listClients(w, r, srv)
		case http.MethodPost:
			return a.createClient(w, r, srv)
		}
		return allow(r, http.MethodGet, http.MethodPost)
	case segs[0] == "clients" && len(segs) == 2 && segs[1] != "":
		return a.client(w, r, srv, segs[1])
	case segs[0] == "clients" && len(segs) == 3 && segs[1] != "" && segs[2] == "rotate_secret":
		if err := allow(r, http.MethodPost); err != nil {
			return err
		}
		v, err := srv.RotateClient(r, segs[1])
		if err != nil {
			return storeError(err, "rotating the client's credentials")
		}
		return writeAdminJSON(w, http.StatusOK, v)
	case segs[0] == "grants" && len(segs) == 1:
		if err := allow(r, http.MethodGet); err != nil {
			return err
		}
		subject := r.URL.Query().Get("subject")
		if subject == "" {
			return apiError(http.StatusBadRequest, errors.New("subject is required"))
		}
		grants, err := srv.Store().Grants(r.Context(), subject)
		if err != nil {
			return storeError(err, "listing grants")
		}
		return writeAdminJSON(w, http.StatusOK, map[string]any{"grants": handlers.GrantViews(grants)})
	case segs[0] == "grants" && len(segs) == 3 && segs[1] != "" && segs[2] != "":
		if err := allow(r, http.MethodDelete); err != nil {
			return err
		}
		if err := srv.RevokeGrant(r, segs[1], segs[2]); err != nil {
			return storeError(err, "revoking the grant")
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	return a.serveMore(w, r, srv, segs)
}

// client serves GET and DELETE /dcr/clients/<id>.
func (a *AdminAPI) client(w http.ResponseWriter, r *http.Request, srv *handlers.Server, id string) error {
	switch r.Method {
	case http.MethodGet:
		c, err := srv.Store().Client(r.Context(), id)
		if err != nil {
			return storeError(err, "reading the client")
		}
		return writeAdminJSON(w, http.StatusOK, handlers.NewClientView(c))
	case http.MethodDelete:
		if err := srv.DeleteClient(r, id); err != nil {
			return storeError(err, "deleting the client")
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	return a.patchClient(w, r, srv, id)
}

// listClients serves GET /dcr/clients: by ids, or a page of a listing.
func (a *AdminAPI) listClients(w http.ResponseWriter, r *http.Request, srv *handlers.Server) error {
	q := r.URL.Query()
	if q.Has("ids") {
		ids := strings.Split(q.Get("ids"), ",")
		if len(ids) > maxIDsPerCall {
			return apiError(http.StatusBadRequest, fmt.Errorf("at most %d ids at a time", maxIDsPerCall))
		}
		views, missing := []*handlers.ClientView{}, []string{}
		for _, id := range ids {
			if id == "" {
				continue
			}
			c, err := srv.Store().Client(r.Context(), id)
			switch {
			case errors.Is(err, storage.ErrNotFound):
				missing = append(missing, id)
			case err != nil:
				return storeError(err, "reading clients")
			default:
				views = append(views, handlers.NewClientView(c))
			}
		}
		return writeAdminJSON(w, http.StatusOK, map[string]any{"clients": views, "missing": missing})
	}
	limit := defaultLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxLimit {
			return apiError(http.StatusBadRequest, fmt.Errorf("limit must be a number from 1 to %d", maxLimit))
		}
		limit = n
	}
	clients, next, err := srv.ListClients(r.Context(), q.Get("cursor"), limit, handlers.ClientFilter{Query: q.Get("q"), Origin: q.Get("origin")})
	if err != nil {
		return storeError(err, "listing clients")
	}
	views := make([]*handlers.ClientView, len(clients))
	for i, c := range clients {
		views[i] = handlers.NewClientView(c)
	}
	out := map[string]any{"clients": views}
	if next != "" {
		out["next_cursor"] = next
	}
	return writeAdminJSON(w, http.StatusOK, out)
}

// createClient serves POST /dcr/clients: the body is RFC 7591 metadata.
func (a *AdminAPI) createClient(w http.ResponseWriter, r *http.Request, srv *handlers.Server) error {
	body, err := readAdminBody(w, r)
	if err != nil {
		return err
	}
	v, err := srv.CreateClient(r, body)
	if err != nil {
		return storeError(err, "creating the client")
	}
	return writeAdminJSON(w, http.StatusCreated, v)
}

// allow answers 405 unless r's method is one of methods.
func allow(r *http.Request, methods ...string) error {
	for _, m := range methods {
		if r.Method == m {
			return nil
		}
	}
	return apiError(http.StatusMethodNotAllowed, fmt.Errorf("method %s is not allowed here; use %s", r.Method, strings.Join(methods, " or ")))
}

// readAdminBody reads a bounded JSON body.
func readAdminBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return nil, apiError(http.StatusUnsupportedMediaType, errors.New("Content-Type must be application/json"))
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxAdminBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, apiError(http.StatusRequestEntityTooLarge, fmt.Errorf("the body is larger than %d bytes", maxAdminBody))
		}
		return nil, apiError(http.StatusBadRequest, errors.New("reading the body failed"))
	}
	return body, nil
}

func apiError(status int, err error) error { return caddy.APIError{HTTPStatus: status, Err: err} }

// storeError maps what an operation returned to an admin API error: a
// refused request keeps its OAuth code and description, a missing record
// is 404, a store that is down 503, anything else 500 (logged by Caddy's
// admin endpoint, which never sees a secret here).
func storeError(err error, op string) error {
	var oe *handlers.Error
	switch {
	case errors.As(err, &oe):
		return apiError(oe.Status, oe)
	case errors.Is(err, storage.ErrNotFound):
		return apiError(http.StatusNotFound, errors.New("not found"))
	case errors.Is(err, storage.ErrConflict):
		return apiError(http.StatusConflict, fmt.Errorf("%s: changed concurrently; try again", op))
	case errors.Is(err, storage.ErrUnavailable):
		return apiError(http.StatusServiceUnavailable, fmt.Errorf("%s: %w", op, err))
	}
	return apiError(http.StatusInternalServerError, fmt.Errorf("%s: %w", op, err))
}

// writeAdminJSON sends v; answers may hold a secret shown once, so none
// is cached.
func writeAdminJSON(w http.ResponseWriter, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return apiError(http.StatusInternalServerError, fmt.Errorf("encoding the answer: %w", err))
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
	return nil
}

// serveMore serves the initial access token routes.
func (a *AdminAPI) serveMore(w http.ResponseWriter, r *http.Request, srv *handlers.Server, segs []string) error {
	switch {
	case segs[0] == "initial_access_tokens" && len(segs) == 1:
		switch r.Method {
		case http.MethodGet:
			list, err := srv.InitialAccessTokens(r.Context())
			if err != nil {
				return storeError(err, "listing initial access tokens")
			}
			return writeAdminJSON(w, http.StatusOK, map[string]any{"initial_access_tokens": list})
		case http.MethodPost:
			var body []byte
			if r.ContentLength != 0 {
				var err error
				if body, err = readAdminBody(w, r); err != nil {
					return err
				}
			}
			v, err := srv.CreateInitialAccessToken(r, body)
			if err != nil {
				return storeError(err, "creating the initial access token")
			}
			return writeAdminJSON(w, http.StatusCreated, v)
		}
		return allow(r, http.MethodGet, http.MethodPost)
	case segs[0] == "initial_access_tokens" && len(segs) == 2 && segs[1] != "":
		if err := allow(r, http.MethodDelete); err != nil {
			return err
		}
		if err := srv.DeleteInitialAccessToken(r, segs[1]); err != nil {
			return storeError(err, "deleting the initial access token")
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	return apiError(http.StatusNotFound, fmt.Errorf("no such route: %s", r.URL.Path))
}

// patchClient serves PATCH /dcr/clients/<id>: the operator's settings.
func (a *AdminAPI) patchClient(w http.ResponseWriter, r *http.Request, srv *handlers.Server, id string) error {
	if err := allow(r, http.MethodGet, http.MethodPatch, http.MethodDelete); err != nil {
		return err
	}
	body, err := readAdminBody(w, r)
	if err != nil {
		return err
	}
	v, err := srv.PatchClientSettings(r, id, body)
	if err != nil {
		return storeError(err, "changing the client's settings")
	}
	return writeAdminJSON(w, http.StatusOK, v)
}

// Interface guards
var (
	_ caddy.AdminRouter = (*AdminAPI)(nil)
)
