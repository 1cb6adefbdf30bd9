package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-dcr/caddy-dcr/storage"
	"github.com/caddy-dcr/caddy-dcr/storage/badger"
)

// fixedNow is where the test clock starts. It is the real time at start:
// Badger drops entries by their TTL on the wall clock, so a clock set in
// the past would see short-lived records (codes) vanish.
var fixedNow = time.Now().UTC().Truncate(time.Second)

type testServer struct {
	t     testing.TB
	srv   *Server
	store storage.Store
	// passed counts requests handed to the next handler; upstream is the
	// last request it saw.
	passed   int
	upstream *http.Request
	// clock is the server's time; tests move it.
	clock time.Time
}

// memStore returns an in-memory Badger store with the revocation view the
// module puts above every backend.
func memStore(t testing.TB) storage.Store {
	t.Helper()
	db, err := badger.Open("", badger.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	store, err := storage.NewCached(t.Context(), db, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	return store
}

func newTestServer(t testing.TB, cfg Config) *testServer {
	t.Helper()
	store := memStore(t)
	if cfg.RegistrationPath == "" {
		cfg.RegistrationPath = "/oauth/register"
	}
	ts := &testServer{t: t, store: store, clock: fixedNow}
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return ts.clock }
	}
	srv, err := New(t.Context(), store, cfg.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	ts.srv = srv
	return ts
}

// do sends a request and returns the recorder and the decoded JSON body
// (nil when the body is empty).
func (ts *testServer) do(method, target, token, contentType, body string) (*httptest.ResponseRecorder, map[string]any) {
	ts.t.Helper()
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	w := httptest.NewRecorder()
	if err := ts.srv.ServeHTTP(w, r, ts.next()); err != nil {
		ts.t.Fatalf("ServeHTTP returned %v", err)
	}
	return w, decodeBody(ts.t, w)
}

// next is the upstream behind the gate: it records what it received and
// answers 418, a status no dcr endpoint uses.
func (ts *testServer) next() caddyhttp.Handler {
	return caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		ts.passed++
		ts.upstream = r
		w.WriteHeader(http.StatusTeapot)
		return nil
	})
}

func decodeBody(t testing.TB, w *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	var m map[string]any
	if w.Body.Len() > 0 {
		if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
			t.Fatalf("body is not JSON: %v\n%s", err, w.Body)
		}
		assertNoNulls(t, m)
	}
	return m
}

func (ts *testServer) register(body string) map[string]any {
	ts.t.Helper()
	w, m := ts.do("POST", "/oauth/register", "", "application/json", body)
	if w.Code != http.StatusCreated {
		ts.t.Fatalf("register: %d %s", w.Code, w.Body)
	}
	return m
}

func assertNoNulls(t testing.TB, v any) {
	t.Helper()
	switch v := v.(type) {
	case nil:
		t.Fatal("response holds a JSON null")
	case map[string]any:
		for _, e := range v {
			assertNoNulls(t, e)
		}
	case []any:
		for _, e := range v {
			assertNoNulls(t, e)
		}
	}
}

// assertOAuthJSON checks the headers every registration and configuration
// response carries, and the error code when want is not "".
func assertOAuthJSON(t *testing.T, w *httptest.ResponseRecorder, m map[string]any, status int, wantErr string) {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status %d, want %d: %s", w.Code, status, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	if w.Header().Get("Cache-Control") != "no-store" || w.Header().Get("Pragma") != "no-cache" {
		t.Errorf("caching headers: %v", w.Header())
	}
	if wantErr != "" {
		if m["error"] != wantErr {
			t.Fatalf("error %v, want %s", m["error"], wantErr)
		}
		if d, _ := m["error_description"].(string); d == "" {
			t.Errorf("no error_description")
		}
	}
}

