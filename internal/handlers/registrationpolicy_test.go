package handlers

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/caddy-dcr/caddy-dcr/storage"
)

func TestRegistrationPolicy(t *testing.T) {
	ts := newTestServer(t, Config{Limits: Limits{
		AllowedGrantTypes:      []string{"authorization_code", "refresh_token"},
		AllowedRedirectSchemes: []string{"https", "http"},
		AllowedRedirectHosts:   []string{"app.example", "*.tenant.example", "127.0.0.1"},
		NoPublicClients:        true,
	}})
	for _, tc := range []struct {
		name, body, wantErr string
	}{
		{"allowed", `{"redirect_uris":["https://app.example/cb"],"grant_types":["authorization_code","refresh_token"]}`, ""},
		{"wildcard host", `{"redirect_uris":["https://a.tenant.example/cb"]}`, ""},
		{"host case", `{"redirect_uris":["https://APP.example/cb"]}`, ""},
		{"loopback when listed", `{"redirect_uris":["http://127.0.0.1:7777/cb"]}`, ""},
		{"grant type not allowed", `{"grant_types":["client_credentials"]}`, "invalid_client_metadata"},
		{"public client", `{"redirect_uris":["https://app.example/cb"],"token_endpoint_auth_method":"none"}`, "invalid_client_metadata"},
		{"scheme not allowed", `{"redirect_uris":["com.example.app:/cb"]}`, "invalid_redirect_uri"},
		{"host not allowed", `{"redirect_uris":["https://evil.example/cb"]}`, "invalid_redirect_uri"},
		{"wildcard does not cover the apex", `{"redirect_uris":["https://tenant.example/cb"]}`, "invalid_redirect_uri"},
		{"suffix is not a subdomain", `{"redirect_uris":["https://eviltenant.example/cb"]}`, "invalid_redirect_uri"},
		{"loopback not listed", `{"redirect_uris":["http://localhost:7777/cb"]}`, "invalid_redirect_uri"},
		{"one bad URI of two", `{"redirect_uris":["https://app.example/cb","https://evil.example/cb"]}`, "invalid_redirect_uri"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, _, _ := ts.store.Clients(t.Context(), "", 1000)
			w, m := ts.do("POST", "/oauth/register", "", "application/json", tc.body)
			if tc.wantErr == "" {
				assertOAuthJSON(t, w, m, http.StatusCreated, "")
				return
			}
			assertOAuthJSON(t, w, m, http.StatusBadRequest, tc.wantErr)
			after, _, _ := ts.store.Clients(t.Context(), "", 1000)
			if len(after) != len(before) {
				t.Errorf("a refused registration stored a client")
			}
		})
	}
}

// The policy applies to RFC 7592 updates too: a client cannot register
// within it and then update its way out.
func TestRegistrationPolicyAppliesToUpdates(t *testing.T) {
	ts := newTestServer(t, Config{Limits: Limits{AllowedRedirectHosts: []string{"app.example"}}})
	m := ts.register(`{"redirect_uris":["https://app.example/cb"]}`)
	id, token := m["client_id"].(string), m["registration_access_token"].(string)
	w, body := ts.do("PUT", "/oauth/register/"+id, token, "application/json",
		`{"client_id":"`+id+`","redirect_uris":["https://evil.example/cb"]}`)
	assertOAuthJSON(t, w, body, http.StatusBadRequest, "invalid_redirect_uri")
	c, err := ts.store.Client(t.Context(), id)
	if err != nil || c.Metadata.RedirectURIs[0] != "https://app.example/cb" {
		t.Fatalf("stored client changed: %v %v", c, err)
	}
}

// The registration policy bounds strangers' registrations; the operator's
// clients bypass it, and still get every other metadata check.
func TestRegistrationPolicySparesOperatorClients(t *testing.T) {
	ts := newTestServer(t, Config{ScopesSupported: []string{"read"}, Limits: Limits{
		AllowedGrantTypes:      []string{"authorization_code", "refresh_token"},
		AllowedRedirectSchemes: []string{"https"},
		AllowedRedirectHosts:   []string{"app.example"},
		NoPublicClients:        true,
	}})
	create := func(body string) (*ClientView, error) {
		return ts.srv.CreateClient(httptest.NewRequest("POST", "/dcr/clients", nil), []byte(body))
	}
	for name, body := range map[string]string{
		"grant type":    `{"grant_types":["client_credentials"]}`,
		"public client": `{"redirect_uris":["http://127.0.0.1/cb"],"token_endpoint_auth_method":"none"}`,
		"scheme":        `{"redirect_uris":["com.example.app:/cb"]}`,
		"host":          `{"redirect_uris":["https://other.example/cb"]}`,
	} {
		if w, m := ts.do("POST", "/oauth/register", "", "application/json", body); w.Code != http.StatusBadRequest {
			t.Errorf("%s: registration: %d %v, want 400", name, w.Code, m)
		}
		if v, err := create(body); err != nil || v.Origin != storage.OriginOperator {
			t.Errorf("%s: the operator's client: %v %v", name, v, err)
		}
	}
	for name, body := range map[string]string{
		"unsupported scope": `{"grant_types":["client_credentials"],"scope":"admin"}`,
		"fragment":          `{"redirect_uris":["https://app.example/cb#x"]}`,
		"auth method":       `{"token_endpoint_auth_method":"private_key_jwt"}`,
	} {
		var oe *Error
		if _, err := create(body); !errors.As(err, &oe) || oe.Status != http.StatusBadRequest {
			t.Errorf("%s: the operator's client: %v, want a 400", name, err)
		}
	}
}
