package handlers

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/caddy-dcr/caddy-dcr/storage"
)

// A client registered at one handler with scope "admin mcp:read" got a
// token with admin from another handler on the same store whose
// scopes_supported lacks it (and the same after an operator narrowed
// scopes_supported). Issuance grants only what this handler supports now.
func TestIssuanceGrantsOnlyScopesThisHandlerSupports(t *testing.T) {
	open := newTestServer(t, Config{})
	id, secret := open.machineClient(`,"scope":"admin mcp:read"`)
	narrow, err := New(t.Context(), open.store, Config{ScopesSupported: []string{"mcp:read", "mcp:write"}, Now: open.srv.now}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{t: t, srv: narrow, store: open.store, clock: open.clock}

	for _, tc := range []struct {
		name, scope, want, err string
	}{
		{"default: what is registered and supported", "", "mcp:read", ""},
		{"asked within both", "mcp:read", "mcp:read", ""},
		{"registered but not supported here", "admin", "", "invalid_scope"},
		{"supported but not registered", "mcp:write", "", "invalid_scope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := url.Values{"grant_type": {"client_credentials"}}
			if tc.scope != "" {
				v.Set("scope", tc.scope)
			}
			w, m := ts.form("/oauth/token", id, secret, v)
			if tc.err != "" {
				assertOAuthJSON(t, w, m, http.StatusBadRequest, tc.err)
				return
			}
			assertOAuthJSON(t, w, m, http.StatusOK, "")
			c, err := narrow.checkAccessToken(t.Context(), httpRequest(), m["access_token"].(string))
			if err != nil || c.Scope != tc.want {
				t.Fatalf("token scope %q (%v), want %q", c.Scope, err, tc.want)
			}
		})
	}

	// The authorization endpoint applies the same rule.
	pid, params := open.publicClient(`,"scope":"admin read"`)
	_ = pid
	w := ts.authorize("GET", with(params, "scope", "admin"), "alice")
	if w.Code != http.StatusBadRequest || w.Header().Get("Location") != "" {
		t.Fatalf("authorization with an unsupported scope: %d", w.Code)
	}

	// Refreshing keeps to what this handler supports now.
	if got, oerr := narrow.refreshScope("", "admin mcp:read"); oerr != nil || got != "mcp:read" {
		t.Fatalf("refresh scope %q %v", got, oerr)
	}
	if _, oerr := narrow.refreshScope("admin", "admin mcp:read"); oerr == nil {
		t.Fatal("refresh granted an unsupported scope")
	}
	if _, oerr := open.srv.refreshScope("other", ""); oerr == nil {
		t.Fatal("refresh widened an empty grant")
	}
}

func httpRequest() *http.Request {
	r, _ := http.NewRequest("GET", "http://example.com/", nil)
	return r
}

// Any self-registered client could introspect anyone's refresh token and
// read the person's identity and email. RFC 7662 §2.1, §4: a client
// learns about its own tokens; only resource servers the operator named
// learn about all.
func TestIntrospectionIsForTheTokensClientOrAResourceServer(t *testing.T) {
	ts := newTestServer(t, Config{})
	owner, ownerSecret := ts.machineClient("")
	stranger, strangerSecret := ts.machineClient("")
	rs, rsSecret := ts.machineClient("")
	ts.srv.cfg.ResourceServers = []string{rs}
	access := ts.clientCredentialsToken(owner, ownerSecret, "")
	refresh := newSecret()
	err := ts.store.CreateRefreshToken(t.Context(), storage.HashSecret(refresh), &storage.RefreshToken{
		ClientID: owner, Subject: "alice", ExpiresAt: fixedNow.Add(time.Hour).Unix(), Family: "f",
		Claims: map[string]string{"email": "alice@example.com"},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{access, refresh} {
		for _, c := range []struct {
			id, secret string
			active     bool
		}{{owner, ownerSecret, true}, {stranger, strangerSecret, false}, {rs, rsSecret, true}} {
			w, m := ts.form("/oauth/introspect", c.id, c.secret, url.Values{"token": {tok}})
			assertOAuthJSON(t, w, m, http.StatusOK, "")
			if m["active"] != c.active || (!c.active && len(m) != 1) {
				t.Fatalf("client %s introspecting: %v", c.id, m)
			}
		}
	}
}
