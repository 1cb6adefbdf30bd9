package caddydcr

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-dcr/caddy-dcr/internal/handlers"
	"github.com/caddy-dcr/caddy-dcr/storage"
)

// adminEnv is a provisioned dcr handler on a Badger store of its own and
// the admin API in front of it, with a registry of its own.
type adminEnv struct {
	t     *testing.T
	api   *AdminAPI
	h     *Handler
	store string
}

func newAdminEnv(t *testing.T) *adminEnv {
	t.Helper()
	saved := servers
	servers = &registry{byStore: map[string][]*handlers.Server{}}
	t.Cleanup(func() { servers = saved })
	e := &adminEnv{t: t, api: &AdminAPI{}}
	e.h, _ = e.handler(filepath.Join(t.TempDir(), "db"))
	e.store = storage.NameOf(e.h.server.Store())
	return e
}

// handler provisions one more dcr handler on the Badger store in dir, and
// returns it with the function that unloads it.
func (e *adminEnv) handler(dir string) (*Handler, func()) {
	e.t.Helper()
	h := &Handler{StorageRaw: storageJSON(dir), Issuer: "https://auth.example"}
	unload, err := provision(e.t, h)
	if err != nil {
		e.t.Fatal(err)
	}
	return h, unload
}

// do sends a request to the admin API and returns the status and the JSON
// body, with errors encoded as Caddy's admin endpoint encodes them.
func (e *adminEnv) do(method, target, body string) (int, map[string]any) {
	e.t.Helper()
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	w := httptest.NewRecorder()
	if err := e.api.serve(w, r); err != nil {
		var apiErr caddy.APIError
		if !errors.As(err, &apiErr) {
			e.t.Fatalf("%s %s: not an APIError: %v", method, target, err)
		}
		return apiErr.HTTPStatus, map[string]any{"error": apiErr.Err.Error()}
	}
	var m map[string]any
	if w.Body.Len() > 0 {
		if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
			e.t.Fatalf("%s %s: body is not JSON: %s", method, target, w.Body)
		}
		if w.Header().Get("Cache-Control") != "no-store" {
			e.t.Errorf("%s %s: Cache-Control %q", method, target, w.Header().Get("Cache-Control"))
		}
	}
	return w.Code, m
}

// token asks the dcr handler for a client_credentials token and returns
// the status.
func (e *adminEnv) token(id, secret string) int {
	e.t.Helper()
	r := httptest.NewRequest("POST", "https://auth.example/oauth/token", strings.NewReader("grant_type=client_credentials"))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.SetBasicAuth(id, secret)
	w := httptest.NewRecorder()
	if err := e.h.ServeHTTP(w, r, nil); err != nil {
		e.t.Fatal(err)
	}
	return w.Code
}