func TestRegisterConfidentialClient(t *testing.T) {
	ts := newTestServer(t, Config{ClientSecretTTL: time.Hour})
	w, m := ts.do("POST", "/oauth/register", "", "application/json; charset=utf-8",
		`{"redirect_uris":["https://app.example/cb"],"client_name":"App","contacts":["a@app.example"],"x_tier":"gold","id_token_signed_response_alg":"ES256","response_types":null}`)
	assertOAuthJSON(t, w, m, http.StatusCreated, "")

	id, _ := m["client_id"].(string)
	secret, _ := m["client_secret"].(string)
	token, _ := m["registration_access_token"].(string)
	for name, v := range map[string]string{"client_id": id, "client_secret": secret, "registration_access_token": token} {
		if v == "" || strings.Trim(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~") != "" {
			t.Errorf("%s %q is not made of unreserved characters", name, v)
		}
	}
	if len(secret) < 43 || len(token) < 43 {
		t.Errorf("secrets shorter than 256 bits: %d, %d characters", len(secret), len(token))
	}
	if m["client_id_issued_at"] != float64(fixedNow.Unix()) ||
		m["client_secret_expires_at"] != float64(fixedNow.Add(time.Hour).Unix()) {
		t.Errorf("timestamps: %v %v", m["client_id_issued_at"], m["client_secret_expires_at"])
	}
	if m["registration_client_uri"] != "http://example.com/oauth/register/"+id {
		t.Errorf("registration_client_uri %v", m["registration_client_uri"])
	}
	if m["token_endpoint_auth_method"] != "client_secret_basic" || m["id_token_signed_response_alg"] != "ES256" || m["client_name"] != "App" {
		t.Errorf("metadata not echoed: %v", m)
	}
	// RFC 7591 §2: a member the server does not understand is ignored.
	if _, ok := m["x_tier"]; ok {
		t.Errorf("unknown member echoed: %v", m)
	}
	if g, _ := m["grant_types"].([]any); len(g) != 1 || g[0] != "authorization_code" {
		t.Errorf("grant_types %v", m["grant_types"])
	}
	if rt, _ := m["response_types"].([]any); len(rt) != 1 || rt[0] != "code" {
		t.Errorf("response_types %v", m["response_types"])
	}

	// Only hashes are stored.
	c, err := ts.store.Client(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(c)
	if bytes.Contains(raw, []byte(secret)) || bytes.Contains(raw, []byte(token)) {
		t.Fatal("a plaintext secret reached the store")
	}
	if !bytes.Equal(c.SecretHash, storage.HashSecret(secret)) {
		t.Fatal("stored secret hash does not match")
	}
}

func TestRegisterPublicClient(t *testing.T) {
	ts := newTestServer(t, Config{})
	m := ts.register(`{"token_endpoint_auth_method":"none","redirect_uris":["http://127.0.0.1:51234/callback"]}`)
	if _, ok := m["client_secret"]; ok {
		t.Error("public client got a secret")
	}
	if _, ok := m["client_secret_expires_at"]; ok {
		t.Error("public client got client_secret_expires_at")
	}
	m = ts.register(`{"grant_types":["client_credentials"]}`)
	if ru, ok := m["redirect_uris"].([]any); !ok || len(ru) != 0 {
		t.Errorf("redirect_uris must be [] for a client with none: %v", m["redirect_uris"])
	}
}

func TestRegisterRefusals(t *testing.T) {
	ts := newTestServer(t, Config{MaxBodyBytes: 1024})
	cases := []struct {
		name, method, ctype, body string
		status                    int
		code                      string
	}{
		{"wrong method", "GET", "", "", 405, "invalid_request"},
		{"text body", "POST", "text/plain", `{}`, 400, "invalid_client_metadata"},
		{"form body", "POST", "application/x-www-form-urlencoded", `a=b`, 400, "invalid_client_metadata"},
		{"no content type", "POST", "", `{}`, 400, "invalid_client_metadata"},
		{"too large", "POST", "application/json", `{"client_name":"` + strings.Repeat("a", 2000) + `"}`, 413, "invalid_request"},
		{"bad redirect", "POST", "application/json", `{"redirect_uris":["http://evil.example/cb"]}`, 400, "invalid_redirect_uri"},
		{"bad json", "POST", "application/json", `{`, 400, "invalid_client_metadata"},
		{"software statement", "POST", "application/json", `{"software_statement":"x.y"}`, 400, "invalid_software_statement"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w, m := ts.do(tc.method, "/oauth/register", "", tc.ctype, tc.body)
			assertOAuthJSON(t, w, m, tc.status, tc.code)
			if tc.status == 405 && w.Header().Get("Allow") != "POST, OPTIONS" {
				t.Errorf("Allow %q", w.Header().Get("Allow"))
			}
		})
	}
	if list, _, _ := ts.store.Clients(t.Context(), "", 10); len(list) != 0 {
		t.Fatalf("refused requests stored %d clients", len(list))
	}
}

