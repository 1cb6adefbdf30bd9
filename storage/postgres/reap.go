package postgres

import (
	"cmp"
	"context"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/caddy-dcr/caddy-dcr/storage"
)

// reapLock is the pg_try_advisory_xact_lock key under which one instance
// at a time reaps ("dcr-reap" in ASCII); the others find it taken and
// leave the work to the one that holds it.
const reapLock = 0x6463722d72656170

// CountClients implements storage.Store: one row that a trigger keeps
// (migration 0003), not a count of the table.
func (s *Store) CountClients(ctx context.Context) (int, error) {
	var n int64
	err := s.call(ctx, "counting clients", func(ctx context.Context) error {
		return s.pool.QueryRow(ctx, `SELECT n FROM dcr_client_count`).Scan(&n)
	})
	return int(n), err
}

// reapable is the SQL of storage.Client.Reapable on dcr_clients c.
const reapable = `(c.settings->>'keep' = 'false' OR (c.settings->'keep' IS NULL AND c.origin = ''))`

// ReapClients implements storage.Store in one transaction: the selection
// and the deletion are one statement, which skips the rows another
// transaction holds (a client being touched is in use), and the
// selected clients' refresh tokens, grants and revocations go with them.
// Instances reap one at a time, under an advisory lock.
func (s *Store) ReapClients(ctx context.Context, p storage.ReapPolicy) ([]storage.ClientPosition, error) {
	var reaped []storage.ClientPosition
	err := s.tx(ctx, "reaping clients", func(ctx context.Context, tx pgx.Tx) error {
		reaped = nil
		var locked bool
		if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1)`, int64(reapLock)).Scan(&locked); err != nil || !locked {
			return err
		}
		rows, err := tx.Query(ctx, `DELETE FROM dcr_clients WHERE id IN (
			SELECT c.id FROM dcr_clients c
			WHERE `+reapable+`
			AND ((c.last_used_at = 0 AND c.issued_at < $1)
				OR (GREATEST(c.last_used_at, c.issued_at) < $2
					AND NOT EXISTS (SELECT 1 FROM dcr_grants g WHERE g.client_id = c.id)))
			AND NOT EXISTS (SELECT 1 FROM dcr_refresh_tokens t WHERE t.client_id = c.id AND t.expires_at > $3)
			AND c.issued_at >= $5 AND (c.issued_at, c.id COLLATE "C") > ($5, $6)
			ORDER BY c.issued_at, c.id COLLATE "C"
			LIMIT $4
			FOR UPDATE SKIP LOCKED)
			RETURNING id, issued_at`, p.UnusedBefore, p.IdleBefore, p.Now, p.BatchLimit(), p.After.IssuedAt, p.After.ID)
		if err != nil {
			return err
		}
		list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (r storage.ClientPosition, err error) {
			return r, row.Scan(&r.ID, &r.IssuedAt)
		})
		if err != nil || len(list) == 0 {
			return err
		}
		// In the order of removal, as the selection was.
		slices.SortFunc(list, func(a, b storage.ClientPosition) int {
			return cmp.Or(cmp.Compare(a.IssuedAt, b.IssuedAt), strings.Compare(a.ID, b.ID))
		})
		reaped = list
		ids := storage.IDs(list)
		if _, err := tx.Exec(ctx, `DELETE FROM dcr_refresh_tokens WHERE client_id = ANY($1)`, ids); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM dcr_grants WHERE client_id = ANY($1)`, ids); err != nil {
			return err
		}
		for _, id := range ids {
			if err := revoke(ctx, tx, storage.RevokedClient, id, p.Until); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return reaped, nil
}

// DisabledClients implements storage.Store, through a partial index of the
// disabled clients (migration 0003): it is asked at every resync.
func (s *Store) DisabledClients(ctx context.Context) ([]string, error) {
	var ids []string
	err := s.call(ctx, "listing disabled clients", func(ctx context.Context) error {
		rows, err := s.pool.Query(ctx, `SELECT id FROM dcr_clients WHERE (settings->>'disabled')::boolean`)
		if err != nil {
			return err
		}
		ids, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	return ids, err
}
