package handlers

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

func TestDiscovery(t *testing.T) {
	ts := newTestServer(t, Config{Issuer: "https://auth.example.com/tenant", ScopesSupported: []string{"read"}})
	for _, p := range []string{"/.well-known/oauth-authorization-server", "/.well-known/openid-configuration", "/.well-known/oauth-authorization-server/tenant",
		// OpenID Connect Discovery's place for an issuer with a path,
		// and the inserted form MCP clients also try.
		"/tenant/.well-known/openid-configuration", "/.well-known/openid-configuration/tenant"} {
		w, m := ts.do("GET", p, "", "", "")
		if w.Code != 200 || w.Header().Get("Access-Control-Allow-Origin") != "*" {
			t.Fatalf("%s: %d %v", p, w.Code, w.Header())
		}
		if m["issuer"] != "https://auth.example.com/tenant" || m["token_endpoint"] != "https://auth.example.com/oauth/token" ||
			m["registration_endpoint"] != "https://auth.example.com/oauth/register" || m["jwks_uri"] != "https://auth.example.com/oauth/jwks" ||
			m["introspection_endpoint"] == nil || m["revocation_endpoint"] == nil {
			t.Fatalf("%s: %v", p, m)
		}
		if v, ok := m["request_uri_parameter_supported"]; !ok || v != false {
			t.Errorf("%s: request_uri_parameter_supported %v (absent means true)", p, v)
		}
		for _, k := range []string{"response_types_supported", "grant_types_supported", "token_endpoint_auth_methods_supported", "code_challenge_methods_supported", "scopes_supported"} {
			if _, ok := m[k].([]any); !ok {
				t.Errorf("%s: %s missing", p, k)
			}
		}
	}
	w, m := ts.do("GET", "https://auth.example.com/.well-known/oauth-protected-resource/mcp", "", "", "")
	if w.Code != 200 || m["resource"] != "https://auth.example.com/mcp" || m["authorization_servers"].([]any)[0] != "https://auth.example.com/tenant" {
		t.Fatalf("resource metadata: %d %v", w.Code, m)
	}
	if b := m["bearer_methods_supported"].([]any); len(b) != 1 || b[0] != "header" {
		t.Fatalf("bearer_methods_supported %v", b)
	}
	w, m = ts.do("GET", "/oauth/jwks", "", "", "")
	keys := m["keys"].([]any)
	k := keys[0].(map[string]any)
	if w.Code != 200 || len(keys) != 1 || k["kty"] != "EC" || k["alg"] != "ES256" || k["kid"] == "" || k["d"] != nil {
		t.Fatalf("jwks: %v", m)
	}

	// The token's iss is the metadata's issuer, byte for byte.
	id, secret := ts.machineClient("")
	token := ts.clientCredentialsToken(id, secret, "")
	c, err := ts.srv.keys.verify(t.Context(), token)
	if err != nil || c.Issuer != "https://auth.example.com/tenant" {
		t.Fatalf("token iss %v %v", c, err)
	}
}

// A gate on another host than the issuer's: its challenge points at the
// metadata on its own host, and that document names the resource of its
// own host (RFC 9728 §3.3), so that a client asks for a token the gate
// takes. Behind a proxy that terminates TLS the configured scheme holds.
func TestResourceMetadataOnTheGatesHost(t *testing.T) {
	ts := newTestServer(t, Config{Issuer: "https://auth.example.com", Resource: "https://api.example.com/mcp"})
	status, chal := ts.gated("http://api.example.com/mcp", "")
	const doc = "https://api.example.com/.well-known/oauth-protected-resource/mcp"
	if status != 401 || !strings.Contains(chal, `resource_metadata="`+doc+`"`) {
		t.Fatalf("challenge: %d %q", status, chal)
	}
	for target, want := range map[string]string{
		doc: "https://api.example.com/mcp",
		"http://api.example.com/.well-known/oauth-protected-resource/mcp":    "https://api.example.com/mcp",
		"https://api.example.com/.well-known/oauth-protected-resource/other": "https://api.example.com/other",
		"https://auth.example.com/.well-known/oauth-protected-resource/mcp":  "https://auth.example.com/mcp",
		// Any other Host names the issuer's origin, not itself.
		"http://127.0.0.1:8080/.well-known/oauth-protected-resource/mcp": "https://auth.example.com/mcp",
	} {
		w, m := ts.do("GET", target, "", "", "")
		if w.Code != 200 || m["resource"] != want || m["authorization_servers"].([]any)[0] != "https://auth.example.com" {
			t.Errorf("%s: %d %v, want resource %s", target, w.Code, m, want)
		}
	}
	// A document for a path no token can be issued for does not exist.
	for _, p := range []string{"/.well-known/oauth-protected-resource/server-a/../../x", "/.well-known/oauth-protected-resource/a/..;/b"} {
		if w, _ := ts.do("GET", "https://api.example.com"+p, "", "", ""); w.Code != http.StatusNotFound {
			t.Errorf("%s: %d", p, w.Code)
		}
	}
	// With an issuer and no resource, a proxy's Host (nginx sends its
	// upstream's by default) does not leak into the challenge or the
	// document: the issuer's origin is the one the token endpoint takes.
	bare := newTestServer(t, Config{Issuer: "https://auth.example.com"})
	status, chal = bare.gated("http://127.0.0.1:8080/mcp", "")
	if want := `resource_metadata="https://auth.example.com/.well-known/oauth-protected-resource/mcp"`; status != 401 || !strings.Contains(chal, want) {
		t.Errorf("challenge behind a proxy: %d %q", status, chal)
	}
	if w, m := bare.do("GET", "http://127.0.0.1:8080/.well-known/oauth-protected-resource/mcp", "", "", ""); w.Code != 200 || m["resource"] != "https://auth.example.com/mcp" {
		t.Errorf("document behind a proxy: %d %v", w.Code, m)
	}
	// The token a client gets for that resource passes the gate.
	id, secret := ts.machineClient("")
	w, m := ts.form("/oauth/token", id, secret, url.Values{"grant_type": {"client_credentials"}, "resource": {"https://api.example.com/mcp"}})
	assertOAuthJSON(t, w, m, http.StatusOK, "")
	if status, chal := ts.gated("https://api.example.com/mcp", "Bearer "+m["access_token"].(string)); status != http.StatusTeapot {
		t.Fatalf("token for the documented resource: %d %q", status, chal)
	}
}

func TestWellKnownURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://a.example":          "https://a.example/.well-known/oauth-protected-resource",
		"https://a.example/":         "https://a.example/.well-known/oauth-protected-resource",
		"https://a.example/mcp":      "https://a.example/.well-known/oauth-protected-resource/mcp",
		"https://a.example:8443/a/b": "https://a.example:8443/.well-known/oauth-protected-resource/a/b",
	} {
		if got := wellKnownURL(in); got != want {
			t.Errorf("wellKnownURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// The discovery documents offer only what registration accepts: with
// public clients refused and grant types narrowed, neither none (at the
// token or the revocation endpoint), metadata documents nor the other
// grants are advertised.
func TestDiscoveryFollowsRegistrationPolicy(t *testing.T) {
	for _, tc := range []struct {
		name         string
		limits       Limits
		grants, auth []string
		cimd         bool
	}{
		{"open", Limits{}, []string{"authorization_code", "client_credentials", "refresh_token"},
			[]string{"client_secret_basic", "client_secret_post", "none"}, true},
		{"no public clients", Limits{NoPublicClients: true}, []string{"authorization_code", "client_credentials", "refresh_token"},
			[]string{"client_secret_basic", "client_secret_post"}, false},
		{"client_credentials only", Limits{AllowedGrantTypes: []string{"client_credentials"}}, []string{"client_credentials"},
			[]string{"client_secret_basic", "client_secret_post", "none"}, false},
		{"narrowed, in server order", Limits{AllowedGrantTypes: []string{"refresh_token", "authorization_code"}}, []string{"authorization_code", "refresh_token"},
			[]string{"client_secret_basic", "client_secret_post", "none"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestServer(t, Config{Limits: tc.limits, MetadataDocuments: &MetadataDocumentConfig{}})
			for _, p := range []string{"/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"} {
				w, m := ts.do("GET", p, "", "", "")
				if w.Code != 200 {
					t.Fatalf("%s: %d", p, w.Code)
				}
				if got := strs(m["grant_types_supported"]); !slices.Equal(got, tc.grants) {
					t.Errorf("%s: grant_types_supported %v, want %v", p, got, tc.grants)
				}
				for _, name := range []string{"token_endpoint_auth_methods_supported", "revocation_endpoint_auth_methods_supported"} {
					if got := strs(m[name]); !slices.Equal(got, tc.auth) {
						t.Errorf("%s: %s %v, want %v", p, name, got, tc.auth)
					}
				}
				if m["client_id_metadata_document_supported"] != tc.cimd {
					t.Errorf("%s: client_id_metadata_document_supported %v, want %v", p, m["client_id_metadata_document_supported"], tc.cimd)
				}
			}
		})
	}
}

func strs(v any) []string {
	var out []string
	for _, e := range v.([]any) {
		out = append(out, e.(string))
	}
	return out
}

// An operator's scopes_supported without openid still leaves an OpenID
// Connect provider: discovery lists openid, registration and the
// authorization endpoint accept it and the code exchange returns an ID
// token. openid is no default and no scope of the protected resource.
func TestScopesSupportedAlwaysAcceptsOpenID(t *testing.T) {
	ts := newTestServer(t, Config{ScopesSupported: []string{"read"}})
	for _, p := range []string{"/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"} {
		if _, m := ts.do("GET", p, "", "", ""); !slices.Equal(strs(m["scopes_supported"]), []string{"openid", "read"}) {
			t.Errorf("%s: scopes_supported %v", p, m["scopes_supported"])
		}
	}
	if _, m := ts.do("GET", "/.well-known/oauth-protected-resource", "", "", ""); !slices.Equal(strs(m["scopes_supported"]), []string{"read"}) {
		t.Errorf("resource scopes_supported %v", m["scopes_supported"])
	}
	if m := ts.register(`{"grant_types":["client_credentials"]}`); m["scope"] != "read" {
		t.Errorf("default scope %v", m["scope"])
	}
	if w, m := ts.do("POST", "/oauth/register", "", "application/json", `{"grant_types":["client_credentials"],"scope":"read profile"}`); w.Code != 400 || m["error"] != "invalid_client_metadata" {
		t.Errorf("scope outside the list: %d %v", w.Code, m)
	}

	id, params := ts.publicClient(`,"scope":"openid read"`)
	page := ts.authorize("GET", with(params, "scope", "openid read", "nonce", "n-1"), "alice")
	_, q := redirectParams(t, ts.approve(page, "alice", "approve"))
	w, m := ts.exchange(id, q.Get("code"), testVerifier, params.Get("redirect_uri"))
	if w.Code != 200 || m["scope"] != "openid read" || m["id_token"] == nil {
		t.Fatalf("code exchange: %d %v", w.Code, m)
	}
}
