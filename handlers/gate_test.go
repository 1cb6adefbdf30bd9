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
