package handlers

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-dcr/caddy-dcr/storage"
)

// A proxy drops the headers that Connection names. A caller listing the
// identity headers there made Caddy's reverse_proxy (HTTP and FastCGI)
// send the upstream none of them.
func TestConnectionHeaderCannotDropIdentityHeaders(t *testing.T) {
	ts := newTestServer(t, Config{SubjectHeader: "X-Auth-Subject", ClientIDHeader: "X-Auth-Client-Id",
		ScopeHeader: "X-Auth-Scope", StripAuthorization: true})
	id, secret := ts.machineClient("")
	token := ts.clientCredentialsToken(id, secret, "")
	for _, tc := range []struct {
		name string
		conn []string
		want []string // the Connection header the upstream gets; nil: none
	}{
		{"all identity headers", []string{"X-Auth-Subject, X-Auth-Client-Id, X-Auth-Scope"}, nil},
		{"any casing, spread over values", []string{"x-auth-subject", "keep-alive, X-AUTH-SCOPE ,authorization"}, []string{"keep-alive"}},
		{"other options kept", []string{"close, X-Custom"}, []string{"close, X-Custom"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn := append([]string(nil), tc.conn...)
			status, _ := ts.gatedWith("/api", "Bearer "+token, http.Header{"Connection": conn})
			if status != http.StatusTeapot {
				t.Fatalf("status %d", status)
			}
			got := ts.upstream.Header["Connection"]
			if len(got) != len(tc.want) || (len(got) > 0 && got[0] != tc.want[0]) {
				t.Fatalf("upstream Connection %q, want %q", got, tc.want)
			}
			if ts.upstream.Header.Get("X-Auth-Subject") != id {
				t.Fatalf("identity header lost")
			}
		})
	}
}

// A token carrying nbf (RFC 7519 §4.1.4) is refused before that time. This
// server sets no nbf, so such a token was made elsewhere with its key;
// the claim is honoured all the same.
func TestGateHonoursNotBefore(t *testing.T) {
	ts := newTestServer(t, Config{})
	now := ts.clock.Unix()
	sign := func(nbf int64) string {
		tok, err := ts.srv.keys.sign(t.Context(), &accessClaims{Issuer: "http://example.com", Subject: "s",
			Audience: audience{"http://example.com"}, IssuedAt: now, Expiry: now + 600, ID: randomString(16),
			ClientID: "c", NotBefore: nbf})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	for _, tc := range []struct {
		nbf  int64
		want int
	}{{now + 60, http.StatusUnauthorized}, {now, http.StatusTeapot}, {now - 60, http.StatusTeapot}} {
		if status, _ := ts.gated("/api", "Bearer "+sign(tc.nbf)); status != tc.want {
			t.Errorf("nbf %+d s: %d, want %d", tc.nbf-now, status, tc.want)
		}
	}
}

func TestHostPortServed(t *testing.T) {
	for _, tc := range []struct {
		host  string
		local net.Addr
		tls   bool
		want  bool
	}{
		{"example.com:8080", &net.TCPAddr{Port: 8080}, false, true},
		{"example.com:6666", &net.TCPAddr{Port: 8080}, false, false},
		{"example.com", &net.TCPAddr{Port: 80}, false, true},
		{"example.com", &net.TCPAddr{Port: 8080}, false, false},
		{"example.com", &net.TCPAddr{Port: 443}, true, true},
		{"[::1]:8080", &net.TCPAddr{Port: 8080}, false, true},
		{"[::1]", &net.TCPAddr{Port: 80}, false, true},
		{"[::1]:x", &net.TCPAddr{Port: 80}, false, false},
		{"example.com:08080", &net.TCPAddr{Port: 8080}, false, false},
		{"example.com:+8080", &net.TCPAddr{Port: 8080}, false, false},
		{"example.com:443", &net.UDPAddr{Port: 443}, true, true},
		{"anything:1", nil, false, true}, // outside a real server
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.Host = tc.host
		if tc.local != nil {
			r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, tc.local))
		}
		if !tc.tls {
			r.TLS = nil
		} else {
			r.TLS = &tls.ConnectionState{}
		}
		if got := hostPortServed(r); got != tc.want {
			t.Errorf("Host %q on %v (tls %v): %v, want %v", tc.host, tc.local, tc.tls, got, tc.want)
		}
	}
}

