package handlers

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

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
