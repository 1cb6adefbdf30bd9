package handlers

import (
	"net/http"
	"testing"
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