func TestRegisterPreflight(t *testing.T) {
	ts := newTestServer(t, Config{})
	w, _ := ts.do("OPTIONS", "/oauth/register", "", "", "")
	if w.Code != http.StatusNoContent || w.Header().Get("Access-Control-Allow-Origin") != "*" ||
		!strings.Contains(w.Header().Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Fatalf("preflight: %d %v", w.Code, w.Header())
	}
}

func TestInitialAccessToken(t *testing.T) {
	ts := newTestServer(t, Config{InitialAccessTokens: []string{"first-token", "second-token"}})
	body := `{"grant_types":["client_credentials"]}`
	for _, token := range []string{"", "wrong", "first-token-x"} {
		w, m := ts.do("POST", "/oauth/register", token, "application/json", body)
		assertOAuthJSON(t, w, m, http.StatusUnauthorized, "invalid_token")
		if w.Header().Get("WWW-Authenticate") != `Bearer error="invalid_token"` {
			t.Errorf("token %q: WWW-Authenticate %q", token, w.Header().Get("WWW-Authenticate"))
		}
	}
	if list, _, _ := ts.store.Clients(t.Context(), "", 10); len(list) != 0 {
		t.Fatalf("unauthorized registrations stored %d clients", len(list))
	}
	for _, token := range []string{"first-token", "second-token"} {
		w, _ := ts.do("POST", "/oauth/register", token, "application/json", body)
		if w.Code != http.StatusCreated {
			t.Fatalf("token %q: %d %s", token, w.Code, w.Body)
		}
	}
}

