package handlers

import (
	"bytes"
	"context"
	"crypto/elliptic"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-dcr/caddy-dcr/storage"
)

// FuzzMetadata drives registration metadata parsing and validation with
// arbitrary bodies. Whatever the input, the parser must not panic, an
// accepted body must encode to JSON without nulls that decodes again, and a
// refusal must be one of the RFC 7591 error codes.
func FuzzMetadata(f *testing.F) {
	for _, seed := range []string{
		`{}`,
		`{"redirect_uris":["https://a.example/cb"],"client_name":"A","scope":"read write"}`,
		`{"grant_types":["client_credentials"],"token_endpoint_auth_method":"client_secret_post","x":{"y":[1,null]}}`,
		`{"redirect_uris":null,"response_types":null,"client_name":""}`,
		`{"token_endpoint_auth_method":"none","redirect_uris":["http://[::1]:8080/cb","com.example:/cb"]}`,
		`{"jwks":{"keys":[]},"grant_types":["client_credentials"]}`,
		`{"redirect_uris":["javascript:alert(1)"]}`,
		`[1,2]`, `null`, `"x"`, `{"a":`,
	} {
		f.Add([]byte(seed))
	}
	pol := metadataPolicy{scopes: []string{"read", "write"}}
	codes := map[string]bool{
		"invalid_client_metadata": true, "invalid_redirect_uri": true,
		"invalid_software_statement": true, "unapproved_software_statement": true,
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, oerr := parseMetadata(body)
		if oerr == nil {
			oerr = pol.validateMetadata(&req.meta)
		}
		if oerr != nil {
			if !codes[oerr.Code] || oerr.Status != 400 {
				t.Fatalf("unexpected error %v (status %d)", oerr, oerr.Status)
			}
			return
		}
		out, err := json.Marshal(req.meta)
		if err != nil {
			t.Fatalf("accepted metadata does not encode: %v", err)
		}
		var back map[string]any
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("encoded metadata does not decode: %v\n%s", err, out)
		}
		for k, v := range back {
			if v == nil {
				t.Fatalf("%s encoded as null: %s", k, out)
			}
		}
		for _, u := range req.meta.RedirectURIs {
			if checkRedirectURI(u) != nil {
				t.Fatalf("accepted bad redirect URI %q", u)
			}
		}
	})
}