func (e *adminEnv) clientCount() int {
	e.t.Helper()
	srv, err := servers.server(e.store)
	if err != nil {
		e.t.Fatal(err)
	}
	n, err := srv.Store().CountClients(e.t.Context())
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

func TestAdminClientLifecycle(t *testing.T) {
	e := newAdminEnv(t)

	status, created := e.do("POST", "/dcr/clients", `{"client_name":"nightly job","grant_types":["client_credentials"]}`)
	if status != http.StatusCreated {
		t.Fatalf("create: %d %v", status, created)
	}
	id, secret := created["client_id"].(string), created["client_secret"].(string)
	if id == "" || secret == "" || created["public"] != false {
		t.Fatalf("create answered %v", created)
	}
	if e.token(id, secret) != http.StatusOK {
		t.Fatal("the created client cannot get a token")
	}

	status, got := e.do("GET", "/dcr/clients/"+id, "")
	if status != http.StatusOK || got["client_secret"] != nil || got["registration_access_token"] != nil {
		t.Fatalf("get: %d %v", status, got)
	}
	if got["metadata"].(map[string]any)["client_name"] != "nightly job" {
		t.Errorf("get: metadata %v", got["metadata"])
	}

	status, rotated := e.do("POST", "/dcr/clients/"+id+"/rotate_secret", "")
	newSecret, _ := rotated["client_secret"].(string)
	if status != http.StatusOK || newSecret == "" || newSecret == secret || rotated["registration_access_token"] == nil {
		t.Fatalf("rotate: %d %v", status, rotated)
	}
	if e.token(id, secret) != http.StatusUnauthorized || e.token(id, newSecret) != http.StatusOK {
		t.Error("after rotation the old secret must fail and the new one work")
	}

	if status, m := e.do("DELETE", "/dcr/clients/"+id, ""); status != http.StatusNoContent {
		t.Fatalf("delete: %d %v", status, m)
	}
	if status, _ := e.do("GET", "/dcr/clients/"+id, ""); status != http.StatusNotFound {
		t.Errorf("get after delete: %d", status)
	}
	if status, _ := e.do("DELETE", "/dcr/clients/"+id, ""); status != http.StatusNotFound {
		t.Errorf("second delete: %d", status)
	}
	if e.token(id, newSecret) != http.StatusUnauthorized {
		t.Error("a deleted client still gets tokens")
	}
}

func TestAdminRefusesBadInputAndStoresNothing(t *testing.T) {
	e := newAdminEnv(t)
	for _, tc := range []struct {
		name, method, target, contentType, body string
		status                                  int
	}{
		{"metadata of a wrong type", "POST", "/dcr/clients", "application/json", `{"redirect_uris":"x"}`, 400},
		{"duplicate member", "POST", "/dcr/clients", "application/json", `{"client_name":"a","client_name":"b"}`, 400},
		{"not JSON", "POST", "/dcr/clients", "application/json", `{`, 400},
		{"invalid UTF-8", "POST", "/dcr/clients", "application/json", "{\"client_name\":\"\xff\"}", 400},
		{"huge array", "POST", "/dcr/clients", "application/json", `{"redirect_uris":[` + strings.Repeat(`"https://a.example/",`, 2000) + `"x"]}`, 400},
		{"settings of invalid UTF-8", "PATCH", "/dcr/clients/x", "application/json", "{\"scope\":\"\xff\"}", 400},
		{"settings as a form", "PATCH", "/dcr/clients/x", "application/x-www-form-urlencoded", "disabled=true", 415},
		{"token of a wrong type", "POST", "/dcr/initial_access_tokens", "application/json", `{"max_uses":"3"}`, 400},
		{"form body", "POST", "/dcr/clients", "application/x-www-form-urlencoded", `client_name=x`, 415},
		{"huge body", "POST", "/dcr/clients", "application/json", `{"client_name":"` + strings.Repeat("a", maxAdminBody) + `"}`, 413},
		{"bad limit", "GET", "/dcr/clients?limit=0", "", "", 400},
		{"too many ids", "GET", "/dcr/clients?ids=" + strings.Repeat("a,", maxIDsPerCall+1), "", "", 400},
		{"grants without subject", "GET", "/dcr/grants", "", "", 400},
		{"method", "PUT", "/dcr/clients", "", "", 405},
		{"unknown route", "GET", "/dcr/nothing", "", "", 404},
		{"unknown store", "GET", "/dcr/clients?store=badger:/nowhere", "", "", 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, tc.target, strings.NewReader(tc.body))
			if tc.contentType != "" {
				r.Header.Set("Content-Type", tc.contentType)
			}
			err := e.api.serve(httptest.NewRecorder(), r)
			var apiErr caddy.APIError
			if !errors.As(err, &apiErr) || apiErr.HTTPStatus != tc.status || apiErr.Err == nil {
				t.Fatalf("got %v, want a %d", err, tc.status)
			}
		})
	}
	if n := e.clientCount(); n != 0 {
		t.Errorf("%d clients stored by refused requests", n)
	}
}

func TestAdminListsClientsPageByPage(t *testing.T) {
	e := newAdminEnv(t)
	ids := map[string]bool{}
	for _, name := range []string{"alpha", "beta", "gamma", "Alpine"} {
		_, m := e.do("POST", "/dcr/clients", `{"client_name":"`+name+`","grant_types":["client_credentials"]}`)
		ids[m["client_id"].(string)] = true
	}
	seen := map[string]bool{}
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 4 {
			t.Fatal("the listing does not end")
		}
		status, m := e.do("GET", "/dcr/clients?limit=3&cursor="+url.QueryEscape(cursor), "")
		if status != http.StatusOK {
			t.Fatalf("list: %d %v", status, m)
		}
		for _, c := range m["clients"].([]any) {
			seen[c.(map[string]any)["client_id"].(string)] = true
		}
		next, _ := m["next_cursor"].(string)
		if next == "" {
			break
		}
		cursor = next
	}
	if len(seen) != len(ids) {
		t.Errorf("paging saw %d clients, want %d", len(seen), len(ids))
	}

	_, m := e.do("GET", "/dcr/clients?q=ALP", "")
	if n := len(m["clients"].([]any)); n != 2 {
		t.Errorf("q=ALP found %d clients, want 2 (alpha, Alpine)", n)
	}

	some := []string{}
	for id := range ids {
		some = append(some, id)
	}
	_, m = e.do("GET", "/dcr/clients?ids="+some[0]+","+some[1]+",missing", "")
	if len(m["clients"].([]any)) != 2 || len(m["missing"].([]any)) != 1 || m["missing"].([]any)[0] != "missing" {
		t.Errorf("by ids: %v", m)
	}
}

