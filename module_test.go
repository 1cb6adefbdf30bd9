package caddydcr

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

func newContext(t *testing.T) caddy.Context {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	return ctx
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name string
		h    Handler
		want string // "" = valid
	}{
		{"defaults", Handler{}, ""},
		{"https issuer", Handler{Issuer: "https://auth.example.com"}, ""},
		{"issuer with path", Handler{Issuer: "https://example.com/tenant"}, ""},
		{"relative issuer", Handler{Issuer: "auth.example.com"}, "issuer"},
		{"issuer with query", Handler{Issuer: "https://a.example/?x=1"}, "query or fragment"},
		{"issuer with empty query", Handler{Issuer: "https://a.example/?"}, "query or fragment"},
		{"issuer with fragment", Handler{Issuer: "https://a.example/#x"}, "query or fragment"},
		{"ftp issuer", Handler{Issuer: "ftp://a.example"}, "https"},
		{"registration path", Handler{RegistrationPath: "register"}, "registration_path"},
		{"registration path root", Handler{RegistrationPath: "/"}, "registration_path"},
		{"negative ttl", Handler{ClientSecretTTL: caddy.Duration(-time.Second)}, "client_secret_ttl"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.h.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error about %s", err, tc.want)
			}
		})
	}
}

// TestSharedStore provisions two handlers on one directory, as two sites
// (or an old and a new config during a reload) do: the second must share
// the first's database instead of failing on Badger's directory lock, and
// the database stays open until the last handler is cleaned up.
func TestSharedStore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	t.Setenv("DCR_TEST_IAT", "from-env")

	a := &Handler{Storage: dir, InitialAccessTokens: []string{"{env.DCR_TEST_IAT}"}}
	if err := a.Provision(newContext(t)); err != nil {
		t.Fatal(err)
	}
	if a.InitialAccessTokens[0] != "from-env" {
		t.Fatalf("placeholder not replaced: %q", a.InitialAccessTokens[0])
	}
	b := &Handler{Storage: dir + "/"}
	if err := b.Provision(newContext(t)); err != nil {
		t.Fatalf("second handler on the same storage: %v", err)
	}
	if err := a.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if err := a.Cleanup(); err != nil {
		t.Fatalf("second Cleanup: %v", err)
	}
	// b still holds the database: a third handler shares it too.
	c := &Handler{Storage: dir}
	if err := c.Provision(newContext(t)); err != nil {
		t.Fatal(err)
	}
	for _, h := range []*Handler{b, c} {
		if err := h.Cleanup(); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := stores.References(dir); n != 0 {
		t.Fatalf("%d references left after the last Cleanup", n)
	}
}

// TestCleanupAfterFailedProvision: a Provision that fails before it opened
// the database must not release a reference it never took (that would
// close the database the running config still uses).
func TestCleanupAfterFailedProvision(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	running := &Handler{Storage: dir}
	if err := running.Provision(newContext(t)); err != nil {
		t.Fatal(err)
	}
	defer running.Cleanup()

	t.Setenv("DCR_EMPTY", "")
	broken := &Handler{Storage: dir, InitialAccessTokens: []string{"{env.DCR_EMPTY}"}}
	err := broken.Provision(newContext(t))
	if err == nil || !strings.Contains(err.Error(), "initial_access_token") {
		t.Fatalf("got %v, want an initial_access_token error", err)
	}
	if err := broken.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if n, _ := stores.References(dir); n != 1 {
		t.Fatalf("%d references, want the running config's 1", n)
	}
}