func TestClientConfiguration(t *testing.T) {
	ts := newTestServer(t, Config{ScopesSupported: []string{"read", "write"}})
	m := ts.register(`{"redirect_uris":["https://app.example/cb"],"client_name":"App","scope":"read","subject_type":"public","x_drop":1}`)
	id, secret, token := m["client_id"].(string), m["client_secret"].(string), m["registration_access_token"].(string)
	uri := "/oauth/register/" + id
	other := ts.register(`{"grant_types":["client_credentials"]}`)
	otherToken := other["registration_access_token"].(string)

	t.Run("read", func(t *testing.T) {
		w, got := ts.do("GET", uri, token, "", "")
		assertOAuthJSON(t, w, got, http.StatusOK, "")
		if got["client_id"] != id || got["client_name"] != "App" || got["scope"] != "read" || got["subject_type"] != "public" || got["x_drop"] != nil {
			t.Fatalf("read back %v", got)
		}
		if _, ok := got["client_secret"]; ok {
			t.Error("GET echoed a secret")
		}
		if got["client_secret_expires_at"] != float64(0) {
			t.Error("client_secret_expires_at missing")
		}
	})

	t.Run("refusals reveal nothing", func(t *testing.T) {
		for _, tc := range []struct{ name, target, token string }{
			{"no token", uri, ""},
			{"wrong token", uri, "nope"},
			{"another client's token", uri, otherToken},
			{"unknown client", "/oauth/register/unknown", token},
			{"unknown client and token", "/oauth/register/unknown", "nope"},
		} {
			w, got := ts.do("GET", tc.target, tc.token, "", "")
			assertOAuthJSON(t, w, got, http.StatusUnauthorized, "invalid_token")
			if got["error_description"] != "the registration access token is not valid for this client" && tc.token != "" {
				t.Errorf("%s: description %v", tc.name, got["error_description"])
			}
			if w.Header().Get("WWW-Authenticate") == "" {
				t.Errorf("%s: no challenge", tc.name)
			}
		}
	})

	t.Run("update", func(t *testing.T) {
		// Wrong client_id or secret change nothing.
		w, got := ts.do("PUT", uri, token, "application/json", `{"client_id":"other","redirect_uris":["https://app.example/cb"]}`)
		assertOAuthJSON(t, w, got, http.StatusBadRequest, "invalid_request")
		w, got = ts.do("PUT", uri, token, "application/json", `{"redirect_uris":["https://app.example/cb"]}`)
		assertOAuthJSON(t, w, got, http.StatusBadRequest, "invalid_request")
		w, got = ts.do("PUT", uri, token, "application/json", `{"client_id":"`+id+`","client_secret":"guess","redirect_uris":["https://app.example/cb"]}`)
		assertOAuthJSON(t, w, got, http.StatusBadRequest, "invalid_request")
		w, got = ts.do("PUT", uri, token, "application/json", `{"client_id":"`+id+`","redirect_uris":["http://evil.example/cb"]}`)
		assertOAuthJSON(t, w, got, http.StatusBadRequest, "invalid_redirect_uri")
		w, got = ts.do("PUT", uri, token, "application/json", `{"client_id":"`+id+`","redirect_uris":["https://app.example/cb"],"scope":"admin"}`)
		assertOAuthJSON(t, w, got, http.StatusBadRequest, "invalid_client_metadata")
		if c, _ := ts.store.Client(t.Context(), id); c.Metadata.ClientName != "App" {
			t.Fatalf("refused update changed the client: %+v", c.Metadata)
		}

		// A full replacement: omitted members go back to defaults;
		// server-set members sent back are ignored.
		w, got = ts.do("PUT", uri, token, "application/json", `{"client_id":"`+id+`","client_secret":"`+secret+`",
			"registration_access_token":"x","client_id_issued_at":5,"redirect_uris":["https://app.example/new"],"client_name":"App 2"}`)
		assertOAuthJSON(t, w, got, http.StatusOK, "")
		if got["client_name"] != "App 2" || got["scope"] != "read write" || got["x_keep"] != nil || got["client_id_issued_at"] != float64(fixedNow.Unix()) {
			t.Fatalf("after update: %v", got)
		}
		if _, ok := got["client_secret"]; ok {
			t.Error("update echoed a secret it did not issue")
		}
		// The secret still works for comparison.
		c, _ := ts.store.Client(t.Context(), id)
		if !bytes.Equal(c.SecretHash, storage.HashSecret(secret)) {
			t.Fatal("update changed the secret")
		}
	})

	t.Run("rotate", func(t *testing.T) {
		w, got := ts.do("POST", uri+"/rotate_secret", token, "", "")
		assertOAuthJSON(t, w, got, http.StatusOK, "")
		newSecret, newToken := got["client_secret"].(string), got["registration_access_token"].(string)
		if newSecret == "" || newSecret == secret || newToken == "" || newToken == token {
			t.Fatalf("rotation: %v", got)
		}
		w, got = ts.do("GET", uri, token, "", "")
		assertOAuthJSON(t, w, got, http.StatusUnauthorized, "invalid_token")
		c, _ := ts.store.Client(t.Context(), id)
		if !bytes.Equal(c.SecretHash, storage.HashSecret(newSecret)) {
			t.Fatal("new secret not stored")
		}
		token = newToken
		w, _ = ts.do("GET", uri+"/rotate_secret", token, "", "")
		if w.Code != http.StatusMethodNotAllowed {
			t.Fatalf("GET rotate_secret: %d", w.Code)
		}
	})

	t.Run("public client becomes confidential", func(t *testing.T) {
		pm := ts.register(`{"token_endpoint_auth_method":"none","redirect_uris":["http://localhost/cb"]}`)
		pid, ptoken := pm["client_id"].(string), pm["registration_access_token"].(string)
		w, got := ts.do("PUT", "/oauth/register/"+pid, ptoken, "application/json",
			`{"client_id":"`+pid+`","redirect_uris":["http://localhost/cb"]}`)
		assertOAuthJSON(t, w, got, http.StatusOK, "")
		if s, _ := got["client_secret"].(string); s == "" || got["token_endpoint_auth_method"] != "client_secret_basic" {
			t.Fatalf("no secret issued on becoming confidential: %v", got)
		}
	})

	t.Run("delete", func(t *testing.T) {
		w, _ := ts.do("DELETE", uri, otherToken, "", "")
		if w.Code != http.StatusUnauthorized {
			t.Fatalf("delete with another client's token: %d", w.Code)
		}
		w, _ = ts.do("DELETE", uri, token, "", "")
		if w.Code != http.StatusNoContent || w.Body.Len() != 0 || w.Header().Get("Cache-Control") != "no-store" {
			t.Fatalf("delete: %d %q %v", w.Code, w.Body, w.Header())
		}
		w, got := ts.do("GET", uri, token, "", "")
		assertOAuthJSON(t, w, got, http.StatusUnauthorized, "invalid_token")
		if _, err := ts.store.Client(t.Context(), id); err == nil {
			t.Fatal("client survived delete")
		}
	})

	t.Run("methods", func(t *testing.T) {
		w, got := ts.do("PATCH", "/oauth/register/"+other["client_id"].(string), otherToken, "application/json", `{}`)
		assertOAuthJSON(t, w, got, http.StatusMethodNotAllowed, "invalid_request")
		if w.Header().Get("Allow") != "GET, PUT, DELETE, OPTIONS" {
			t.Errorf("Allow %q", w.Header().Get("Allow"))
		}
	})
}

