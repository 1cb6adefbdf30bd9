package handlers

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-dcr/caddy-dcr/storage"
)

// revokeGrant sends DELETE /oauth/grants/<client> as the person user.
func (ts *testServer) revokeGrant(user, clientID string) int {
	ts.t.Helper()
	r := httptest.NewRequest("DELETE", "/oauth/grants/"+url.PathEscape(clientID), nil)
	repl := caddy.NewReplacer()
	repl.Set("http.auth.user.id", user)
	r = caddyhttp.PrepareRequest(r, repl, nil, nil)
	w := httptest.NewRecorder()
	if err := ts.srv.ServeHTTP(w, r, nil); err != nil {
		ts.t.Fatal(err)
	}
	return w.Code
}

// refresh uses a public client's refresh token.
func (ts *testServer) refresh(clientID, token string) (*httptest.ResponseRecorder, map[string]any) {
	ts.t.Helper()
	return ts.form("/oauth/token", "", "", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {token}, "client_id": {clientID}})
}

// codeTokens exchanges a code and returns the access and refresh tokens.
func (ts *testServer) codeTokens(clientID, code string) (access, refresh string) {
	ts.t.Helper()
	w, m := ts.exchange(clientID, code, testVerifier, "http://127.0.0.1:4000/cb")
	if w.Code != http.StatusOK {
		ts.t.Fatalf("exchange: %d %v", w.Code, m)
	}
	return m["access_token"].(string), m["refresh_token"].(string)
}

// The adversarial review's first finding: a grant remembered only its
// newest 64 token families, and every authorization added one, so after
// 65 silent authorizations revoking the grant left the oldest tokens
// alive, refreshable forever.
func TestRevokingAGrantEndsEveryTokenIssuedUnderIt(t *testing.T) {
	ts := newTestServer(t, Config{})
	id, params := ts.publicClient("")
	page := ts.authorize("GET", params, "alice")
	_, q := redirectParams(t, ts.approve(page, "alice", "approve"))
	codes := []string{q.Get("code")}
	// 65 more authorizations: the grant exists, so no consent page.
	for range 65 {
		_, q := redirectParams(t, ts.authorize("GET", params, "alice"))
		codes = append(codes, q.Get("code"))
	}
	firstAccess, firstRefresh := ts.codeTokens(id, codes[0])
	lastAccess, lastRefresh := ts.codeTokens(id, codes[len(codes)-1])
	// A refresh before the revocation works, and its tokens belong to the
	// grant too.
	w, m := ts.refresh(id, firstRefresh)
	assertOAuthJSON(t, w, m, http.StatusOK, "")
	rotatedAccess, rotatedRefresh := m["access_token"].(string), m["refresh_token"].(string)

	if code := ts.revokeGrant("alice", id); code != http.StatusNoContent {
		t.Fatalf("revoking the grant: %d", code)
	}
	for name, access := range map[string]string{"oldest": firstAccess, "newest": lastAccess, "refreshed": rotatedAccess} {
		if status, _ := ts.gated("/api", "Bearer "+access); status != http.StatusUnauthorized {
			t.Errorf("%s access token still passes the gate: %d", name, status)
		}
	}
	for name, refresh := range map[string]string{"newest": lastRefresh, "refreshed": rotatedRefresh} {
		w, m := ts.refresh(id, refresh)
		assertOAuthJSON(t, w, m, http.StatusBadRequest, "invalid_grant")
		_ = name
	}
	// A code issued under the grant but not yet exchanged is dead too.
	w, m = ts.exchange(id, codes[30], testVerifier, "http://127.0.0.1:4000/cb")
	assertOAuthJSON(t, w, m, http.StatusBadRequest, "invalid_grant")

	// Granting again starts afresh: new tokens work, the old stay dead.
	page = ts.authorize("GET", params, "alice")
	if page.Code != http.StatusOK {
		t.Fatalf("no consent page after the revocation: %d", page.Code)
	}
	_, q = redirectParams(t, ts.approve(page, "alice", "approve"))
	access, _ := ts.codeTokens(id, q.Get("code"))
	if status, _ := ts.gated("/api", "Bearer "+access); status != http.StatusTeapot {
		t.Fatalf("a token of the new grant is refused: %d", status)
	}
	if status, _ := ts.gated("/api", "Bearer "+firstAccess); status != http.StatusUnauthorized {
		t.Fatalf("the new grant revived an old token: %d", status)
	}
}

