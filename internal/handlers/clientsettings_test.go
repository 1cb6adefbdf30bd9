package handlers

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-dcr/caddy-dcr/storage"
)

// setSettings replaces a client's settings, whatever they are.
func (ts *testServer) setSettings(id string, s storage.ClientSettings) error {
	c, err := ts.store.Client(ts.t.Context(), id)
	if err != nil {
		return err
	}
	_, err = ts.store.SetClientSettings(ts.t.Context(), id, c.Settings, s)
	return err
}

// A disabled client gets invalid_client wherever it authenticates, its
// access tokens are refused by the gate, and it works again once enabled.
func TestDisabledClientIsRefusedEverywhere(t *testing.T) {
	ts := newTestServer(t, Config{})
	m := ts.register(`{"grant_types":["client_credentials"]}`)
	id, secret, rat := m["client_id"].(string), m["client_secret"].(string), m["registration_access_token"].(string)
	access := ts.clientCredentialsToken(id, secret, "")
	if code, _ := ts.gated("/api", "Bearer "+access); code != http.StatusTeapot {
		t.Fatalf("gate before disabling: %d", code)
	}
	if err := ts.setSettings(id, storage.ClientSettings{Disabled: true}); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name, path string
		form       url.Values
	}{
		{"token", "/oauth/token", url.Values{"grant_type": {"client_credentials"}}},
		{"introspection", "/oauth/introspect", url.Values{"token": {access}}},
		{"revocation", "/oauth/revoke", url.Values{"token": {access}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, body := ts.form(tc.path, id, secret, tc.form)
			assertOAuthJSON(t, w, body, http.StatusUnauthorized, "invalid_client")
			if !strings.Contains(w.Header().Get("WWW-Authenticate"), "Basic") {
				t.Errorf("no Basic challenge: %v", w.Header())
			}
		})
	}
	t.Run("client configuration", func(t *testing.T) {
		for _, method := range []string{"GET", "PUT", "DELETE"} {
			w, body := ts.do(method, "/oauth/register/"+id, rat, "application/json", `{"client_id":"`+id+`","grant_types":["client_credentials"]}`)
			assertOAuthJSON(t, w, body, http.StatusUnauthorized, "invalid_client")
		}
		if _, err := ts.store.Client(t.Context(), id); err != nil {
			t.Fatalf("a disabled client deleted itself: %v", err)
		}
	})
	t.Run("gate", func(t *testing.T) {
		if code, _ := ts.gated("/api", "Bearer "+access); code != http.StatusUnauthorized {
			t.Fatalf("gate: %d", code)
		}
	})
	t.Run("authorization", func(t *testing.T) {
		pid, params := ts.publicClient("")
		if err := ts.setSettings(pid, storage.ClientSettings{Disabled: true}); err != nil {
			t.Fatal(err)
		}
		w := ts.authorize("GET", params, "alice")
		if w.Code != http.StatusBadRequest || w.Header().Get("Location") != "" || !strings.Contains(w.Body.String(), "disabled") {
			t.Fatalf("authorize: %d %v %s", w.Code, w.Header(), w.Body)
		}
	})

	if err := ts.setSettings(id, storage.ClientSettings{}); err != nil {
		t.Fatal(err)
	}
	if code, _ := ts.gated("/api", "Bearer "+access); code != http.StatusTeapot {
		t.Fatalf("gate after enabling: %d", code)
	}
	ts.clientCredentialsToken(id, secret, "")
}