// A caller declaring an identity header as a trailer is refused: an
// upstream that merges trailers into headers would read the caller's.
func TestTrailerCannotCarryIdentity(t *testing.T) {
	ts := newTestServer(t, Config{SubjectHeader: "X-Auth-Subject"})
	id, secret := ts.machineClient("")
	token := ts.clientCredentialsToken(id, secret, "")
	r := httptest.NewRequest("POST", "/api", nil)
	r.Header.Set("Authorization", "Bearer "+token)
	r.Trailer = http.Header{"X-Auth-Subject": nil}
	err := ts.srv.ServeHTTP(httptest.NewRecorder(), r, ts.next())
	var he caddyhttp.HandlerError
	if !errors.As(err, &he) || he.StatusCode != http.StatusBadRequest || ts.passed != 0 {
		t.Fatalf("got %v, %d passed", err, ts.passed)
	}
}

// staleStore is a shared store whose revocation view has lost its backend.
type staleStore struct{ storage.Store }

func (staleStore) Current() bool { return false }

// With fail_closed, a gate whose store cannot tell it about revocations
// made elsewhere refuses (503); without it, it keeps accepting the tokens
// it can verify.
func TestFailClosed(t *testing.T) {
	for _, failClosed := range []bool{false, true} {
		ts := newTestServer(t, Config{FailClosed: failClosed})
		id, secret := ts.machineClient("")
		token := ts.clientCredentialsToken(id, secret, "")
		ts.srv.store = staleStore{ts.store}
		want := http.StatusTeapot
		if failClosed {
			want = http.StatusServiceUnavailable
		}
		if status, _ := ts.gated("/api", "Bearer "+token); status != want {
			t.Errorf("fail_closed %v: %d, want %d", failClosed, status, want)
		}
	}
}

