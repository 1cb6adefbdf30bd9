package handlers

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// docServer serves client metadata documents over TLS on loopback.
type docServer struct {
	*httptest.Server
	fetches atomic.Int32
	docs    map[string]func(w http.ResponseWriter, self string)
}

func newDocServer(t *testing.T) *docServer {
	d := &docServer{docs: map[string]func(http.ResponseWriter, string){}}
	d.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.fetches.Add(1)
		if r.Header.Get("Cookie") != "" || r.Header.Get("Authorization") != "" {
			t.Errorf("the fetch carried credentials: %v", r.Header)
		}
		h, ok := d.docs[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		h(w, "https://"+r.Host+r.URL.Path)
	}))
	t.Cleanup(d.Close)
	return d
}

func (d *docServer) json(path, body string, cacheControl string) {
	d.docs[path] = func(w http.ResponseWriter, self string) {
		w.Header().Set("Content-Type", "application/json")
		if cacheControl != "" {
			w.Header().Set("Cache-Control", cacheControl)
		}
		fmt.Fprint(w, strings.ReplaceAll(body, "SELF", self))
	}
}

func (d *docServer) tlsConfig() *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(d.Certificate())
	return &tls.Config{RootCAs: pool}
}

const goodDocument = `{"client_id":"SELF","client_name":"Doc Client","redirect_uris":["http://127.0.0.1:7000/cb"],
	"grant_types":["authorization_code","refresh_token"],"token_endpoint_auth_method":"none","logo_uri":"https://cdn.example/logo.png"}`

func TestMetadataDocumentClient(t *testing.T) {
	docs := newDocServer(t)
	docs.json("/client.json", goodDocument, "max-age=600")
	docs.json("/wrong-id.json", `{"client_id":"https://other.example/x","redirect_uris":["http://127.0.0.1/cb"]}`, "")
	docs.json("/secret.json", `{"client_id":"SELF","redirect_uris":["http://127.0.0.1/cb"],"token_endpoint_auth_method":"client_secret_basic"}`, "")
	docs.json("/bad-redirect.json", `{"client_id":"SELF","redirect_uris":["http://evil.example/cb"]}`, "")
	docs.json("/big.json", `{"client_id":"SELF","redirect_uris":["http://127.0.0.1/cb"],"x":"`+strings.Repeat("a", 6000)+`"}`, "")
	docs.docs["/redirect.json"] = func(w http.ResponseWriter, self string) {
		w.Header().Set("Location", strings.Replace(self, "redirect.json", "client.json", 1))
		w.WriteHeader(http.StatusFound)
	}
	docs.docs["/html.json"] = func(w http.ResponseWriter, self string) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, strings.ReplaceAll(goodDocument, "SELF", self))
	}
	base := docs.URL // https://127.0.0.1:port

	ts := newTestServer(t, Config{MetadataDocuments: &MetadataDocumentConfig{AllowPrivate: true, TLS: docs.tlsConfig(), Timeout: 2 * time.Second}})
	params := url.Values{"response_type": {"code"}, "client_id": {base + "/client.json"}, "redirect_uri": {"http://127.0.0.1:7000/cb"},
		"state": {"s"}, "code_challenge": {challengeOf(testVerifier)}, "code_challenge_method": {"S256"}}

	page := ts.authorize("GET", params, "dora")
	body := page.Body.String()
	if page.Code != 200 || !strings.Contains(body, "Doc Client") || !strings.Contains(body, strings.TrimPrefix(base, "https://")) {
		t.Fatalf("consent for a document client: %d\n%s", page.Code, body)
	}
	_, q := redirectParams(t, ts.approve(page, "dora", "approve"))
	w, m := ts.exchange(base+"/client.json", q.Get("code"), testVerifier, "http://127.0.0.1:7000/cb")
	assertOAuthJSON(t, w, m, 200, "")
	if n := docs.fetches.Load(); n != 1 {
		t.Errorf("document fetched %d times; max-age should have cached it", n)
	}

	for path, why := range map[string]string{
		"/wrong-id.json": "client_id", "/secret.json": "none", "/bad-redirect.json": "redirect",
		"/big.json": "larger", "/redirect.json": "302", "/html.json": "application/json", "/missing.json": "404",
	} {
		w := ts.authorize("GET", with(params, "client_id", base+path), "dora")
		if w.Code != 400 || !strings.Contains(w.Body.String(), why) {
			t.Errorf("%s: %d, want a page naming %q:\n%s", path, w.Code, why, w.Body)
		}
	}
	for _, bad := range []string{"http://127.0.0.1/client.json", base, base + "/", base + "/c.json#f"} {
		if w := ts.authorize("GET", with(params, "client_id", bad), "dora"); w.Code != 400 {
			t.Errorf("client_id %q: %d", bad, w.Code)
		}
	}
	// Dot segments (draft-ietf-oauth-client-id-metadata-document §3),
	// also percent-encoded: refused before any fetch.
	for _, bad := range []string{base + "/a/../client.json", base + "/./client.json", base + "/a/%2e%2e/client.json",
		base + "/a/%2E%2E/client.json", base + "/%2E/client.json", base + "/a/.%2e/client.json", base + "/client.json/.."} {
		if w := ts.authorize("GET", with(params, "client_id", bad), "dora"); w.Code != 400 || !strings.Contains(w.Body.String(), ". or .. segments") {
			t.Errorf("client_id %q: %d\n%s", bad, w.Code, w.Body)
		}
	}
	if n := docs.fetches.Load(); n != 8 { // client.json once, and the seven refused documents
		t.Errorf("%d fetches: a refused client_id URL was fetched", n)
	}
	var meta map[string]any
	_, meta = ts.do("GET", "/.well-known/oauth-authorization-server", "", "", "")
	if meta["client_id_metadata_document_supported"] != true {
		t.Error("metadata does not advertise client_id_metadata_document_supported")
	}
}