// unavailableStore is a store whose backend is down.
type unavailableStore struct{ storage.Store }

func (unavailableStore) CreateClient(context.Context, *storage.Client) error {
	return fmt.Errorf("registering: %w", storage.ErrUnavailable)
}

func (unavailableStore) Client(context.Context, string) (*storage.Client, error) {
	return nil, fmt.Errorf("reading: %w", storage.ErrUnavailable)
}

// With the database down, the endpoints answer 503 with Retry-After,
// never 500 and never a hang.
func TestUnavailableStoreIs503(t *testing.T) {
	ts := newTestServer(t, Config{})
	id, secret := ts.machineClient("")
	ts.srv.store = unavailableStore{ts.store}
	w, m := ts.do("POST", "/oauth/register", "", "application/json", `{"grant_types":["client_credentials"]}`)
	assertOAuthJSON(t, w, m, http.StatusServiceUnavailable, "server_error")
	if w.Header().Get("Retry-After") == "" {
		t.Fatal("no Retry-After")
	}
	w, m = ts.form("/oauth/token", id, secret, url.Values{"grant_type": {"client_credentials"}})
	assertOAuthJSON(t, w, m, http.StatusServiceUnavailable, "server_error")
}

// The authorization endpoint and the grants list with the store down:
// 503, not "not registered" or a 500.
func TestUnavailableStorePages(t *testing.T) {
	ts := newTestServer(t, Config{})
	_, params := ts.publicClient("")
	ts.srv.store = unavailableStore{ts.store}
	if w := ts.authorize("GET", params, "alice"); w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
		t.Fatalf("authorize with the store down: %d", w.Code)
	}
}

