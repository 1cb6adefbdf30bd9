package handlers

import (
	"net/http"
	"net/url"
	"testing"
)

func TestPublicClientAuthentication(t *testing.T) {
	ts := newTestServer(t, Config{})
	m := ts.register(`{"token_endpoint_auth_method":"none","redirect_uris":["http://127.0.0.1/cb"],"grant_types":["authorization_code","refresh_token"]}`)
	id := m["client_id"].(string)
	// Basic with an empty password (golang.org/x/oauth2) identifies the
	// public client: the refusal is about the grant, not the client.
	w, got := ts.form("/oauth/token", id, "", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"unknown"}})
	assertOAuthJSON(t, w, got, http.StatusBadRequest, "invalid_grant")
	w, got = ts.form("/oauth/token", "", "", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"unknown"}, "client_id": {id}})
	assertOAuthJSON(t, w, got, http.StatusBadRequest, "invalid_grant")
	// A public client that sends a secret is not using its method.
	w, got = ts.form("/oauth/token", id, "secret", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"unknown"}})
	assertOAuthJSON(t, w, got, http.StatusUnauthorized, "invalid_client")
}