func TestAdminRevokesGrants(t *testing.T) {
	e := newAdminEnv(t)
	_, m := e.do("POST", "/dcr/clients", `{"redirect_uris":["https://app.example/cb"],"token_endpoint_auth_method":"none"}`)
	id := m["client_id"].(string)
	srv, _ := servers.server("")
	subject := "alice/smith@example.com" // a subject may hold a slash
	if _, err := srv.Store().RecordGrant(t.Context(), &storage.Grant{ID: "g1", Subject: subject, ClientID: id, Scope: "read", CreatedAt: 1, UpdatedAt: 1}); err != nil {
		t.Fatal(err)
	}
	status, m := e.do("GET", "/dcr/grants?subject="+url.QueryEscape(subject), "")
	if status != http.StatusOK || len(m["grants"].([]any)) != 1 || m["grants"].([]any)[0].(map[string]any)["client_id"] != id {
		t.Fatalf("grants: %d %v", status, m)
	}
	target := "/dcr/grants/" + url.PathEscape(subject) + "/" + id
	if status, m := e.do("DELETE", target, ""); status != http.StatusNoContent {
		t.Fatalf("revoke: %d %v", status, m)
	}
	if status, _ := e.do("DELETE", target, ""); status != http.StatusNotFound {
		t.Errorf("second revoke: %d", status)
	}
	if revoked, _ := srv.Store().Revoked(t.Context(), "", "", "", "g1"); !revoked {
		t.Error("the grant's tokens are not revoked")
	}
}

func TestAdminNeedsAStoreNameWhenThereAreSeveral(t *testing.T) {
	e := newAdminEnv(t)
	other, unload := e.handler(filepath.Join(t.TempDir(), "other"))
	otherName := storage.NameOf(other.server.Store())
	if !strings.HasPrefix(otherName, "badger:") || otherName == e.store {
		t.Fatalf("the stores are named %q and %q", e.store, otherName)
	}
	status, m := e.do("GET", "/dcr/clients", "")
	if status != http.StatusBadRequest || !strings.Contains(m["error"].(string), "?store=") {
		t.Fatalf("no store named: %d %v", status, m)
	}
	status, m = e.do("GET", "/dcr/stores", "")
	if status != http.StatusOK || len(m["stores"].([]any)) != 2 {
		t.Fatalf("stores: %d %v", status, m)
	}
	status, m = e.do("POST", "/dcr/clients?store="+url.QueryEscape(otherName), `{"grant_types":["client_credentials"]}`)
	if status != http.StatusCreated {
		t.Fatalf("create in the named store: %d %v", status, m)
	}
	if n := e.clientCount(); n != 0 {
		t.Errorf("the client went to the other store")
	}
	// Unloading a handler's config takes it out of reach (once the
	// context's AfterFunc ran).
	unload()
	for deadline := time.Now().Add(10 * time.Second); len(servers.stores()) != 1; {
		if time.Now().After(deadline) {
			t.Fatalf("the unloaded handler is still reachable: %v", servers.stores())
		}
		runtime.Gosched()
	}
	if status, _ := e.do("GET", "/dcr/clients", ""); status != http.StatusOK {
		t.Errorf("one store left, none named: %d", status)
	}
}

func TestAdminPatchesClientSettings(t *testing.T) {
	e := newAdminEnv(t)
	_, m := e.do("POST", "/dcr/clients", `{"grant_types":["client_credentials"]}`)
	id := m["client_id"].(string)
	if m["origin"] != "operator" || m["reapable"] != false {
		t.Errorf("an operator's client: origin %v, reapable %v", m["origin"], m["reapable"])
	}
	settings := func() map[string]any {
		t.Helper()
		status, m := e.do("GET", "/dcr/clients/"+id, "")
		if status != http.StatusOK {
			t.Fatalf("get: %d %v", status, m)
		}
		return m["settings"].(map[string]any)
	}

	status, m := e.do("PATCH", "/dcr/clients/"+id, `{"disabled":true,"access_token_ttl":"2h","refresh_token_ttl":86400,"scope":"read read write","keep":false}`)
	if status != http.StatusOK {
		t.Fatalf("patch: %d %v", status, m)
	}
	want := map[string]any{"disabled": true, "access_token_ttl": float64(7200), "refresh_token_ttl": float64(86400), "scope": "read write", "keep": false}
	got := settings()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("after the patch, %s = %v, want %v", k, got[k], v)
		}
	}
	// Members left out keep their values; null keep is "by origin".
	if status, m := e.do("PATCH", "/dcr/clients/"+id, `{"disabled":false,"keep":null}`); status != http.StatusOK {
		t.Fatalf("second patch: %d %v", status, m)
	}
	got = settings()
	if got["disabled"] != nil || got["keep"] != nil || got["access_token_ttl"] != float64(7200) {
		t.Errorf("after the second patch: %v", got)
	}

	for _, body := range []string{
		`{"access_token_ttl":"48h"}`, `{"access_token_ttl":-1}`, `{"access_token_ttl":"1.5s"}`, `{"refresh_token_ttl":1e12}`,
		`{"disabled":"yes"}`, `{"disabled":null}`, `{"scope":"a\"b"}`, `{"colour":"blue"}`, `{"disabled":true,"disabled":false}`,
		`[]`, `{"access_token_ttl":60,"keep":1}`,
	} {
		if status, m := e.do("PATCH", "/dcr/clients/"+id, body); status != http.StatusBadRequest {
			t.Errorf("patch %s: %d %v, want 400", body, status, m)
		}
	}
	if got := settings(); got["access_token_ttl"] != float64(7200) {
		t.Errorf("a refused patch changed the settings: %v", got)
	}
	if status, _ := e.do("PATCH", "/dcr/clients/nobody", `{"disabled":true}`); status != http.StatusNotFound {
		t.Errorf("patch of an unknown client: %d", status)
	}
}