func TestGate(t *testing.T) {
	ts := newTestServer(t, Config{ScopesSupported: []string{"read", "write"}, RequireScope: []string{"read"},
		SubjectHeader: "X-Auth-Subject", ClientIDHeader: "X-Auth-Client-Id", ScopeHeader: "X-Auth-Scope"})
	id, secret := ts.machineClient("")
	token := ts.clientCredentialsToken(id, secret, "")
	readOnly := ts.clientCredentialsToken(id, secret, "write")

	status, chal := ts.gated("/api/items", "")
	if status != 401 || chal != `Bearer resource_metadata="http://example.com/.well-known/oauth-protected-resource/api/items", scope="read"` {
		t.Fatalf("no token: %d %q", status, chal)
	}
	for name, auth := range map[string]string{
		"garbage":         "Bearer abc.def.ghi",
		"tampered":        "Bearer " + token[:len(token)-4] + "AAAA",
		"wrong scheme":    "Basic " + base64.StdEncoding.EncodeToString([]byte(id+":"+secret)),
		"token as basic?": "Token " + token,
	} {
		status, chal := ts.gated("/api/items", auth)
		if status != 401 || !strings.Contains(chal, "resource_metadata=") {
			t.Errorf("%s: %d %q", name, status, chal)
		}
		if strings.HasPrefix(auth, "Bearer") && !strings.Contains(chal, `error="invalid_token"`) {
			t.Errorf("%s: challenge without invalid_token: %q", name, chal)
		}
	}
	// A token in the query string is not looked at.
	if status, _ := ts.gated("/api/items?access_token="+token, ""); status != 401 {
		t.Errorf("query token accepted: %d", status)
	}

	status, chal = ts.gated("/api/items", "Bearer "+readOnly)
	if status != 403 || !strings.Contains(chal, `error="insufficient_scope"`) || !strings.Contains(chal, `scope="read"`) {
		t.Fatalf("insufficient scope: %d %q", status, chal)
	}

	// A valid token passes, forged identity headers are replaced, and the
	// placeholders name the caller.
	status, _ = ts.gated("/api/items", "bearer "+token, "X-Auth-Subject", "admin", "X-Auth-Scope", "everything")
	if status != http.StatusTeapot || ts.upstream == nil {
		t.Fatalf("valid token: %d", status)
	}
	h := ts.upstream.Header
	if h.Get("X-Auth-Subject") != id || h.Get("X-Auth-Client-Id") != id || h.Get("X-Auth-Scope") != "read write" {
		t.Fatalf("identity headers %v", h)
	}
	if len(h.Values("X-Auth-Subject")) != 1 || h.Get("Authorization") == "" {
		t.Fatalf("headers upstream: %v", h)
	}
	repl := ts.upstream.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if v, _ := repl.GetString("http.auth.user.id"); v != id {
		t.Errorf("http.auth.user.id = %q", v)
	}
	if v, _ := repl.GetString("http.auth.user.scope"); v != "read write" {
		t.Errorf("http.auth.user.scope = %q", v)
	}
	if v, _ := repl.GetString("http.auth.user.client_id"); v != id {
		t.Errorf("http.auth.user.client_id = %q", v)
	}

	// A cached token's signature under another payload misses the cache
	// and fails verification: the cache answers only the exact token.
	parts := strings.Split(token, ".")
	other := strings.Split(readOnly, ".")
	for _, forged := range []string{parts[0] + "." + other[1] + "." + parts[2], other[0] + "." + other[1] + "." + parts[2], "x.y." + parts[2]} {
		if status, chal := ts.gated("/api/items", "Bearer "+forged); status != 401 || !strings.Contains(chal, "invalid_token") {
			t.Fatalf("a cached signature with another payload: %d %q", status, chal)
		}
	}

	// Forged headers are removed even when the request is refused.
	ts.gated("/api/items", "", "X-Auth-Subject", "admin")

	// Expiry: past exp the cached claims no longer pass.
	ts.clock = ts.clock.Add(time.Hour)
	if status, chal := ts.gated("/api/items", "Bearer "+token); status != 401 || !strings.Contains(chal, "invalid_token") {
		t.Fatalf("expired token: %d %q", status, chal)
	}
}

func TestGatePreflight(t *testing.T) {
	preflight := func(ts *testServer, origin string) int {
		r := httptest.NewRequest("OPTIONS", "/mcp", nil)
		if origin != "" {
			r.Header.Set("Origin", origin)
		}
		r.Header.Set("Access-Control-Request-Method", "POST")
		r.Header.Set("X-Auth-Subject", "forged")
		r = caddyhttp.PrepareRequest(r, caddy.NewReplacer(), nil, nil)
		w := httptest.NewRecorder()
		if err := ts.srv.ServeHTTP(w, r, ts.next()); err != nil {
			return 401
		}
		if ts.upstream.Header.Get("X-Auth-Subject") != "" {
			t.Fatal("a forged identity header passed with a preflight")
		}
		return w.Code
	}
	off := newTestServer(t, Config{SubjectHeader: "X-Auth-Subject"})
	if got := preflight(off, "https://app.example"); got != 401 {
		t.Fatalf("preflight with allow_preflight off: %d", got)
	}
	on := newTestServer(t, Config{SubjectHeader: "X-Auth-Subject", AllowPreflight: true})
	if got := preflight(on, "https://app.example"); got != http.StatusTeapot {
		t.Fatalf("preflight with allow_preflight on: %d", got)
	}
	if got := preflight(on, ""); got != 401 {
		t.Fatalf("an OPTIONS without Origin is no preflight: %d", got)
	}
	if status, _ := on.gated("/mcp", ""); status != 401 {
		t.Fatalf("a GET without a token with allow_preflight on: %d", status)
	}
}

