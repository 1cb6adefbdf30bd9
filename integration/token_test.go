package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

func body(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func getJSON(t *testing.T, url string) map[string]any {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d", url, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return m
}

// TestClientCredentialsWithOAuth2Library registers clients over HTTP and
// calls the protected upstream through Caddy with golang.org/x/oauth2's
// client credentials flow, in each of its client authentication styles.
func TestClientCredentialsWithOAuth2Library(t *testing.T) {
	e := newEnv(t)
	p := e.start("gate.Caddyfile")

	for _, tc := range []struct {
		name, method string
		style        oauth2.AuthStyle
	}{
		{"basic", "client_secret_basic", oauth2.AuthStyleInHeader},
		{"post", "client_secret_post", oauth2.AuthStyleInParams},
		// Auto-detect tries Basic first, then the body: a post client
		// is refused once, then served.
		{"auto-detect post", "client_secret_post", oauth2.AuthStyleAutoDetect},
		{"auto-detect basic", "client_secret_basic", oauth2.AuthStyleAutoDetect},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, m := call(t, "POST", e.url("/oauth/register"), "",
				`{"client_name":"svc","grant_types":["client_credentials"],"token_endpoint_auth_method":"`+tc.method+`"}`)
			wantStatus(t, resp, m, http.StatusCreated)
			cfg := clientcredentials.Config{
				ClientID: m["client_id"].(string), ClientSecret: m["client_secret"].(string),
				TokenURL: e.url("/oauth/token"), Scopes: []string{"mcp:read"}, AuthStyle: tc.style,
			}
			client := cfg.Client(context.Background())
			resp, err := client.Get(e.url("/api/items"))
			if err != nil {
				t.Fatal(err)
			}
			got := body(t, resp)
			want := "sub=" + cfg.ClientID + " client=" + cfg.ClientID + " scope=mcp:read path=/api/items"
			if resp.StatusCode != 200 || got != want {
				t.Fatalf("upstream: %d %q, want %q", resp.StatusCode, got, want)
			}
			// mcp:read is not enough for /admin.
			resp, err = client.Get(e.url("/admin/x"))
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusForbidden ||
				!strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="insufficient_scope"`) {
				t.Fatalf("admin with mcp:read: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
			}
			resp.Body.Close()
		})
	}
	assertLogsClean(t, p.logs.String())
	if strings.Contains(p.logs.String(), "eyJ") {
		t.Error("an access token reached Caddy's logs")
	}
}

// TestGateThroughCaddy follows what an MCP client does with a 401: read the
// challenge, fetch the resource metadata it names, then the authorization
// server metadata, and checks every identifier agrees byte for byte.
func TestGateThroughCaddy(t *testing.T) {
	e := newEnv(t)
	e.start("gate.Caddyfile")

	resp, err := http.Get(e.url("/mcp"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	chal := resp.Header.Get("WWW-Authenticate")
	m := regexp.MustCompile(`resource_metadata="([^"]+)"`).FindStringSubmatch(chal)
	if resp.StatusCode != 401 || m == nil || strings.Contains(chal, "error=") || !strings.Contains(chal, `scope="mcp:read"`) {
		t.Fatalf("challenge: %d %q", resp.StatusCode, chal)
	}
	prm := getJSON(t, m[1])
	if prm["resource"] != e.url("/mcp") {
		t.Fatalf("resource %v, want the URL asked about, %s", prm["resource"], e.url("/mcp"))
	}
	issuer := prm["authorization_servers"].([]any)[0].(string)
	asm := getJSON(t, issuer+"/.well-known/oauth-authorization-server")
	if asm["issuer"] != issuer {
		t.Fatalf("issuer %v != %v", asm["issuer"], issuer)
	}

	// Register and get a token for that resource.
	resp2, reg := call(t, "POST", asm["registration_endpoint"].(string), "", `{"grant_types":["client_credentials"],"scope":"mcp:read"}`)
	wantStatus(t, resp2, reg, http.StatusCreated)
	id, secret := reg["client_id"].(string), reg["client_secret"].(string)
	form := url.Values{"grant_type": {"client_credentials"}, "resource": {prm["resource"].(string)}}
	req, _ := http.NewRequest("POST", asm["token_endpoint"].(string), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var tok map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	at, _ := tok["access_token"].(string)
	if resp.StatusCode != 200 || at == "" || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("token: %d %v", resp.StatusCode, tok)
	}

	// A forged identity header is replaced, not passed on.
	req, _ = http.NewRequest("GET", e.url("/mcp"), nil)
	req.Header.Set("Authorization", "Bearer "+at)
	req.Header.Set("X-Auth-Subject", "admin")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if got := body(t, resp); resp.StatusCode != 200 || !strings.HasPrefix(got, "sub="+id+" ") {
		t.Fatalf("upstream saw %d %q", resp.StatusCode, got)
	}

	// The open path needs no token.
	resp, err = http.Get(e.url("/health"))
	if err != nil {
		t.Fatal(err)
	}
	if got := body(t, resp); resp.StatusCode != 200 || got != "ok" {
		t.Fatalf("health: %d %q", resp.StatusCode, got)
	}

	// Introspect, revoke, and the gate refuses at once.
	introspect := func() map[string]any {
		req, _ := http.NewRequest("POST", asm["introspection_endpoint"].(string), strings.NewReader("token="+at))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(id, secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		resp.Body.Close()
		return m
	}
	if got := introspect(); got["active"] != true || got["aud"] != e.url("/mcp") {
		t.Fatalf("introspection: %v", got)
	}
	req, _ = http.NewRequest("POST", asm["revocation_endpoint"].(string), strings.NewReader("token="+at))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	resp, err = http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("revoke: %v %v", resp, err)
	}
	resp.Body.Close()
	req, _ = http.NewRequest("GET", e.url("/mcp"), nil)
	req.Header.Set("Authorization", "Bearer "+at)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Fatalf("revoked token: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	if got := introspect(); got["active"] != false {
		t.Fatalf("revoked token introspects as %v", got)
	}
}

