package caddydcr

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddytest"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

// TestCaddyfileAdapt runs every testdata/caddyfile_adapt/*.caddyfiletest: a
// Caddyfile, a line of dashes, then either the JSON it must adapt to or a
// substring of the error it must fail with.
func TestCaddyfileAdapt(t *testing.T) {
	files, err := filepath.Glob("testdata/caddyfile_adapt/*.caddyfiletest")
	if err != nil || len(files) == 0 {
		t.Fatalf("no adapt tests found: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			input, expected, ok := strings.Cut(string(data), "----------")
			if !ok {
				t.Fatal("no ---------- separator")
			}
			input = strings.TrimSpace(input) + "\n"
			expected = strings.TrimSpace(expected)
			if strings.HasPrefix(expected, "{") {
				if !caddytest.CompareAdapt(t, file, input, "caddyfile", expected) {
					t.Fatal("adapted JSON differs")
				}
				return
			}
			_, _, err = caddyconfig.GetAdapter("caddyfile").Adapt([]byte(input), nil)
			if err == nil {
				t.Fatalf("adapted; want an error containing %q", expected)
			}
			if !strings.Contains(err.Error(), expected) {
				t.Fatalf("error %q does not contain %q", err, expected)
			}
		})
	}
}

// FuzzUnmarshalCaddyfile feeds arbitrary text to the dcr directive's
// parser: it must return a handler or an error, never panic.
func FuzzUnmarshalCaddyfile(f *testing.F) {
	for _, seed := range []string{
		"dcr",
		"dcr {\n issuer https://a.example\n storage /tmp/x\n}",
		"dcr {\n initial_access_token a b\n scopes_supported read\n client_secret_ttl 1h\n max_body_size 1KiB\n sync_writes\n}",
		"dcr {\n registration_path /r\n registration_path /s\n}",
		"dcr {\n registration_limit 5 1m\n registration_limit_exempt 10.0.0.0/8\n max_clients 10\n unused_client_ttl off\n idle_client_ttl 720h\n allowed_grant_types authorization_code\n allowed_redirect_schemes https\n allowed_redirect_hosts *.example.com\n public_clients off\n}",
		"dcr {\n client_secret_ttl\n}",
		"dcr { issuer",
		"dcr {\n login oidc g {\n issuer https://a.example\n client_id x\n allow_group groups a\n allow_any\n }\n session_ttl 1h\n}",
		"dcr {\n login github gh {\n client_secret s\n client_secret t\n }\n}",
		"dcr {\n login oidc\n scope_description a \"b c\"\n}",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, input string) {
		var h Handler
		_ = h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input))
	})
}
