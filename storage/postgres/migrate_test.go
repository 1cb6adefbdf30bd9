package postgres

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/caddy-dcr/caddy-dcr/internal/pgtest"
)

// Migration 0003 counts the clients and then adds the trigger that keeps
// the count: a client inserted meanwhile by an instance still running
// the old schema must be counted, not lost between the two.
func TestClientCountMigrationCountsConcurrentInserts(t *testing.T) {
	ctx := t.Context()
	pool, err := pgxpool.New(ctx, pgtest.Start(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	exec := func(name string) {
		t.Helper()
		sql, err := migrations.ReadFile("migrations/" + name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pool.Exec(ctx, string(sql)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	exec("0001_initial.sql")
	exec("0002_client_origin_settings.sql")

	// An old instance registers a client, in a transaction still open
	// when the migration starts.
	old, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Rollback(ctx)
	if _, err := old.Exec(ctx, `INSERT INTO dcr_clients (id, issued_at, metadata) VALUES ('old', 1, '{}')`); err != nil {
		t.Fatal(err)
	}
	migrated := make(chan error, 1)
	go func() {
		// As migrate applies it: in a transaction.
		sql, err := migrations.ReadFile("migrations/0003_client_count.sql")
		if err == nil {
			err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
				_, err := tx.Exec(ctx, string(sql))
				return err
			})
		}
		migrated <- err
	}()
	// The migration waits for the insert's lock.
	for deadline := time.Now().Add(10 * time.Second); ; {
		var waiting int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE NOT granted`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the migration never waited for the open insert")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := old.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-migrated; err != nil {
		t.Fatal(err)
	}
	var n, rows int
	if err := pool.QueryRow(ctx, `SELECT (SELECT n FROM dcr_client_count), (SELECT count(*) FROM dcr_clients)`).Scan(&n, &rows); err != nil {
		t.Fatal(err)
	}
	if n != rows {
		t.Fatalf("the count says %d clients, the table holds %d", n, rows)
	}
}

// Migration 0005 adds redirect_uri_omitted: a code that an instance still
// running the old schema inserts, without the column, must keep the old
// rule (redirect_uri required at the token endpoint).
func TestRedirectURIOmittedMigrationKeepsOldCodesStrict(t *testing.T) {
	ctx := t.Context()
	pool, err := pgxpool.New(ctx, pgtest.Start(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	for _, name := range []string{"0001_initial.sql", "0002_client_origin_settings.sql", "0003_client_count.sql",
		"0004_openid_connect.sql", "0005_redirect_uri_omitted.sql"} {
		sql, err := migrations.ReadFile("migrations/" + name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pool.Exec(ctx, string(sql)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	// The old instance's INSERT, as 0004's code wrote it.
	if _, err := pool.Exec(ctx, `INSERT INTO dcr_auth_codes (hash, client_id, redirect_uri, challenge, scope, audience,
		subject, expires_at, family, grant_id, used, used_at, claims, nonce, auth_time)
		VALUES ('\x01', 'app', 'https://app.example/cb', 'c', '', '', 'alice', 1, 'f', '', false, 0, NULL, '', 0)`); err != nil {
		t.Fatal(err)
	}
	var omitted bool
	if err := pool.QueryRow(ctx, `SELECT redirect_uri_omitted FROM dcr_auth_codes WHERE hash = '\x01'`).Scan(&omitted); err != nil {
		t.Fatal(err)
	}
	if omitted {
		t.Fatal("a code from the old schema counts as issued without redirect_uri")
	}
}
