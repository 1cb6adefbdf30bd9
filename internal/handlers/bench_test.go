package handlers

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-dcr/caddy-dcr/storage"
)

var okHandler = caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
	w.WriteHeader(http.StatusOK)
	return nil
})

func benchServer(b *testing.B) (*testServer, string, string) {
	ts := newTestServer(b, Config{SubjectHeader: "X-Auth-Subject", ClientIDHeader: "X-Auth-Client-Id", ScopeHeader: "X-Auth-Scope",
		Now: time.Now})
	id, secret := ts.machineClient(`,"scope":"read write"`)
	return ts, id, secret
}

// BenchmarkTokenIssuance measures a client_credentials token request
// through the handler: form parsing, client authentication (a store read
// and a hash), scope checks and an ES256 signature.
func BenchmarkTokenIssuance(b *testing.B) {
	ts, id, secret := benchServer(b)
	body := url.Values{"grant_type": {"client_credentials"}}.Encode()
	b.ReportAllocs()
	for b.Loop() {
		r := httptest.NewRequest("POST", "/oauth/token", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.SetBasicAuth(id, secret)
		w := httptest.NewRecorder()
		_ = ts.srv.ServeHTTP(w, r, nil)
		if w.Code != 200 {
			b.Fatalf("%d %s", w.Code, w.Body)
		}
	}
}

// BenchmarkTokenSigning measures what the token endpoint cannot avoid:
// building the claims of a client_credentials token and signing them
// with ES256. BenchmarkTokenIssuance minus this is the endpoint's own
// cost (with httptest's request and recorder).
func BenchmarkTokenSigning(b *testing.B) {
	ts, id, _ := benchServer(b)
	now := time.Now().Unix()
	b.ReportAllocs()
	for b.Loop() {
		_, err := ts.srv.keys.sign(b.Context(), &accessClaims{Issuer: "http://example.com", Subject: id,
			Audience: audience{"http://example.com"}, IssuedAt: now, Expiry: now + 3600, ID: randomString(16),
			ClientID: id, Scope: "read write"})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// gateRequest runs one request through the gate and reports its status.
func gateRequest(srv *Server, token string) int {
	r := httptest.NewRequest("GET", "/api", nil)
	r.Header.Set("Authorization", "Bearer "+token)
	r = caddyhttp.PrepareRequest(r, caddy.NewReplacer(), nil, nil)
	w := httptest.NewRecorder()
	if err := srv.ServeHTTP(w, r, okHandler); err != nil {
		return 401
	}
	return w.Code
}

// manyTokens is how many live tokens BenchmarkGate/many rotates through:
// the budget is that this many cost what one does.
const manyTokens = 50_000

// BenchmarkGate measures the gate's cost per request for a token whose
// claims are cached (the common case) and for one seen for the first time
// (its signature verified), as ratios of the same request with no gate at
// all; then manyTokens cached tokens used in turn, as a ratio of one token
// used again and again beside them, with the heap each cache entry takes.
func BenchmarkGate(b *testing.B) {
	ts, id, secret := benchServer(b)
	token := ts.clientCredentialsToken(id, secret, "")
	baseline := func() {
		r := httptest.NewRequest("GET", "/api", nil)
		r.Header.Set("Authorization", "Bearer "+token)
		r = caddyhttp.PrepareRequest(r, caddy.NewReplacer(), nil, nil)
		_ = okHandler.ServeHTTP(httptest.NewRecorder(), r)
	}
	perOp := func(b *testing.B) float64 { return float64(b.Elapsed().Nanoseconds()) / float64(b.N) }
	var base, cached float64
	b.Run("ungated", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			baseline()
		}
		base = perOp(b)
	})
	b.Run("cached", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if gateRequest(ts.srv, token) != 200 {
				b.Fatal("refused")
			}
		}
		cached = perOp(b)
		if base > 0 {
			b.ReportMetric(cached/base, "x-ungated")
		}
	})
	b.Run("uncached", func(b *testing.B) {
		key := ts.srv.tokens.key(token)
		b.ReportAllocs()
		for b.Loop() {
			ts.srv.tokens.remove(&key)
			if gateRequest(ts.srv, token) != 200 {
				b.Fatal("refused")
			}
		}
		if base > 0 {
			b.ReportMetric(perOp(b)/base, "x-ungated")
		}
	})
	// The many-tokens case compares a rotation through manyTokens cached
	// tokens with one token sent again and again while the same tokens
	// are cached: the heap, and what the garbage collector has to scan,
	// is then the same for both.
	var tokens []string
	var perEntry float64
	fillMany := func(b *testing.B) {
		if tokens != nil {
			return
		}
		tokens = manyLiveTokens(b, ts.srv, manyTokens)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for _, t := range tokens {
			if gateRequest(ts.srv, t) != 200 {
				b.Fatal("refused")
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		perEntry = float64(after.HeapAlloc-before.HeapAlloc) / float64(len(tokens))
	}
	var one float64
	b.Run("many-but-one", func(b *testing.B) {
		fillMany(b)
		b.ReportAllocs()
		for b.Loop() {
			if gateRequest(ts.srv, token) != 200 {
				b.Fatal("refused")
			}
		}
		one = perOp(b)
	})
	b.Run("many", func(b *testing.B) {
		fillMany(b)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if gateRequest(ts.srv, tokens[i]) != 200 {
				b.Fatal("refused")
			}
			i = (i + 1) % len(tokens)
		}
		if one > 0 {
			b.ReportMetric(perOp(b)/one, "x-one")
		}
		b.ReportMetric(perEntry, "B/entry")
	})
}