// The operator's lifetimes shorten the tokens issued (never lengthen
// them), and the operator's scopes narrow them.
func TestClientSettingsNarrowWhatIsIssued(t *testing.T) {
	ts := newTestServer(t, Config{RefreshTokenTTL: 24 * time.Hour})
	id, secret := ts.machineClient(`,"scope":"read write admin"`)
	set := func(s storage.ClientSettings) {
		t.Helper()
		if err := ts.setSettings(id, s); err != nil {
			t.Fatal(err)
		}
	}
	token := func(scope string) (*int, map[string]any) {
		t.Helper()
		v := url.Values{"grant_type": {"client_credentials"}}
		if scope != "" {
			v.Set("scope", scope)
		}
		w, m := ts.form("/oauth/token", id, secret, v)
		return &w.Code, m
	}
	set(storage.ClientSettings{AccessTokenTTL: 60, Scope: "read write"})
	code, m := token("")
	if *code != http.StatusOK || m["expires_in"] != float64(60) || m["scope"] != "read write" {
		t.Fatalf("narrowed: %d %v", *code, m)
	}
	code, m = token("admin")
	if *code != http.StatusBadRequest || m["error"] != "invalid_scope" {
		t.Fatalf("a scope the operator does not allow: %d %v", *code, m)
	}
	code, m = token("read admin")
	if *code != http.StatusOK || m["scope"] != "read" {
		t.Fatalf("partly allowed: %d %v", *code, m)
	}
	set(storage.ClientSettings{AccessTokenTTL: 7 * 24 * 3600})
	if code, m = token(""); *code != http.StatusOK || m["expires_in"] != float64(3600) {
		t.Fatalf("a longer lifetime than the server's: %d %v", *code, m)
	}

	// Refresh tokens, through the authorization code flow.
	pid, params := ts.publicClient("")
	if err := ts.setSettings(pid, storage.ClientSettings{RefreshTokenTTL: 3600, AccessTokenTTL: 120}); err != nil {
		t.Fatal(err)
	}
	_, q := redirectParams(t, ts.approve(ts.authorize("GET", params, "alice"), "alice", "approve"))
	w, body := ts.exchange(pid, q.Get("code"), testVerifier, "http://127.0.0.1:4000/cb")
	if w.Code != http.StatusOK || body["expires_in"] != float64(120) {
		t.Fatalf("exchange: %d %v", w.Code, body)
	}
	rt, err := ts.store.RefreshToken(t.Context(), storage.HashSecret(body["refresh_token"].(string)))
	if err != nil || rt.ExpiresAt != ts.clock.Add(time.Hour).Unix() {
		t.Fatalf("refresh token lifetime: %+v %v", rt, err)
	}
}