func TestMetadataDocumentRefusesPrivateAddresses(t *testing.T) {
	docs := newDocServer(t)
	docs.json("/client.json", goodDocument, "")
	core, logs := observer.New(zap.InfoLevel)
	ts := newTestServer(t, Config{MetadataDocuments: &MetadataDocumentConfig{TLS: docs.tlsConfig()}, Logger: zap.New(core)})
	params := url.Values{"response_type": {"code"}, "client_id": {docs.URL + "/client.json"}, "redirect_uri": {"http://127.0.0.1:7000/cb"},
		"code_challenge": {challengeOf(testVerifier)}, "code_challenge_method": {"S256"}}
	w := ts.authorize("GET", params, "dora")
	if w.Code != 400 || docs.fetches.Load() != 0 {
		t.Fatalf("a loopback document was fetched: %d, %d fetches\n%s", w.Code, docs.fetches.Load(), w.Body)
	}
	// The person sees a generic reason; how the name resolved, which
	// describes the operator's network, goes to the log only.
	if page := w.Body.String(); !strings.Contains(page, "could not be retrieved") ||
		strings.Contains(page, "public address") || strings.Contains(page, "127.0.0.1:") {
		t.Fatalf("the page tells more than it should:\n%s", page)
	}
	if e := logs.FilterMessage("client metadata document unusable").All(); len(e) != 1 ||
		!strings.Contains(e[0].ContextMap()["error"].(string), "no public address") {
		t.Fatalf("the cause was not logged: %v", e)
	}
	for _, ip := range []string{"127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "::1", "fe80::1", "fc00::1", "0.0.0.0", "100.64.0.1", "224.0.0.1"} {
		if isPublicIP(net.ParseIP(ip)) {
			t.Errorf("%s counted as public", ip)
		}
	}
	for _, ip := range []string{"93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"} {
		if !isPublicIP(net.ParseIP(ip)) {
			t.Errorf("%s counted as private", ip)
		}
	}
	// A restricted host list refuses others before any fetch.
	ts2 := newTestServer(t, Config{MetadataDocuments: &MetadataDocumentConfig{AllowPrivate: true, TLS: docs.tlsConfig(), AllowedHosts: []string{"clients.example"}}})
	if w := ts2.authorize("GET", params, "dora"); w.Code != 400 || docs.fetches.Load() != 0 {
		t.Fatalf("host not on the list: %d", w.Code)
	}
}

func TestDocumentTTL(t *testing.T) {
	for cc, want := range map[string]time.Duration{
		"": defaultDocumentTTL, "max-age=60": time.Minute, "public, max-age=999999": maxDocumentTTL,
		"no-store": 0, "no-cache": 0, "max-age=-1": defaultDocumentTTL,
	} {
		if got := documentTTL(cc); got != want {
			t.Errorf("documentTTL(%q) = %v, want %v", cc, got, want)
		}
	}
}

// TestSlowDocumentHostHoldsUpNoOne: while one document host hangs, another
// client's authorization completes (the slow fetch is still pending when
// it does), and the slow fetch gives up at its deadline.
func TestSlowDocumentHostHoldsUpNoOne(t *testing.T) {
	started := make(chan struct{}, 1)
	slow := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-r.Context().Done() // never answers; the client's deadline ends it
	}))
	defer slow.Close()
	pool := x509.NewCertPool()
	pool.AddCert(slow.Certificate())
	ts := newTestServer(t, Config{MetadataDocuments: &MetadataDocumentConfig{AllowPrivate: true,
		TLS: &tls.Config{RootCAs: pool}, Timeout: 3 * time.Second}})
	_, params := ts.publicClient("")

	done := make(chan int, 1)
	go func() {
		done <- ts.authorize("GET", with(params, "client_id", slow.URL+"/client.json"), "gina").Code
	}()
	select { // the slow fetch is under way
	case <-started:
	case code := <-done:
		t.Fatalf("the document fetch never reached the server: %d", code)
	case <-time.After(30 * time.Second):
		t.Fatal("the document fetch never started")
	}
	if w := ts.authorize("GET", params, "gina"); w.Code != 200 {
		t.Fatalf("registered client during a slow fetch: %d", w.Code)
	}
	select {
	case code := <-done:
		t.Fatalf("the slow fetch ended (%d) before the other client was served", code)
	default:
	}
	if code := <-done; code != 400 {
		t.Fatalf("slow document: %d", code)
	}
}
