package postgres

import (
	"context"
	"testing"

	"github.com/caddy-dcr/caddy-dcr/internal/pgtest"
	"github.com/caddy-dcr/caddy-dcr/storage/storetest"
)

// rowCounts counts the rows of every dcr_ table but the schema's own.
func rowCounts(t *testing.T, s *Store) map[string]int64 {
	t.Helper()
	ctx := t.Context()
	rows, err := s.pool.Query(ctx, `SELECT tablename FROM pg_tables
		WHERE schemaname = current_schema() AND tablename LIKE 'dcr\_%' AND tablename <> 'dcr_schema_migrations'`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var name string
		must(t, rows.Scan(&name))
		tables = append(tables, name)
	}
	must(t, rows.Err())
	counts := map[string]int64{}
	for _, name := range tables {
		var n int64
		must(t, s.pool.QueryRow(ctx, `SELECT count(*) FROM `+name).Scan(&n))
		counts[name] = n
	}
	return counts
}

func total(counts map[string]int64) (n int64) {
	for _, c := range counts {
		n += c
	}
	return n
}

// Thousands of register, consent, token, delete cycles and expired tokens
// leave no row behind once the sweep ran: every table comes back to its
// row count from before.
func TestChurnLeavesNothingBehind(t *testing.T) {
	s := open(t, pgtest.Start(t), Options{})
	ctx := context.Background()
	storetest.Churn(ctx, t, s, 10) // the keeper, and a first round
	must(t, s.sweep(ctx))
	before := rowCounts(t, s)

	const cycles = 3000
	storetest.Churn(ctx, t, s, cycles)
	peak := rowCounts(t, s)
	must(t, s.sweep(ctx))
	after := rowCounts(t, s)
	t.Logf("rows before: %v (%d)", before, total(before))
	t.Logf("rows after %d cycles: %v (%d)", cycles, peak, total(peak))
	t.Logf("rows after the sweep: %v (%d)", after, total(after))
	if total(peak) < cycles*4 {
		t.Fatalf("the cycles left only %d rows: the test measures nothing", total(peak))
	}
	for name, n := range after {
		if n > before[name] {
			t.Errorf("%s: %d rows, %d before the cycles", name, n, before[name])
		}
	}
}
