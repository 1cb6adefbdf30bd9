package caddydcr

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-dcr/caddy-dcr/storage"
)

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
		{"access token for two days", Handler{AccessTokenTTL: caddy.Duration(48 * time.Hour)}, "access_token_ttl must be at most"},
		{"code for an hour", Handler{CodeTTL: caddy.Duration(time.Hour)}, "code_ttl must be at most"},
		{"claim named Scope", Handler{Claims: map[string]string{"Scope": "x"}}, "claim"},
		{"two endpoints on one path", Handler{TokenPath: "/t", JWKSPath: "/t"}, "are both"},
		{"resource with a path", Handler{Resource: "https://api.example.com/mcp"}, ""},
		{"relative resource", Handler{Resource: "api.example.com/mcp"}, "not an absolute http(s) URI"},
		{"resource with a fragment", Handler{Resource: "https://api.example.com/#x"}, "fragment"},
		{"resource with a query", Handler{Resource: "https://api.example.com/mcp?x=1"}, "query"},
		{"resource with dot segments", Handler{Resource: "https://api.example.com/a/../mcp"}, "segments"},
		{"RS256 access tokens", Handler{AccessTokenSigningAlg: "RS256"}, ""},
		{"HS256 access tokens", Handler{AccessTokenSigningAlg: "HS256"}, `access_token_signing_alg "HS256" is not one of ES256, RS256`},
		{"lower-case alg", Handler{AccessTokenSigningAlg: "rs256"}, "access_token_signing_alg"},
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

// provision provisions h with a context of its own and returns the
// function that unloads it as Caddy unloads a config: cancelling the
// context cleans up the storage module, which lets go of the store, and
// then (Caddy's order is a map's) the handler is cleaned up.
func provision(t *testing.T, h *Handler) (func(), error) {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	var once sync.Once
	unload := func() {
		once.Do(func() {
			cancel()
			if err := h.Cleanup(); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		})
	}
	t.Cleanup(unload)
	return unload, h.Provision(ctx)
}

func storageJSON(dir string) json.RawMessage { return json.RawMessage(strconv.Quote(dir)) }

// TestSharedStore provisions two handlers on one directory, as two sites
// (or an old and a new config during a reload) do: the second must share
// the first's database instead of failing on Badger's directory lock, and
// the database stays open until the last handler lets go.
func TestSharedStore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	key := "badger:" + dir
	t.Setenv("DCR_TEST_IAT", "from-env")

	a := &Handler{StorageRaw: storageJSON(dir), InitialAccessTokens: []string{"{env.DCR_TEST_IAT}"}}
	unloadA, err := provision(t, a)
	if err != nil {
		t.Fatal(err)
	}
	if a.InitialAccessTokens[0] != "from-env" {
		t.Fatalf("placeholder not replaced: %q", a.InitialAccessTokens[0])
	}
	b := &Handler{StorageRaw: json.RawMessage(`{"module":"badger","dir":"` + dir + `/"}`)}
	unloadB, err := provision(t, b)
	if err != nil {
		t.Fatalf("second handler on the same storage: %v", err)
	}
	// One each, and the reaper's (see reaper).
	if n := storage.References(key); n != 3 {
		t.Fatalf("%d references, want 3", n)
	}
	// Another sync_writes on the same directory is an error, not a
	// silent choice.
	c := &Handler{StorageRaw: storageJSON(dir), SyncWrites: true}
	if _, err := provision(t, c); err == nil || !strings.Contains(err.Error(), "other options") {
		t.Fatalf("different sync_writes on one directory: %v", err)
	}
	unloadA()
	if n := storage.References(key); n != 2 {
		t.Fatalf("%d references after one unload, want 2", n)
	}
	unloadB()
	if n := storage.References(key); n != 0 {
		t.Fatalf("%d references left after the last unload", n)
	}
}

// TestCleanupAfterFailedProvision: a Provision that fails before it opened
// the database must not release a reference it never took (that would
// close the database the running config still uses).
func TestCleanupAfterFailedProvision(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	if _, err := provision(t, &Handler{StorageRaw: storageJSON(dir)}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DCR_EMPTY", "")
	unload, err := provision(t, &Handler{StorageRaw: storageJSON(dir), InitialAccessTokens: []string{"{env.DCR_EMPTY}"}})
	if err == nil || !strings.Contains(err.Error(), "initial_access_token") {
		t.Fatalf("got %v, want an initial_access_token error", err)
	}
	unload()
	if n := storage.References("badger:" + dir); n != 2 {
		t.Fatalf("%d references, want the running config's and its reaper's 2", n)
	}
}

func TestNamesHosts(t *testing.T) {
	for hosts, want := range map[string]bool{
		"a.example": true, "*.a.example": true, "*": false, "*.*": false, "{http.request.host}": false,
	} {
		m := caddyhttp.MatchHost{hosts}
		if got := namesHosts(&m); got != want {
			t.Errorf("host matcher %q: %v, want %v", hosts, got, want)
		}
	}
}
