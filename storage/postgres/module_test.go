package postgres

import (
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-dcr/caddy-dcr/internal/pgtest"
	"github.com/caddy-dcr/caddy-dcr/storage"
)

func TestUnmarshalCaddyfile(t *testing.T) {
	for _, tc := range []struct {
		name, input string
		want        Module
		err         string
	}{
		{"DSN", `postgres {env.DCR_DATABASE_URL}`, Module{DSN: "{env.DCR_DATABASE_URL}"}, ""},
		{"MaxConns", "postgres postgres://dcr@db/dcr {\n max_conns 8\n}", Module{DSN: "postgres://dcr@db/dcr", MaxConns: 8}, ""},
		{"NoDSN", `postgres`, Module{}, "wrong argument count"},
		{"TwoDSNs", `postgres a b`, Module{}, "wrong argument count"},
		{"MaxConnsTwice", "postgres a {\n max_conns 8\n max_conns 9\n}", Module{}, "max_conns already specified: 8"},
		{"MaxConnsZero", "postgres a {\n max_conns 0\n}", Module{}, "positive number"},
		{"MaxConnsNotANumber", "postgres a {\n max_conns many\n}", Module{}, "positive number"},
		{"MaxConnsTwoValues", "postgres a {\n max_conns 1 2\n}", Module{}, "wrong argument count"},
		{"UnknownOption", "postgres a {\n pool 1\n}", Module{}, `unrecognized postgres storage option "pool"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m Module
			err := m.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.input))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil || m.DSN != tc.want.DSN || m.MaxConns != tc.want.MaxConns {
				t.Fatalf("got %+v, %v; want %+v", m, err, tc.want)
			}
		})
	}
}

// Handlers naming the same DSN (here through an environment placeholder)
// share one store, which the last Cleanup closes.
func TestProvisionSharesOneStore(t *testing.T) {
	t.Setenv("DCR_TEST_DATABASE_URL", pgtest.Start(t))
	ctx, cancel := caddy.NewContext(caddy.Context{Context: t.Context()})
	defer cancel()
	a, b := &Module{DSN: "{env.DCR_TEST_DATABASE_URL}"}, &Module{DSN: "{env.DCR_TEST_DATABASE_URL}"}
	must(t, a.Provision(ctx))
	must(t, b.Provision(ctx))
	if a.Store() != b.Store() {
		t.Fatal("two handlers with one DSN got two stores")
	}
	must(t, a.Store().CreateClient(t.Context(), &storage.Client{ID: "app"}))
	must(t, a.Cleanup())
	must(t, a.Cleanup()) // a second Cleanup lets go of nothing
	if _, err := b.Store().Client(t.Context(), "app"); err != nil {
		t.Fatalf("the store closed under its last user: %v", err)
	}
	must(t, b.Cleanup())

	other := &Module{DSN: "{env.DCR_TEST_DATABASE_URL}", MaxConns: 3}
	must(t, other.Provision(ctx))
	defer other.Cleanup()
	conflicting := &Module{DSN: "{env.DCR_TEST_DATABASE_URL}", MaxConns: 4}
	if err := conflicting.Provision(ctx); err == nil {
		t.Fatal("a second max_conns for an open DSN was accepted")
	}
	must(t, conflicting.Cleanup()) // safe after a failed Provision
}

// The password appears neither in the pool key (logged) nor in the error
// of a database that cannot be reached, which is unavailable.
func TestProvisionKeepsThePasswordSecret(t *testing.T) {
	port, err := freePort()
	must(t, err)
	ctx, cancel := caddy.NewContext(caddy.Context{Context: t.Context()})
	defer cancel()
	m := &Module{DSN: "postgres://dcr:s3cr3t-pw@127.0.0.1:" + strconv.Itoa(port) + "/dcr?sslmode=disable"}
	err = m.Provision(ctx)
	if !errors.Is(err, storage.ErrUnavailable) || strings.Contains(err.Error(), "s3cr3t-pw") {
		t.Fatalf("unreachable database: %v", err)
	}
	must(t, m.Cleanup())

	key := func(dsn string) string {
		t.Helper()
		k, _, err := poolKey(dsn)
		must(t, err)
		if strings.Contains(k, "s3cr3t") {
			t.Fatalf("pool key %q holds the password", k)
		}
		return k
	}
	a := key("postgres://dcr:s3cr3t-1@db.example/dcr")
	if b := key("postgres://dcr:s3cr3t-2@db.example/dcr"); a == b || !strings.HasPrefix(a, "postgres:dcr@db.example:5432/dcr#") {
		t.Fatalf("keys %q and %q: a new password must open a new pool", a, b)
	}
}

// freePort returns a TCP port on 127.0.0.1 that nothing listens on.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
