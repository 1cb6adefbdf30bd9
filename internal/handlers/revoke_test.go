package handlers

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestRevocationAndDeletion(t *testing.T) {
	ts := newTestServer(t, Config{})
	id, secret := ts.machineClient("")
	otherID, otherSecret := ts.machineClient("")
	token := ts.clientCredentialsToken(id, secret, "")
	second := ts.clientCredentialsToken(id, secret, "")

	// Another client may not revoke it.
	w, m := ts.form("/oauth/revoke", otherID, otherSecret, url.Values{"token": {token}})
	assertOAuthJSON(t, w, m, http.StatusBadRequest, "unauthorized_client")
	if status, _ := ts.gated("/x", "Bearer "+token); status != http.StatusTeapot {
		t.Fatal("token died from a foreign revocation")
	}
	// Its own client may, and the gate refuses it at once (its claims
	// were cached by the request above).
	w, m = ts.form("/oauth/revoke", id, secret, url.Values{"token": {token}, "token_type_hint": {"access_token"}})
	assertOAuthJSON(t, w, m, http.StatusOK, "")
	if status, chal := ts.gated("/x", "Bearer "+token); status != 401 || !strings.Contains(chal, "revoked") {
		t.Fatalf("revoked token: %d %q", status, chal)
	}
	// Unknown tokens get 200 too (RFC 7009 §2.2).
	w, m = ts.form("/oauth/revoke", id, secret, url.Values{"token": {"no-such-token"}})
	assertOAuthJSON(t, w, m, http.StatusOK, "")

	// Deleting the client (RFC 7592) revokes every token it had.
	if status, _ := ts.gated("/x", "Bearer "+second); status != http.StatusTeapot {
		t.Fatal("second token refused before delete")
	}
	if err := ts.store.DeleteClient(t.Context(), id, ts.srv.revokedUntil()); err != nil {
		t.Fatal(err)
	}
	if status, _ := ts.gated("/x", "Bearer "+second); status != 401 {
		t.Fatalf("token of a deleted client: %d", status)
	}
	w, m = ts.form("/oauth/token", id, secret, url.Values{"grant_type": {"client_credentials"}})
	assertOAuthJSON(t, w, m, http.StatusUnauthorized, "invalid_client")
	_ = otherSecret
}

// RFC 7009 §2.1: revoking a refresh token revokes its whole family, the
// refresh tokens rotated from one another and the access tokens issued
// with them; a public client revokes with its client_id alone.
func TestRevokingARefreshTokenRevokesItsFamily(t *testing.T) {
	ts := newTestServer(t, Config{})
	id, access, refresh := ts.approvedTokens("alice")
	w, m := ts.refresh(id, refresh)
	assertOAuthJSON(t, w, m, http.StatusOK, "")
	access2, refresh2 := m["access_token"].(string), m["refresh_token"].(string)
	for _, a := range []string{access, access2} {
		if status, _ := ts.gated("/x", "Bearer "+a); status != http.StatusTeapot {
			t.Fatalf("access token refused before the revocation: %d", status)
		}
	}

	// A public client: client_id in the body, no secret.
	w, m = ts.form("/oauth/revoke", "", "", url.Values{"token": {refresh2}, "token_type_hint": {"refresh_token"}, "client_id": {id}})
	assertOAuthJSON(t, w, m, http.StatusOK, "")

	w, m = ts.refresh(id, refresh2)
	assertOAuthJSON(t, w, m, http.StatusBadRequest, "invalid_grant")
	for name, a := range map[string]string{"first": access, "refreshed": access2} {
		if status, _ := ts.gated("/x", "Bearer "+a); status != http.StatusUnauthorized {
			t.Errorf("%s access token of a revoked family: %d", name, status)
		}
	}

	// Another family of the same client and person lives on.
	_, q := redirectParams(t, ts.authorize("GET", url.Values{"response_type": {"code"}, "client_id": {id},
		"redirect_uri": {"http://127.0.0.1:4000/cb"}, "code_challenge": {challengeOf(testVerifier)},
		"code_challenge_method": {"S256"}, "scope": {"read"}}, "alice"))
	other, otherRefresh := ts.codeTokens(id, q.Get("code"))
	if status, _ := ts.gated("/x", "Bearer "+other); status != http.StatusTeapot {
		t.Fatalf("another family's access token: %d", status)
	}
	w, m = ts.refresh(id, otherRefresh)
	assertOAuthJSON(t, w, m, http.StatusOK, "")
}