// FuzzIJSON checks that checkIJSON never panics and that whatever it
// accepts is valid UTF-8 JSON that encoding/json decodes.
func FuzzIJSON(f *testing.F) {
	for _, seed := range []string{
		`{"redirect_uris":["https://a.example/cb"],"jwks":{"keys":[{"kty":"EC","x5c":["MIIB"]}]}}`,
		`{"a":1,"a":2}`, `{"a":{"b":1},"b":{"a":1}}`, `[[[[[[[[[[1]]]]]]]]]]`,
		`{"a":"\ud800"}`, `{"\u0000":0}`, `"x"`, `1e400`, `{} {}`, `{"a":[1,2,}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if checkIJSON(b) != nil {
			return
		}
		if !json.Valid(b) || !utf8.Valid(b) {
			t.Fatalf("accepted %q", b)
		}
		var m map[string]any
		if b := bytes.TrimSpace(b); len(b) > 0 && b[0] == '{' {
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatalf("accepted %q, which does not decode to a map: %v", b, err)
			}
		}
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("accepted %q, which does not decode: %v", b, err)
		}
	})
}

// FuzzParseBearer checks that whatever the Authorization header holds, an
// accepted token is a non-empty b64token.
func FuzzParseBearer(f *testing.F) {
	for _, seed := range []string{"Bearer abc", "bearer a.b.c", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer a==", "Bearer  x"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, v string) {
		token, ok := parseBearer(v)
		if ok != (token != "") {
			t.Fatalf("ok=%v with token %q", ok, token)
		}
		if ok && !isB64Token(token) {
			t.Fatalf("accepted %q", token)
		}
	})
}

// FuzzParseBasic checks the client authentication header parser: an
// accepted header yields a non-empty client id, and never panics.
func FuzzParseBasic(f *testing.F) {
	for _, seed := range []string{"Basic YWJjOmRlZg==", "Basic YSUzQWI6YyUyQmQ=", "Basic cHViOg==", "Basic !!", "basic Og==", "Bearer x"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, v string) {
		id, _, ok := parseBasic(v)
		if ok && id == "" {
			t.Fatalf("accepted %q with an empty client id", v)
		}
	})
}

// fuzzServer is a Server on an in-memory store, closed with the fuzz test.
func fuzzServer(f *testing.F) (*Server, storage.Store) {
	store := memStore(f)
	srv, err := New(context.Background(), store, Config{}.WithDefaults())
	if err != nil {
		f.Fatal(err)
	}
	return srv, store
}

// FuzzTokenRequest sends arbitrary form bodies and Authorization headers to
// the token endpoint: every answer must be a JSON OAuth error or success
// with the no-store header, never a panic or a 5xx.
func FuzzTokenRequest(f *testing.F) {
	f.Add("grant_type=client_credentials&scope=read", "Basic YWJjOmRlZg==")
	f.Add("grant_type=refresh_token&refresh_token=x&client_id=abc", "")
	f.Add("grant_type=client_credentials&resource=http%3A%2F%2Fexample.com%2Fa&resource=b", "")
	f.Add("%zz=1&grant_type", "Basic")
	srv, _ := fuzzServer(f)
	f.Fuzz(func(t *testing.T, form, authorization string) {
		r := httptest.NewRequest("POST", "/oauth/token", strings.NewReader(form))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if authorization != "" {
			r.Header["Authorization"] = []string{authorization}
		}
		w := httptest.NewRecorder()
		if err := srv.ServeHTTP(w, r, nil); err != nil {
			t.Fatal(err)
		}
		if w.Code >= 500 || w.Header().Get("Cache-Control") != "no-store" || !json.Valid(w.Body.Bytes()) {
			t.Fatalf("%d %v %q", w.Code, w.Header(), w.Body)
		}
	})
}

// FuzzParseJWT feeds arbitrary strings to the access token parser: it must
// never accept a token this server did not sign, nor another spelling or
// signature of one it did.
func FuzzParseJWT(f *testing.F) {
	store := memStore(f)
	defer store.Close()
	ring, err := newKeyRing(context.Background(), store, time.Now, time.Hour, time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	good, err := ring.sign(context.Background(), &accessClaims{Issuer: "i", Subject: "s", Audience: audience{"a"}, Expiry: 1, ID: "j", ClientID: "c"})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.")
	f.Add("a.b.c")
	f.Add(good[:len(good)-2])
	// Twins of good that a lenient parser accepts: the same signature
	// with a stray bit or a line break, and the high-S signature.
	dot := strings.LastIndexByte(good, '.')
	f.Add(good[:dot+1] + setTrailingBit(f, good[dot+1:]))
	f.Add(good[:dot+10] + "\r\n" + good[dot+10:])
	sig, err := base64.RawURLEncoding.DecodeString(good[dot+1:])
	if err != nil {
		f.Fatal(err)
	}
	r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
	f.Add(good[:dot+1] + encodeSig(r, s.Sub(elliptic.P256().Params().N, s)))
	f.Fuzz(func(t *testing.T, token string) {
		c, err := ring.verify(context.Background(), token)
		if err == nil && token != good {
			// A token has one spelling (canonical base64url) and one
			// signature (low S): anything else is a forgery.
			t.Fatalf("accepted a token the server did not issue: %q -> %+v", token, c)
		}
	})
}

// FuzzAuthorizationRequest sends arbitrary query strings to the
// authorization endpoint: it must answer with a page or a redirect to a
// registered URI, never panic, and never hand out a code without PKCE.
func FuzzAuthorizationRequest(f *testing.F) {
	srv, store := fuzzServer(f)
	c := &storage.Client{ID: "fuzzclient", RegistrationTokenHash: []byte("x"), Metadata: storage.Metadata{
		RedirectURIs: []string{"http://127.0.0.1:4000/cb"}, TokenEndpointAuthMethod: "none",
		GrantTypes: []string{"authorization_code"}, ResponseTypes: []string{"code"}}}
	if err := store.CreateClient(context.Background(), c); err != nil {
		f.Fatal(err)
	}
	srv.cfg.TrustedClients = []string{"fuzzclient"}
	f.Add("response_type=code&client_id=fuzzclient&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256&state=x")
	f.Add("response_type=code&client_id=fuzzclient&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb&scope=a+b&resource=http%3A%2F%2Fexample.com%2Fx")
	f.Add("client_id=nope&%zz")
	f.Fuzz(func(t *testing.T, query string) {
		r := httptest.NewRequest("GET", "/oauth/authorize", nil)
		r.URL.RawQuery = query
		repl := caddy.NewReplacer()
		repl.Set("http.auth.user.id", "fuzzer")
		r = caddyhttp.PrepareRequest(r, repl, nil, nil)
		w := httptest.NewRecorder()
		if err := srv.ServeHTTP(w, r, nil); err != nil {
			t.Fatal(err)
		}
		loc := w.Header().Get("Location")
		if w.Code == 302 {
			u, err := url.Parse(loc)
			if err != nil || !redirectRegistered(u.Scheme+"://"+u.Host+u.Path, c.Metadata.RedirectURIs) {
				t.Fatalf("redirected to an unregistered URI %q", loc)
			}
			q := r.URL.Query()
			if u.Query().Get("code") != "" && (q.Get("code_challenge_method") != "S256" || len(q.Get("code_challenge")) != 43) {
				t.Fatalf("a code without PKCE for %q", query)
			}
		} else if w.Code >= 500 {
			t.Fatalf("%d for %q", w.Code, query)
		}
	})
}

// FuzzMetadataDocument feeds arbitrary documents to the client ID
// metadata document parser: an accepted document names itself and is a
// public client with valid redirect URIs.
func FuzzMetadataDocument(f *testing.F) {
	const id = "https://client.example/meta.json"
	f.Add(`{"client_id":"` + id + `","redirect_uris":["http://127.0.0.1/cb"],"client_name":"x"}`)
	f.Add(`{"client_id":"` + id + `","redirect_uris":["https://a.example/cb"],"token_endpoint_auth_method":"client_secret_basic"}`)
	f.Add(`{"client_id":"https://other.example/m","redirect_uris":[]}`)
	f.Add(`[]`)
	m := newMetadataDocuments(MetadataDocumentConfig{}, metadataPolicy{}, nil)
	f.Fuzz(func(t *testing.T, doc string) {
		c, err := m.parseDocument(id, []byte(doc))
		if err != nil {
			return
		}
		if c.ID != id || !c.Public() {
			t.Fatalf("accepted %+v", c)
		}
		for _, u := range c.Metadata.RedirectURIs {
			if checkRedirectURI(u) != nil {
				t.Fatalf("accepted redirect URI %q", u)
			}
		}
	})
}

// FuzzDocumentURL feeds arbitrary client_id URLs to the metadata document
// URL check: an accepted one is https with a host and a path that has no
// dot segment, however it was encoded.
func FuzzDocumentURL(f *testing.F) {
	for _, seed := range []string{"https://app.example/client.json", "https://app.example/a/../client.json",
		"https://app.example/./x", "https://app.example/a/%2e%2e/x", "https://app.example/%2E/x", "https://u@app.example/x",
		"https://app.example/x#f", "http://app.example/x", "https://app.example/.well-known/x.json"} {
		f.Add(seed)
	}
	m := newMetadataDocuments(MetadataDocumentConfig{}, metadataPolicy{}, nil)
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := m.checkDocumentURL(raw)
		if err != nil {
			return
		}
		if u.Scheme != "https" || u.Host == "" || u.User != nil || u.Fragment != "" {
			t.Fatalf("accepted %q", raw)
		}
		for _, seg := range strings.Split(u.Path, "/") {
			if seg == "." || seg == ".." {
				t.Fatalf("accepted %q with a dot segment", raw)
			}
		}
	})
}