// manyLiveTokens signs n distinct tokens as the token endpoint would for
// n clients.
func manyLiveTokens(b *testing.B, srv *Server, n int) []string {
	now := time.Now().Unix()
	tokens := make([]string, n)
	for i := range tokens {
		client := randomString(16)
		t, err := srv.keys.sign(b.Context(), &accessClaims{Issuer: "http://example.com", Subject: client,
			Audience: audience{"http://example.com"}, IssuedAt: now, Expiry: now + 3600, ID: randomString(16),
			ClientID: client, Scope: "read write"})
		if err != nil {
			b.Fatal(err)
		}
		tokens[i] = t
	}
	return tokens
}

// BenchmarkClientAuthentication compares a failed authentication of an
// unknown client with a wrong secret for a known one: the ratio should
// stay near 1, which is the timing defense working.
func BenchmarkClientAuthentication(b *testing.B) {
	ts, id, _ := benchServer(b)
	run := func(b *testing.B, user string) float64 {
		body := url.Values{"grant_type": {"client_credentials"}}.Encode()
		b.ReportAllocs()
		for b.Loop() {
			r := httptest.NewRequest("POST", "/oauth/token", strings.NewReader(body))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			r.SetBasicAuth(user, "wrong-secret-of-the-usual-length-0123456789a")
			w := httptest.NewRecorder()
			_ = ts.srv.ServeHTTP(w, r, nil)
			if w.Code != 401 {
				b.Fatalf("%d", w.Code)
			}
		}
		return float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	}
	var known float64
	b.Run("known", func(b *testing.B) { known = run(b, id) })
	b.Run("unknown", func(b *testing.B) {
		unknown := run(b, "no-such-client-0000000")
		if known > 0 {
			b.ReportMetric(unknown/known, "x-known")
		}
	})
}

// BenchmarkCodeExchange measures grant_type=authorization_code at the
// token endpoint: client identification, consuming the code in a
// transaction, the PKCE check, an ES256 signature and storing the refresh
// token. Codes are made beforehand, straight in the store.
func BenchmarkCodeExchange(b *testing.B) {
	ts := newTestServer(b, Config{Now: time.Now})
	m := ts.register(`{"token_endpoint_auth_method":"none","redirect_uris":["http://127.0.0.1/cb"],"grant_types":["authorization_code","refresh_token"]}`)
	id := m["client_id"].(string)
	challenge := challengeOf(testVerifier)
	const batch = 1000
	codes := make([]string, 0, batch)
	refill := func() {
		codes = codes[:0]
		for range batch {
			code := newSecret()
			err := ts.store.CreateAuthCode(b.Context(), storage.HashSecret(code), &storage.AuthCode{
				ClientID: id, RedirectURI: "http://127.0.0.1/cb", Challenge: challenge, Scope: "read",
				Audience: "http://example.com", Subject: "alice", ExpiresAt: time.Now().Add(time.Hour).Unix(),
				Family: randomString(16),
			})
			if err != nil {
				b.Fatal(err)
			}
			codes = append(codes, code)
		}
	}
	b.ReportAllocs()
	i := batch
	for b.Loop() {
		if i == batch {
			b.StopTimer()
			refill()
			i = 0
			b.StartTimer()
		}
		body := url.Values{"grant_type": {"authorization_code"}, "code": {codes[i]}, "code_verifier": {testVerifier},
			"redirect_uri": {"http://127.0.0.1/cb"}, "client_id": {id}}.Encode()
		i++
		r := httptest.NewRequest("POST", "/oauth/token", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		w := httptest.NewRecorder()
		_ = ts.srv.ServeHTTP(w, r, nil)
		if w.Code != 200 {
			b.Fatalf("%d %s", w.Code, w.Body)
		}
	}
}

// BenchmarkJWTAlgorithms signs and verifies an access token with each
// algorithm at the key ring, the cost access_token_signing_alg chooses
// between; the rs256 runs report their time as a ratio of es256's.
func BenchmarkJWTAlgorithms(b *testing.B) {
	ring, err := newKeyRing(b.Context(), memStore(b), time.Now, time.Hour, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	claims := &accessClaims{Issuer: "https://as.example", Subject: "s", Audience: audience{"https://rs.example"},
		Expiry: 2000000000, IssuedAt: 1700000000, ID: "0123456789abcdef0123", ClientID: "c", Scope: "read write"}
	perOp := map[string]float64{}
	for _, op := range []string{"sign", "verify"} {
		for _, alg := range []string{jwtAlg, algRS256} {
			name := op + "/" + strings.ToLower(alg)
			b.Run(name, func(b *testing.B) {
				ring.accessAlg = alg
				token, err := ring.sign(b.Context(), claims)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				for b.Loop() {
					if op == "sign" {
						_, err = ring.sign(b.Context(), claims)
					} else {
						_, err = ring.verify(b.Context(), token)
					}
					if err != nil {
						b.Fatal(err)
					}
				}
				perOp[name] = float64(b.Elapsed()) / float64(b.N)
				if es := perOp[op+"/es256"]; alg == algRS256 && es > 0 {
					b.ReportMetric(perOp[name]/es, "x-es256")
				}
			})
		}
	}
}
