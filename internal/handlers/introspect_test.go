package handlers

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"
)

func TestIntrospection(t *testing.T) {
	ts := newTestServer(t, Config{})
	id, secret := ts.machineClient(`,"scope":"a b"`)
	token := ts.clientCredentialsToken(id, secret, "")

	w, m := ts.form("/oauth/introspect", id, secret, url.Values{"token": {token}})
	assertOAuthJSON(t, w, m, http.StatusOK, "")
	if m["active"] != true || m["client_id"] != id || m["sub"] != id || m["scope"] != "a b" ||
		m["iss"] != "http://example.com" || m["aud"] != "http://example.com" || m["token_type"] != "Bearer" ||
		m["exp"] != float64(fixedNow.Add(time.Hour).Unix()) || m["iat"] != float64(fixedNow.Unix()) {
		t.Fatalf("introspection %v", m)
	}
	for _, tok := range []string{"unknown", token + "x", "a.b.c"} {
		w, m = ts.form("/oauth/introspect", id, secret, url.Values{"token": {tok}})
		assertOAuthJSON(t, w, m, http.StatusOK, "")
		if len(m) != 1 || m["active"] != false {
			t.Fatalf("inactive token answer %v", m)
		}
	}
	w, m = ts.form("/oauth/introspect", id, "wrong", url.Values{"token": {token}})
	assertOAuthJSON(t, w, m, http.StatusUnauthorized, "invalid_client")
	pub := ts.register(`{"token_endpoint_auth_method":"none","redirect_uris":["http://127.0.0.1/cb"]}`)
	w, m = ts.form("/oauth/introspect", "", "", url.Values{"token": {token}, "client_id": {pub["client_id"].(string)}})
	assertOAuthJSON(t, w, m, http.StatusUnauthorized, "invalid_client")

	ts.clock = ts.clock.Add(2 * time.Hour)
	w, m = ts.form("/oauth/introspect", id, secret, url.Values{"token": {token}})
	if m["active"] != false {
		t.Fatalf("expired token active: %v", m)
	}
}

// The introspection answer is written without reflection; what is
// written must be what json.Marshal writes.
func TestIntrospectionAsMarshal(t *testing.T) {
	for _, i := range []introspection{
		{Active: false},
		{Active: true, Scope: "read", ClientID: "c", Subject: "s", Audience: "https://rs.example", Issuer: "https://as.example",
			Expiry: 2, IssuedAt: 1, ID: "j", TokenType: "Bearer"},
		{Active: true, ClientID: "c", Audience: []string{"a", "<b>"}, Expiry: 2, TokenType: "refresh_token",
			Extra: map[string]string{"z": "1", "email": "a&b@example.com"}},
		{Active: true, ClientID: "c", Audience: "", Extra: map[string]string{}},
		{Active: true, ClientID: "c", Audience: []string{}},
	} {
		want, err := json.Marshal(i)
		if err != nil {
			t.Fatal(err)
		}
		if got := i.appendJSON(nil); string(got) != string(want) {
			t.Errorf("appendJSON:\n%s\njson.Marshal:\n%s", got, want)
		}
	}
}