// A client registered when every unknown member was kept still reads back
// what it sent (nothing is migrated), but an RFC 7592 update, which
// replaces the metadata whole, keeps only the members the server
// understands (RFC 7591 §2).
func TestUpdateDropsUnknownMetadata(t *testing.T) {
	ts := newTestServer(t, Config{})
	m := ts.register(`{"redirect_uris":["https://app.example/cb"],"client_name":"App"}`)
	id, token := m["client_id"].(string), m["registration_access_token"].(string)
	// As stored before: a copy of the client, with the same token, that
	// kept unknown members.
	c, err := ts.store.Client(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	c.ID = "old-" + id
	c.Metadata.Extra = map[string]json.RawMessage{"dpop_bound_access_tokens": json.RawMessage(`true`), "x_tier": json.RawMessage(`"gold"`),
		"id_token_signed_response_alg": json.RawMessage(`"none"`), "subject_type": json.RawMessage(`"public"`)}
	if err := ts.store.CreateClient(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	uri := "/oauth/register/" + c.ID
	// Read, it shows only what is honoured: neither the unknown members
	// nor an algorithm its ID tokens are not signed with.
	w, got := ts.do("GET", uri, token, "", "")
	assertOAuthJSON(t, w, got, http.StatusOK, "")
	for _, name := range []string{"dpop_bound_access_tokens", "x_tier", "id_token_signed_response_alg"} {
		if _, ok := got[name]; ok {
			t.Errorf("read shows %s: %v", name, got)
		}
	}
	if got["subject_type"] != "public" {
		t.Errorf("read lost subject_type: %v", got)
	}

	// The client sends back what it read, as RFC 7592 §2.2 expects.
	delete(got, "registration_access_token")
	body, _ := json.Marshal(got)
	w, got = ts.do("PUT", uri, token, "application/json", string(body))
	assertOAuthJSON(t, w, got, http.StatusOK, "")
	for _, name := range []string{"dpop_bound_access_tokens", "x_tier"} {
		if _, ok := got[name]; ok {
			t.Errorf("update echoed %s: %v", name, got)
		}
	}
	stored, err := ts.store.Client(t.Context(), c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(stored.Metadata.Extra) != 1 || string(stored.Metadata.Extra["subject_type"]) != `"public"` {
		t.Fatalf("update stored %v; want only subject_type, which the client sent back", stored.Metadata.Extra)
	}

	// An understood member is kept; a value it cannot honour is refused
	// and changes nothing.
	w, got = ts.do("PUT", uri, token, "application/json",
		`{"client_id":"`+c.ID+`","redirect_uris":["https://app.example/cb"],"id_token_signed_response_alg":"HS256"}`)
	assertOAuthJSON(t, w, got, http.StatusBadRequest, "invalid_client_metadata")
	if stored, _ := ts.store.Client(t.Context(), c.ID); stored.Metadata.ClientName != "App" {
		t.Fatalf("refused update changed the client: %+v", stored.Metadata)
	}
	w, got = ts.do("PUT", uri, token, "application/json",
		`{"client_id":"`+c.ID+`","redirect_uris":["https://app.example/cb"],"id_token_signed_response_alg":"ES256","x_new":1}`)
	assertOAuthJSON(t, w, got, http.StatusOK, "")
	if got["id_token_signed_response_alg"] != "ES256" || got["x_new"] != nil {
		t.Fatalf("update answered %v", got)
	}
}

// Registration refuses a value the server cannot honour for a member it
// understands, and stores nothing.
func TestRegisterRefusesUnhonourableExtension(t *testing.T) {
	ts := newTestServer(t, Config{})
	for _, body := range []string{
		`{"redirect_uris":["https://app.example/cb"],"id_token_signed_response_alg":"HS256"}`,
		`{"redirect_uris":["https://app.example/cb"],"subject_type":"pairwise"}`,
	} {
		w, m := ts.do("POST", "/oauth/register", "", "application/json", body)
		assertOAuthJSON(t, w, m, http.StatusBadRequest, "invalid_client_metadata")
	}
	w, m := ts.do("POST", "/oauth/register", "", "application/json",
		`{"redirect_uris":["https://app.example/cb"],"dpop_bound_access_tokens":true,"require_pushed_authorization_requests":true}`)
	assertOAuthJSON(t, w, m, http.StatusCreated, "")
	if _, ok := m["dpop_bound_access_tokens"]; ok {
		t.Errorf("unknown member echoed: %v", m)
	}
	if _, ok := m["require_pushed_authorization_requests"]; ok {
		t.Errorf("unknown member echoed: %v", m)
	}
}