func TestAdminManagesInitialAccessTokens(t *testing.T) {
	e := newAdminEnv(t)
	status, m := e.do("POST", "/dcr/initial_access_tokens", `{"ttl":"1h","max_uses":2,"description":"for CI"}`)
	if status != http.StatusCreated {
		t.Fatalf("create: %d %v", status, m)
	}
	id, token := m["id"].(string), m["token"].(string)
	if id == "" || len(token) < 40 || m["max_uses"] != float64(2) || m["uses"] != float64(0) ||
		m["expires_at"].(float64)-m["created_at"].(float64) != 3600 {
		t.Fatalf("create answered %v", m)
	}
	if status, m := e.do("POST", "/dcr/initial_access_tokens", ""); status != http.StatusCreated ||
		m["expires_at"].(float64)-m["created_at"].(float64) != handlers.DefaultInitialAccessTokenTTL.Seconds() {
		t.Fatalf("create with defaults: %d %v", status, m)
	}
	for _, body := range []string{`{"ttl":"soon"}`, `{"max_uses":-1}`, `{"max_uses":1.5}`, `{"uses":3}`,
		`{"description":"` + strings.Repeat("x", 201) + `"}`, `{"ttl":1,"ttl":2}`} {
		if status, m := e.do("POST", "/dcr/initial_access_tokens", body); status != http.StatusBadRequest {
			t.Errorf("create %s: %d %v, want 400", body, status, m)
		}
	}

	status, m = e.do("GET", "/dcr/initial_access_tokens", "")
	list := m["initial_access_tokens"].([]any)
	if status != http.StatusOK || len(list) != 2 {
		t.Fatalf("list: %d %v", status, m)
	}
	for _, item := range list {
		v := item.(map[string]any)
		if v["token"] != nil || v["hash"] != nil {
			t.Errorf("the list shows a token's value or hash: %v", v)
		}
	}
	if status, m := e.do("DELETE", "/dcr/initial_access_tokens/"+id, ""); status != http.StatusNoContent {
		t.Fatalf("delete: %d %v", status, m)
	}
	if status, _ := e.do("DELETE", "/dcr/initial_access_tokens/"+id, ""); status != http.StatusNotFound {
		t.Errorf("second delete: %d", status)
	}
	if _, m := e.do("GET", "/dcr/initial_access_tokens", ""); len(m["initial_access_tokens"].([]any)) != 1 {
		t.Errorf("after delete: %v", m)
	}
}

// Operators rotating one client at once: each rotation either wins or is
// told to try again, and of the secrets handed out exactly one works.
func TestAdminConcurrentRotationsLeaveOneSecret(t *testing.T) {
	e := newAdminEnv(t)
	_, m := e.do("POST", "/dcr/clients", `{"grant_types":["client_credentials"]}`)
	id := m["client_id"].(string)
	const n = 8
	secrets := make([]string, n)
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			r := httptest.NewRequest("POST", "/dcr/clients/"+id+"/rotate_secret", nil)
			w := httptest.NewRecorder()
			err := e.api.serve(w, r)
			var apiErr caddy.APIError
			switch {
			case err == nil:
				var v map[string]any
				_ = json.Unmarshal(w.Body.Bytes(), &v)
				secrets[i], statuses[i] = v["client_secret"].(string), w.Code
			case errors.As(err, &apiErr):
				statuses[i] = apiErr.HTTPStatus
			}
		})
	}
	wg.Wait()
	working := 0
	for i := range n {
		switch statuses[i] {
		case http.StatusOK:
			if e.token(id, secrets[i]) == http.StatusOK {
				working++
			}
		case http.StatusConflict:
		default:
			t.Errorf("rotation %d: status %d", i, statuses[i])
		}
	}
	if working != 1 {
		t.Errorf("%d of the secrets handed out work, want exactly 1 (statuses %v)", working, statuses)
	}
}