// Deleting a client removes the grants people made to it, and the
// revocation that covers its tokens is forgotten once they have expired,
// so a register-delete loop leaves nothing behind.
func TestDeletingAClientRemovesItsGrants(t *testing.T) {
	ts := newTestServer(t, Config{})
	id, params := ts.publicClient("")
	page := ts.authorize("GET", params, "alice")
	_, q := redirectParams(t, ts.approve(page, "alice", "approve"))
	access, _ := ts.codeTokens(id, q.Get("code"))

	if err := ts.store.DeleteClient(t.Context(), id, ts.srv.revokedUntil()); err != nil {
		t.Fatal(err)
	}
	grants, err := ts.store.Grants(t.Context(), "alice")
	if err != nil || len(grants) != 0 {
		t.Fatalf("grants of a deleted client: %v %v", grants, err)
	}
	if status, _ := ts.gated("/api", "Bearer "+access); status != http.StatusUnauthorized {
		t.Fatalf("token of a deleted client: %d", status)
	}
	if revoked, err := ts.store.Revoked(t.Context(), "", id, "", ""); err != nil || !revoked {
		t.Fatal("the deleted client is not revoked")
	}
}

// A revocation made at a handler with short token lifetimes was forgotten
// while a longer-lived handler's tokens on the same store still lived, so
// after a restart they passed again. Revocations are remembered for the
// longest lifetime any handler may give.
func TestRevocationsOutliveEveryHandlersTokens(t *testing.T) {
	short := newTestServer(t, Config{AccessTokenTTL: 5 * time.Second, CodeTTL: 5 * time.Second})
	id, _ := short.machineClient("")
	if err := short.store.DeleteClient(t.Context(), id, short.srv.revokedUntil()); err != nil {
		t.Fatal(err)
	}
	all, err := short.store.Revocations(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range all {
		if r.Key == id && r.Until >= fixedNow.Add(MaxAccessTokenTTL).Unix() {
			return
		}
	}
	t.Fatalf("the client's revocation is not kept for %s: %+v", MaxAccessTokenTTL, all)
}

// A grant to a client whose id holds "%" (a metadata-document URL) could
// not be revoked: the id was decoded twice.
func TestGrantOfAnIDWithPercentCanBeRevoked(t *testing.T) {
	ts := newTestServer(t, Config{})
	id := "https://clients.example/my%20client.json"
	if _, err := ts.store.RecordGrant(t.Context(), &storage.Grant{ID: "g", Subject: "alice", ClientID: id}); err != nil {
		t.Fatal(err)
	}
	if code := ts.revokeGrant("alice", id); code != http.StatusNoContent {
		t.Fatalf("revoking: %d", code)
	}
}

// RFC 7592 §2.3: deleting a client through its configuration endpoint
// invalidates its tokens: the gate refuses its access tokens, and its
// refresh tokens get nothing.
func TestDeletingAClientThroughItsEndpointEndsItsTokens(t *testing.T) {
	ts := newTestServer(t, Config{})
	m := ts.register(`{"token_endpoint_auth_method":"none","redirect_uris":["http://127.0.0.1:4000/cb"],"grant_types":["authorization_code","refresh_token"]}`)
	id, rat := m["client_id"].(string), m["registration_access_token"].(string)
	ts.srv.cfg.TrustedClients = []string{id}
	_, q := redirectParams(t, ts.authorize("GET", url.Values{"response_type": {"code"}, "client_id": {id},
		"redirect_uri": {"http://127.0.0.1:4000/cb"}, "code_challenge": {challengeOf(testVerifier)},
		"code_challenge_method": {"S256"}}, "alice"))
	access, refresh := ts.codeTokens(id, q.Get("code"))
	if status, _ := ts.gated("/api", "Bearer "+access); status != http.StatusTeapot {
		t.Fatalf("access token before the delete: %d", status)
	}

	if w, _ := ts.do("DELETE", "/oauth/register/"+id, rat, "", ""); w.Code != http.StatusNoContent {
		t.Fatalf("delete: %d", w.Code)
	}
	if status, _ := ts.gated("/api", "Bearer "+access); status != http.StatusUnauthorized {
		t.Fatalf("access token of a deleted client: %d", status)
	}
	// The client is gone, so the token request fails on the client
	// (RFC 6749 §5.2), before the refresh token is looked at.
	w, m := ts.refresh(id, refresh)
	assertOAuthJSON(t, w, m, http.StatusUnauthorized, "invalid_client")
	if _, err := ts.store.RefreshToken(t.Context(), storage.HashSecret(refresh)); err == nil {
		if revoked, err := ts.store.Revoked(t.Context(), "", id, "", ""); err != nil || !revoked {
			t.Fatal("the deleted client's refresh token is kept and not revoked")
		}
	}
}