// With no configured resource each path is a resource of its own, as the
// gate's challenge and the per-path metadata say: a token for one MCP
// server behind the site is refused by another (RFC 9068 §4), and a token
// for the whole origin goes anywhere.
func TestGateAudienceWithoutResource(t *testing.T) {
	ts := newTestServer(t, Config{})
	id, secret := ts.machineClient("")
	whole := ts.clientCredentialsToken(id, secret, "")
	w, m := ts.form("/oauth/token", id, secret, url.Values{"grant_type": {"client_credentials"}, "resource": {"http://example.com/server-a"}})
	assertOAuthJSON(t, w, m, http.StatusOK, "")
	serverA := m["access_token"].(string)
	for _, tc := range []struct {
		token, path string
		ok          bool
	}{
		{whole, "/server-a", true}, {whole, "/server-b/x", true}, {whole, "/", true},
		{serverA, "/server-a", true}, {serverA, "/server-a/", true}, {serverA, "/server-a/tools?x=1", true},
		{serverA, "/server-b", false}, {serverA, "/server-ab", false}, {serverA, "/", false},
		// Paths that Caddy's matchers or the upstream resolve to
		// /server-b: not under /server-a however they start.
		{serverA, "/server-a/../server-b", false}, {serverA, "/server-a/%2e%2e/server-b", false},
		{serverA, "/server-a/%2E./server-b/x", false}, {serverA, "/server-a/..%2Fserver-b", false},
		{serverA, "/server-a//../server-b", false}, {serverA, "/server-a/./../server-b/x", false},
		{serverA, "/server-a/.%2e/server-b", false}, {serverA, "/server-a/..%5Cserver-b", false},
		{serverA, "/server-a/..;/server-b", false}, {serverA, "/server-a/..%3b/server-b", false},
		{serverA, "/server-a/..%20/server-b", false}, {serverA, "/server-a/%252e%252e/server-b", false},
		// The token for the origin is not bound to a path.
		{whole, "/server-a/../server-b", true},
	} {
		status, chal := ts.gated(tc.path, "Bearer "+tc.token)
		if ok := status == http.StatusTeapot; ok != tc.ok {
			t.Errorf("%s with a token for %s: %d %q", tc.path, map[bool]string{true: "the origin", false: "/server-a"}[tc.token == whole], status, chal)
		}
		if !tc.ok && !strings.Contains(chal, "another resource") {
			t.Errorf("%s: challenge %q", tc.path, chal)
		}
	}
	for _, tc := range []struct {
		p, base string
		want    bool
	}{
		{"/a", "", true}, {"/a", "/", true}, {"/a/b", "/a", true}, {"/a", "/a/", true},
		{"/ab", "/a", false}, {"/a", "/a?x", false}, {"/b", "/a", false}, {"/a", "a", false},
		{"/a/..", "/a", false}, {"/a//b", "/a", false}, {"/a/.", "/a", false}, {"/a/%2E%2E", "/a", false},
		{"/a/%2e", "/a", false}, {"/a/b%2Fc", "/a", false}, {"/a/%41", "/a", true}, {"/a/v1.0", "/a", true}, {"/a/b;v=1", "/a", true},
		// Dots that some reader of the path resolves as ".." (Tomcat's
		// "..;", Windows' trailing dots and spaces), double encoding,
		// look-alikes of a dot.
		{"/a/...", "/a", false}, {"/a/..;", "/a", false}, {"/a/..%3b", "/a", false}, {"/a/%2e%2e;x", "/a", false},
		{"/a/..;jsessionid=x", "/a", false}, {"/a/..%00", "/a", false}, {"/a/..%20", "/a", false}, {"/a/..%09", "/a", false},
		{"/a/....", "/a", false}, {"/a/%252e%252e", "/a", false}, {"/a/%ef%bc%8e%ef%bc%8e", "/a", false}, {"/a/;x", "/a", false},
	} {
		if got := pathAtOrBelow(tc.p, tc.base); got != tc.want {
			t.Errorf("pathAtOrBelow(%q, %q) = %v", tc.p, tc.base, got)
		}
	}
}

