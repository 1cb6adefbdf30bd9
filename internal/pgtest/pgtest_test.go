package pgtest

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

func TestWithDatabase(t *testing.T) {
	for _, tc := range []struct{ dsn, want string }{
		{"postgres://u:p@db.example:5432/admin?sslmode=require", "postgres://u:p@db.example:5432/test?sslmode=require"},
		{"postgresql://u@/admin?host=/run/postgresql", "postgresql://u@/test?host=/run/postgresql"},
		{"host=db.example user=u dbname=admin", "host=db.example user=u dbname=admin dbname=test"},
	} {
		if got, err := withDatabase(tc.dsn, "test"); err != nil || got != tc.want {
			t.Errorf("withDatabase(%q) = %q, %v; want %q", tc.dsn, got, err, tc.want)
		}
	}
}

// recorder stands in for a test, to see whether it was skipped or failed.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper()                      {}
func (r *recorder) Skipf(f string, args ...any)  { r.skipped = f }
func (r *recorder) Fatalf(f string, args ...any) { r.failed = f }

func TestMissingPostgresSkipsUnlessRequired(t *testing.T) {
	t.Setenv(EnvRequire, "")
	var r recorder
	unavailable(&r, errNotInstalled)
	if r.skipped == "" || r.failed != "" || !strings.Contains(r.skipped, "to run them") {
		t.Fatalf("without %s: skipped %q, failed %q", EnvRequire, r.skipped, r.failed)
	}
	t.Setenv(EnvRequire, "1")
	r = recorder{}
	unavailable(&r, errNotInstalled)
	if r.failed == "" || r.skipped != "" {
		t.Fatalf("with %s=1: skipped %q, failed %q", EnvRequire, r.skipped, r.failed)
	}
}

// Each test gets a database of its own, in the one cluster of the test
// binary.
func TestStartGivesEachTestItsOwnDatabase(t *testing.T) {
	names := map[string]bool{}
	for range 2 {
		dsn := Start(t)
		conn, err := pgx.Connect(t.Context(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		var name string
		err = conn.QueryRow(t.Context(), "SELECT current_database()").Scan(&name)
		_ = conn.Close(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		names[name] = true
	}
	if len(names) != 2 {
		t.Fatalf("databases: %v", names)
	}
	if os.Getenv(EnvDSN) == "" && shared.cluster == nil {
		t.Fatal("no shared cluster")
	}
}

func TestStoppedClusterRefusesThenRestarts(t *testing.T) {
	c := StartCluster(t)
	dsn := c.NewDatabase(t)
	c.Stop()
	if conn, err := pgx.Connect(t.Context(), dsn); err == nil {
		_ = conn.Close(t.Context())
		t.Fatal("connected to a stopped cluster")
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatalf("after the restart: %v", err)
	}
	_ = conn.Close(t.Context())
	if err := c.Start(); err == nil {
		t.Fatalf("starting a running cluster: %v", err)
	}
}