// machineToken registers a client_credentials client on gate.Caddyfile's
// site and returns its id and an mcp:read token.
func machineToken(t *testing.T, e *env) (id, token string) {
	t.Helper()
	resp, reg := call(t, "POST", e.url("/oauth/register"), "", `{"grant_types":["client_credentials"],"scope":"mcp:read"}`)
	wantStatus(t, resp, reg, http.StatusCreated)
	id = reg["client_id"].(string)
	cfg := clientcredentials.Config{ClientID: id, ClientSecret: reg["client_secret"].(string), TokenURL: e.url("/oauth/token")}
	tok, err := cfg.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return id, tok.AccessToken
}

// TestConnectionHeaderCannotStripIdentity is the adversarial review's
// finding through a real reverse_proxy: "Connection: X-Auth-Subject, ..."
// made the proxy drop the identity headers as hop-by-hop, so the upstream
// received none. The request is written by hand: Go's client would tidy
// the Connection header.
func TestConnectionHeaderCannotStripIdentity(t *testing.T) {
	e := newEnv(t)
	e.start("gate.Caddyfile")
	id, token := machineToken(t, e)

	conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", e.port))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /mcp HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAuthorization: Bearer %s\r\n"+
		"Connection: close, X-Auth-Subject, x-auth-client-id, X-Auth-Scope\r\n\r\n", e.port, token)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := "sub=" + id + " client=" + id + " scope=mcp:read path=/mcp"
	if got := body(t, resp); resp.StatusCode != 200 || got != want {
		t.Fatalf("upstream saw %d %q, want %q", resp.StatusCode, got, want)
	}
}

// TestIssuerComesOnlyFromHostsTheSiteServes is the adversarial review's
// issuer finding. With issuer unset, the issuer came from any Host header:
// a token requested at one site with "Host: <other site>" carried the
// other site's issuer and passed its gate, and the metadata advertised
// whatever Host a caller sent. A site answering any host name now needs
// an explicit issuer, and a Host naming another port is misdirected.
func TestIssuerComesOnlyFromHostsTheSiteServes(t *testing.T) {
	e := newEnv(t)
	if out, ok := e.validate("catch_all.Caddyfile"); ok || !strings.Contains(out, "issuer is required") {
		t.Fatalf("a catch-all site without issuer validated:\n%s", out)
	}

	e.start("two_sites.Caddyfile")
	one, two := e.url(""), e.url2("")
	resp, reg := call(t, "POST", one+"/oauth/register", "", `{"grant_types":["client_credentials"]}`)
	wantStatus(t, resp, reg, http.StatusCreated)

	// Asking site one for a token with site two's Host: misdirected.
	form := url.Values{"grant_type": {"client_credentials"}}
	req, _ := http.NewRequest("POST", one+"/oauth/token", strings.NewReader(form.Encode()))
	req.Host = strings.TrimPrefix(two, "http://")
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(reg["client_id"].(string), reg["client_secret"].(string))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if got := body(t, resp); resp.StatusCode != http.StatusMisdirectedRequest || strings.Contains(got, "access_token") {
		t.Fatalf("token with another site's Host: %d %s", resp.StatusCode, got)
	}
	// The metadata never names an issuer at a port the site is not on.
	req, _ = http.NewRequest("GET", one+"/.well-known/oauth-authorization-server", nil)
	req.Host = "127.0.0.1:6666"
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if got := body(t, resp); resp.StatusCode != http.StatusMisdirectedRequest || strings.Contains(got, "6666") {
		t.Fatalf("metadata for Host 127.0.0.1:6666: %d %s", resp.StatusCode, got)
	}

	// A token site one issued properly does not pass site two's gate.
	cfg := clientcredentials.Config{ClientID: reg["client_id"].(string), ClientSecret: reg["client_secret"].(string), TokenURL: one + "/oauth/token"}
	tok, err := cfg.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for base, want := range map[string]int{one: 200, two: 401} {
		req, _ = http.NewRequest("GET", base+"/api", nil)
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("%s with site one's token: %d, want %d", base, resp.StatusCode, want)
		}
	}
}