func TestGateAudience(t *testing.T) {
	ts := newTestServer(t, Config{Resource: "http://example.com/mcp"})
	id, secret := ts.machineClient("")
	def := ts.clientCredentialsToken(id, secret, "")
	w, m := ts.form("/oauth/token", id, secret, url.Values{"grant_type": {"client_credentials"}, "resource": {"http://example.com/mcp/tools"}})
	assertOAuthJSON(t, w, m, http.StatusOK, "")
	below := m["access_token"].(string)

	if status, _ := ts.gated("/mcp", "Bearer "+def); status != http.StatusTeapot {
		t.Errorf("token for the gate's resource: %d", status)
	}
	if status, _ := ts.gated("/mcp", "Bearer "+below); status != http.StatusTeapot {
		t.Errorf("token for a URL below the resource: %d", status)
	}
	// A sibling gate with a narrower resource refuses a token for the
	// whole site and for another path.
	other := newTestServer(t, Config{Resource: "http://example.com/other"})
	other.srv.keys, other.srv.store = ts.srv.keys, ts.srv.store
	status, chal := other.gated("/other", "Bearer "+def)
	if status != 401 || !strings.Contains(chal, "another resource") ||
		!strings.Contains(chal, `resource_metadata="http://example.com/.well-known/oauth-protected-resource/other"`) {
		t.Errorf("token for another resource: %d %q", status, chal)
	}
	for _, tc := range []struct {
		uri, base string
		want      bool
	}{
		{"https://a.example/mcp", "https://a.example", true},
		{"https://a.example/mcp", "https://a.example/", true},
		{"https://a.example/mcp/x", "https://a.example/mcp", true},
		{"https://a.example/mcpx", "https://a.example/mcp", false},
		{"https://a.example.evil/", "https://a.example", false},
		{"https://a.example", "https://a.example/mcp", false},
	} {
		if got := atOrBelow(tc.uri, tc.base); got != tc.want {
			t.Errorf("atOrBelow(%q, %q) = %v", tc.uri, tc.base, got)
		}
	}
}

// RFC 6750 §3.1: a request that repeats its credentials is
// invalid_request (400), even when each copy holds a good token.
func TestGateRefusesRepeatedAuthorization(t *testing.T) {
	ts := newTestServer(t, Config{})
	id, secret := ts.machineClient("")
	token := ts.clientCredentialsToken(id, secret, "")
	status, chal := ts.gatedWith("/api", "", http.Header{"Authorization": {"Bearer " + token, "Bearer " + token}})
	if status != http.StatusBadRequest || !strings.Contains(chal, `error="invalid_request"`) || ts.upstream != nil {
		t.Fatalf("two Authorization headers: %d %q, upstream reached: %v", status, chal, ts.upstream != nil)
	}
	if status, _ := ts.gated("/api", "Bearer "+token); status != http.StatusTeapot {
		t.Fatalf("one header: %d", status)
	}
}