// The token endpoint records a client's use, at most once per
// touchGranularity, so that issuing tokens is not a write each time.
func TestTokenEndpointRecordsUseCoarsely(t *testing.T) {
	ts := newTestServer(t, Config{})
	id, secret := ts.machineClient("")
	lastUsed := func() int64 {
		t.Helper()
		c, err := ts.store.Client(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		return c.LastUsedAt
	}
	if lastUsed() != 0 {
		t.Fatal("a new client has a last use")
	}
	ts.clientCredentialsToken(id, secret, "")
	first := ts.clock.Unix()
	if lastUsed() != first {
		t.Fatalf("last use %d, want %d", lastUsed(), first)
	}
	ts.clock = ts.clock.Add(touchGranularity - time.Minute)
	ts.clientCredentialsToken(id, secret, "")
	if lastUsed() != first {
		t.Fatalf("recorded again within the granularity: %d", lastUsed())
	}
	ts.clock = ts.clock.Add(2 * time.Minute)
	ts.clientCredentialsToken(id, secret, "")
	if lastUsed() != ts.clock.Unix() {
		t.Fatalf("not recorded after the granularity: %d", lastUsed())
	}
}

// A resource server introspecting a disabled client's refresh token is
// told it is inactive, as for its access tokens (RFC 7662 §2.2: a token
// that cannot be used), and active again once the client is enabled.
func TestDisabledClientsRefreshTokensIntrospectInactive(t *testing.T) {
	ts := newTestServer(t, Config{})
	rsID, rsSecret := ts.machineClient("")
	ts.srv.cfg.ResourceServers = []string{rsID}
	id, access, refresh := ts.approvedTokens("alice")
	active := func(token string) bool {
		t.Helper()
		w, got := ts.form("/oauth/introspect", rsID, rsSecret, url.Values{"token": {token}})
		if w.Code != http.StatusOK {
			t.Fatalf("introspection: %d %v", w.Code, got)
		}
		return got["active"] == true
	}
	if !active(refresh) || !active(access) {
		t.Fatal("the tokens introspect inactive before the client is disabled")
	}
	if err := ts.setSettings(id, storage.ClientSettings{Disabled: true}); err != nil {
		t.Fatal(err)
	}
	if active(refresh) || active(access) {
		t.Fatal("a disabled client's token introspects active")
	}
	if err := ts.setSettings(id, storage.ClientSettings{}); err != nil {
		t.Fatal(err)
	}
	if !active(refresh) {
		t.Fatal("the refresh token stays inactive after the client is enabled")
	}
}

// A refresh the operator's scope refuses leaves the refresh token as it
// was: once the operator allows a scope again, the token works.
func TestRefreshRefusedForScopeKeepsTheToken(t *testing.T) {
	ts := newTestServer(t, Config{})
	id, _, refresh := ts.approvedTokens("alice") // scope read
	if err := ts.setSettings(id, storage.ClientSettings{Scope: "write"}); err != nil {
		t.Fatal(err)
	}
	w, got := ts.refresh(id, refresh)
	assertOAuthJSON(t, w, got, http.StatusBadRequest, "invalid_scope")
	if err := ts.setSettings(id, storage.ClientSettings{}); err != nil {
		t.Fatal(err)
	}
	w, got = ts.refresh(id, refresh)
	assertOAuthJSON(t, w, got, http.StatusOK, "")
}

// The ID token lives as long as the access token issued with it: the
// client's own lifetime when the operator set one.
func TestIDTokenFollowsTheClientsLifetime(t *testing.T) {
	ts := newTestServer(t, Config{})
	id, params := ts.publicClient("")
	ts.srv.cfg.TrustedClients = []string{id}
	if err := ts.setSettings(id, storage.ClientSettings{AccessTokenTTL: 60}); err != nil {
		t.Fatal(err)
	}
	_, q := redirectParams(t, ts.authorize("GET", with(params, "scope", "openid", "nonce", "n"), "alice"))
	w, tok := ts.exchange(id, q.Get("code"), testVerifier, "http://127.0.0.1:4000/cb")
	assertOAuthJSON(t, w, tok, http.StatusOK, "")
	claims := decodeJWTPayload(t, tok["id_token"].(string))
	if exp, iat := claims["exp"].(float64), claims["iat"].(float64); exp-iat != 60 || tok["expires_in"] != float64(60) {
		t.Fatalf("ID token lives %v s, access token %v s; want 60", exp-iat, tok["expires_in"])
	}
}

// Concurrent PATCHes of one client's settings each apply their members to
// what the others left: a disable racing other changes is never lost.
func TestConcurrentSettingsPatchesLoseNothing(t *testing.T) {
	ts := newTestServer(t, Config{})
	id, _ := ts.machineClient("")
	for round := range 20 {
		disabled := round%2 == 0
		var wg sync.WaitGroup
		wg.Go(func() {
			body := fmt.Sprintf(`{"disabled":%t}`, disabled)
			if _, err := ts.srv.PatchClientSettings(httptest.NewRequest("PATCH", "/", nil), id, []byte(body)); err != nil {
				t.Error(err)
			}
		})
		for i := range 4 {
			wg.Go(func() {
				body := fmt.Sprintf(`{"access_token_ttl":%d}`, 60*(i+1))
				if _, err := ts.srv.PatchClientSettings(httptest.NewRequest("PATCH", "/", nil), id, []byte(body)); err != nil && !errors.Is(err, storage.ErrConflict) {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		c, err := ts.store.Client(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if c.Settings.Disabled != disabled {
			t.Fatalf("round %d: disabled = %v, want %v: a concurrent patch undid it", round, c.Settings.Disabled, disabled)
		}
	}
}

// The operator's scope for a client is checked as a registered scope is,
// against scopes_supported: one the server does not support would leave
// the client nothing but invalid_scope.
func TestSettingsPatchRefusesUnsupportedScope(t *testing.T) {
	ts := newTestServer(t, Config{ScopesSupported: []string{"read", "write"}})
	id, _ := ts.machineClient("")
	_, err := ts.srv.PatchClientSettings(httptest.NewRequest("PATCH", "/", nil), id, []byte(`{"scope":"read admin superuser"}`))
	var oe *Error
	if !errors.As(err, &oe) || oe.Status != http.StatusBadRequest || !strings.Contains(oe.Error(), `"admin"`) {
		t.Fatalf("patch with an unsupported scope: %v, want a 400 naming it", err)
	}
	c, err := ts.store.Client(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if c.Settings.Scope != "" {
		t.Fatalf("a refused patch stored scope %q", c.Settings.Scope)
	}
	if _, err := ts.srv.PatchClientSettings(httptest.NewRequest("PATCH", "/", nil), id, []byte(`{"scope":"write write"}`)); err != nil {
		t.Fatalf("patch with a supported scope: %v", err)
	}
}
