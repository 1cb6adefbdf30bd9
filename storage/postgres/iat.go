package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/caddy-dcr/caddy-dcr/storage"
)

const initialTokenColumns = `id, hash, description, created_at, expires_at, max_uses, uses`

// CreateInitialAccessToken implements storage.Store.
func (s *Store) CreateInitialAccessToken(ctx context.Context, t *storage.InitialAccessToken) error {
	return s.call(ctx, "creating initial access token", func(ctx context.Context) error {
		_, err := s.pool.Exec(ctx, `INSERT INTO dcr_initial_access_tokens (`+initialTokenColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			t.ID, t.Hash, t.Description, t.CreatedAt, t.ExpiresAt, t.MaxUses, t.Uses)
		return err
	})
}

// InitialAccessTokens implements storage.Store.
func (s *Store) InitialAccessTokens(ctx context.Context) ([]*storage.InitialAccessToken, error) {
	var out []*storage.InitialAccessToken
	err := s.call(ctx, "listing initial access tokens", func(ctx context.Context) error {
		rows, err := s.pool.Query(ctx, `SELECT `+initialTokenColumns+` FROM dcr_initial_access_tokens
			WHERE expires_at = 0 OR expires_at > $1 ORDER BY created_at, id`, s.now().Unix())
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (*storage.InitialAccessToken, error) {
			var t storage.InitialAccessToken
			err := row.Scan(&t.ID, &t.Hash, &t.Description, &t.CreatedAt, &t.ExpiresAt, &t.MaxUses, &t.Uses)
			return &t, err
		})
		return err
	})
	return out, err
}

// DeleteInitialAccessToken implements storage.Store.
func (s *Store) DeleteInitialAccessToken(ctx context.Context, id string) error {
	return s.call(ctx, "deleting initial access token", func(ctx context.Context) error {
		tag, err := s.pool.Exec(ctx, `DELETE FROM dcr_initial_access_tokens WHERE id = $1`, id)
		if err == nil && tag.RowsAffected() == 0 {
			return storage.ErrNotFound
		}
		return err
	})
}

// CreateClientWithInitialAccessToken implements storage.Store: one
// conditional UPDATE counts the use (so concurrent registrations never
// exceed max_uses), and the client is inserted in the same transaction.
func (s *Store) CreateClientWithInitialAccessToken(ctx context.Context, c *storage.Client, hash []byte, at int64) error {
	return s.tx(ctx, "creating client with initial access token", func(ctx context.Context, tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE dcr_initial_access_tokens SET uses = uses + 1
			WHERE hash = $1 AND (expires_at = 0 OR expires_at > $2) AND (max_uses = 0 OR uses < max_uses)`, hash, at)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return storage.ErrNotFound
		}
		return insertClient(ctx, tx, c)
	})
}