// access_token_signing_alg RS256 (RFC 9068 §2.1): the RSA key is in the
// JWKS from the start, the token endpoint issues RS256 at+jwt tokens, and
// the gate accepts them, before and after caching, and refuses one whose
// signature was changed, cached or not. An ES256 handler on the same store
// verifies them too, by their kid.
func TestRS256AccessTokens(t *testing.T) {
	es := newTestServer(t, Config{})
	ts := &testServer{t: t, store: es.store, clock: es.clock}
	var err error
	ts.srv, err = New(t.Context(), es.store, Config{AccessTokenSigningAlg: "RS256",
		Now: func() time.Time { return ts.clock }}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	_, m := ts.do("GET", "/oauth/jwks", "", "", "")
	var rsaKid string
	for _, k := range m["keys"].([]any) {
		if k := k.(map[string]any); k["kty"] == "RSA" && k["alg"] == "RS256" {
			rsaKid = k["kid"].(string)
		}
	}
	if rsaKid == "" {
		t.Fatalf("no RS256 key in the JWKS before the first token: %v", m)
	}

	id, secret := ts.machineClient("")
	token := ts.clientCredentialsToken(id, secret, "")
	if h := jwtHeader(t, token); h["alg"] != "RS256" || h["typ"] != "at+jwt" || h["kid"] != rsaKid {
		t.Fatalf("header %v", h)
	}
	i := strings.LastIndexByte(token, '.')
	if n := len(token) - i - 1; n != 342 {
		t.Fatalf("signature of %d characters", n)
	}
	// A character in the middle of the signature changed: other bytes,
	// the same length.
	c := byte('A')
	if token[i+100] == c {
		c = 'B'
	}
	tampered := token[:i+100] + string(c) + token[i+101:]
	if status, _ := ts.gated("/api", "Bearer "+tampered); status != http.StatusUnauthorized {
		t.Fatalf("a tampered RS256 token: %d", status)
	}
	for range 2 { // verified, then cached
		if status, _ := ts.gated("/api", "Bearer "+token); status != http.StatusTeapot {
			t.Fatalf("the RS256 token: %d", status)
		}
	}
	if status, _ := ts.gated("/api", "Bearer "+tampered); status != http.StatusUnauthorized {
		t.Fatalf("a tampered RS256 token, once the good one is cached: %d", status)
	}
	w, m := ts.form("/oauth/introspect", id, secret, url.Values{"token": {token}})
	if w.Code != http.StatusOK || m["active"] != true {
		t.Fatalf("introspection: %d %v", w.Code, m)
	}

	// The ES256 handler loaded its keys before the RSA key existed: it
	// learns it from the store (at most once a second) by the kid.
	es.clock = es.clock.Add(2 * time.Second)
	if status, _ := es.gated("/api", "Bearer "+token); status != http.StatusTeapot {
		t.Fatalf("an ES256 handler on the store refuses the RS256 token: %d", status)
	}
	if h := jwtHeader(t, es.clientCredentialsToken(id, secret, "")); h["alg"] != "ES256" {
		t.Fatalf("the ES256 handler signs %v", h)
	}
}

// Behind handle_path or uri strip_prefix the gate sees /mcp for both
// /server-a/mcp and /server-b/mcp: it goes by the path the client sent,
// so a token for /server-a passes only there, and the challenge names
// the resource the client asked about.
func TestGateAudienceBehindStripPrefix(t *testing.T) {
	ts := newTestServer(t, Config{})
	id, secret := ts.machineClient("")
	token := func(res string) string {
		w, m := ts.form("/oauth/token", id, secret, url.Values{"grant_type": {"client_credentials"}, "resource": {res}})
		assertOAuthJSON(t, w, m, http.StatusOK, "")
		return m["access_token"].(string)
	}
	serverA, mcp := token("http://example.com/server-a"), token("http://example.com/mcp")
	stripped := func(path, bearer string) (int, string) {
		r := httptest.NewRequest("GET", path, nil)
		if bearer != "" {
			r.Header.Set("Authorization", "Bearer "+bearer)
		}
		r = caddyhttp.PrepareRequest(r, caddy.NewReplacer(), nil, nil)
		r.URL.Path = strings.TrimPrefix(path, path[:strings.IndexByte(path[1:], '/')+1]) // as handle_path strips
		w := httptest.NewRecorder()
		err := ts.srv.ServeHTTP(w, r, ts.next())
		var he caddyhttp.HandlerError
		if errors.As(err, &he) {
			return he.StatusCode, w.Header().Get("WWW-Authenticate")
		}
		return w.Code, w.Header().Get("WWW-Authenticate")
	}
	if status, _ := stripped("/server-a/mcp", serverA); status != http.StatusTeapot {
		t.Errorf("token for /server-a at /server-a/mcp: %d", status)
	}
	for _, tc := range []struct{ path, token string }{{"/server-b/mcp", serverA}, {"/server-a/mcp", mcp}, {"/server-b/mcp", mcp}} {
		if status, _ := stripped(tc.path, tc.token); status != http.StatusUnauthorized {
			t.Errorf("%s with a token for another path: %d", tc.path, status)
		}
	}
	if _, chal := stripped("/server-b/mcp", ""); !strings.Contains(chal, `resource_metadata="http://example.com/.well-known/oauth-protected-resource/server-b/mcp"`) {
		t.Errorf("challenge behind strip_prefix: %q", chal)
	}
}
