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
