package handlers

import (
	"strings"
	"testing"

	"github.com/caddy-dcr/caddy-dcr/storage"
)

// TestConsentDescribesScopes: the operator's description replaces the
// bare scope, the OpenID Connect scopes have default descriptions, and a
// scope without one is shown as it is.
func TestConsentDescribesScopes(t *testing.T) {
	ts := newTestServer(t, Config{ScopeDescriptions: map[string]string{"mcp:read": "Read your <documents>", "email": "Your work email"}})
	_, params := ts.publicClient("")
	page := ts.authorize("GET", with(params, "scope", "mcp:read mcp:write openid email"), "alice").Body.String()
	for _, want := range []string{
		`Read your &lt;documents&gt; <code class="scope">mcp:read</code>`,
		`<li><code>mcp:write</code></li>`,
		`Know who you are on this server <code class="scope">openid</code>`,
		`Your work email <code class="scope">email</code>`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("consent page lacks %q", want)
		}
	}
}

// TestConsentMarksSelfAssertedClients: a client that registered itself is
// shown as such, with where it sends the person; a client the operator
// trusts is not.
func TestConsentMarksSelfAssertedClients(t *testing.T) {
	ts := newTestServer(t, Config{})
	id, params := ts.publicClient(`,"client_uri":"https://tool.example","logo_uri":"https://tool.example/logo.png"`)
	page := ts.authorize("GET", params, "alice").Body.String()
	for _, want := range []string{"This application registered itself", "the name, logo and website on this page come from the application",
		"approve only if you trust <strong>127.0.0.1:4000</strong>", "Application website (as it says)"} {
		if !strings.Contains(page, want) {
			t.Errorf("self-registered client's page lacks %q", want)
		}
	}
	ts.srv.cfg.TrustedClients = []string{id}
	page = ts.authorize("GET", with(params, "prompt", "consent"), "alice").Body.String()
	if strings.Contains(page, "registered itself") || strings.Contains(page, "(as it says)") {
		t.Errorf("a trusted client is marked self-asserted:\n%s", page)
	}

	// Nor is a client the operator made.
	ts.srv.cfg.TrustedClients = nil
	c, err := ts.store.Client(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	c.ID, c.Origin = "made-by-operator", storage.OriginOperator
	if err := ts.store.CreateClient(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	page = ts.authorize("GET", with(params, "client_id", c.ID), "alice").Body.String()
	if !strings.Contains(page, "Authorize") || strings.Contains(page, "registered itself") || strings.Contains(page, "(as it says)") {
		t.Errorf("an operator's client is marked self-asserted:\n%s", page)
	}
}
