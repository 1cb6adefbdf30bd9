package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/caddy-dcr/caddy-dcr/storage"
)

const codeColumns = `client_id, redirect_uri, challenge, scope, audience, subject, expires_at, family, grant_id, used, used_at, claims, nonce, auth_time, redirect_uri_omitted`

// CreateAuthCode implements storage.Store. The sweep keeps the code for
// storage.UsedCodeRetention after it expires, so a late replay is known.
func (s *Store) CreateAuthCode(ctx context.Context, hash []byte, c *storage.AuthCode) error {
	return s.call(ctx, "storing authorization code", func(ctx context.Context) error {
		_, err := s.pool.Exec(ctx, `INSERT INTO dcr_auth_codes (hash, `+codeColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`,
			hash, c.ClientID, c.RedirectURI, c.Challenge, c.Scope, c.Audience, c.Subject, c.ExpiresAt, c.Family,
			c.Grant, c.Used, c.UsedAt, c.Claims, c.Nonce, c.AuthTime, c.RedirectURIOmitted)
		return err
	})
}

// ConsumeAuthCode implements storage.Store: the code is read under a row
// lock and marked used in one transaction, so of concurrent exchanges one
// wins and the others see the code used.
func (s *Store) ConsumeAuthCode(ctx context.Context, hash []byte, at int64) (*storage.AuthCode, error) {
	var c storage.AuthCode
	err := s.tx(ctx, "exchanging authorization code", func(ctx context.Context, tx pgx.Tx) error {
		c = storage.AuthCode{}
		var stands bool
		err := tx.QueryRow(ctx, `SELECT `+codeColumns+`, `+grantStands+` FROM dcr_auth_codes t WHERE t.hash = $1 FOR UPDATE OF t`, hash).
			Scan(&c.ClientID, &c.RedirectURI, &c.Challenge, &c.Scope, &c.Audience, &c.Subject, &c.ExpiresAt, &c.Family,
				&c.Grant, &c.Used, &c.UsedAt, &c.Claims, &c.Nonce, &c.AuthTime, &c.RedirectURIOmitted, &stands)
		switch {
		case err != nil:
			return err
		case c.Used:
			return storage.ErrTokenReused
		case at >= c.ExpiresAt, !stands:
			return storage.ErrNotFound
		}
		_, err = tx.Exec(ctx, `UPDATE dcr_auth_codes SET used = true, used_at = $2 WHERE hash = $1`, hash, at)
		return err
	})
	if err != nil && !errors.Is(err, storage.ErrTokenReused) {
		return nil, err
	}
	return &c, err
}

const grantColumns = `id, subject, client_id, client_name, scope, created_at, updated_at, families`

func scanGrant(row pgx.Row) (*storage.Grant, error) {
	var g storage.Grant
	if err := row.Scan(&g.ID, &g.Subject, &g.ClientID, &g.ClientName, &g.Scope, &g.CreatedAt, &g.UpdatedAt, &g.Families); err != nil {
		return nil, err
	}
	return &g, nil
}

// Grant implements storage.Store.
func (s *Store) Grant(ctx context.Context, subject, clientID string) (*storage.Grant, error) {
	var g *storage.Grant
	err := s.call(ctx, "reading grant", func(ctx context.Context) (err error) {
		g, err = scanGrant(s.pool.QueryRow(ctx, `SELECT `+grantColumns+` FROM dcr_grants WHERE subject = $1 AND client_id = $2`, subject, clientID))
		return err
	})
	return g, err
}

// RecordGrant implements storage.Store: a first grant is inserted; a
// grant made again is merged (storage.Grant.Merge) under a row lock.
// Inserting first, and merging when the insert finds the row, also
// settles two first grants made at once.
func (s *Store) RecordGrant(ctx context.Context, g *storage.Grant) (*storage.Grant, error) {
	var out *storage.Grant
	// A grant revoked between the insert (which found it) and the select
	// (which does not) is made anew: a second round inserts it.
	for range 3 {
		var err error
		out, err = s.recordGrant(ctx, g)
		if !errors.Is(err, storage.ErrNotFound) {
			return out, err
		}
	}
	return nil, fmt.Errorf("recording grant: %w", storage.ErrConflict)
}

func (s *Store) recordGrant(ctx context.Context, g *storage.Grant) (*storage.Grant, error) {
	var out *storage.Grant
	err := s.tx(ctx, "recording grant", func(ctx context.Context, tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO dcr_grants (`+grantColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
			ON CONFLICT (subject, client_id) DO NOTHING`,
			g.ID, g.Subject, g.ClientID, g.ClientName, g.Scope, g.CreatedAt, g.UpdatedAt, g.Families)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 1 {
			stored := *g
			out = &stored
			return nil
		}
		out, err = scanGrant(tx.QueryRow(ctx, `SELECT `+grantColumns+` FROM dcr_grants
			WHERE subject = $1 AND client_id = $2 FOR UPDATE`, g.Subject, g.ClientID))
		if err != nil {
			return err
		}
		out.Merge(g)
		_, err = tx.Exec(ctx, `UPDATE dcr_grants SET id = $3, client_name = $4, scope = $5, updated_at = $6
			WHERE subject = $1 AND client_id = $2`, out.Subject, out.ClientID, out.ID, out.ClientName, out.Scope, out.UpdatedAt)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Grants implements storage.Store; they come in client id order.
func (s *Store) Grants(ctx context.Context, subject string) ([]*storage.Grant, error) {
	var out []*storage.Grant
	err := s.call(ctx, "listing grants", func(ctx context.Context) error {
		rows, err := s.pool.Query(ctx, `SELECT `+grantColumns+` FROM dcr_grants WHERE subject = $1 ORDER BY client_id`, subject)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (*storage.Grant, error) { return scanGrant(row) })
		return err
	})
	return out, err
}

// RevokeGrant implements storage.Store. Codes issued under the grant need
// no writing: they name its ID, which no longer stands.
func (s *Store) RevokeGrant(ctx context.Context, subject, clientID string, until int64) (*storage.Grant, error) {
	var g *storage.Grant
	err := s.tx(ctx, "revoking grant", func(ctx context.Context, tx pgx.Tx) error {
		var err error
		g, err = scanGrant(tx.QueryRow(ctx, `DELETE FROM dcr_grants WHERE subject = $1 AND client_id = $2
			RETURNING `+grantColumns, subject, clientID))
		if err != nil {
			return err
		}
		if g.ID != "" {
			if _, err := tx.Exec(ctx, `DELETE FROM dcr_refresh_tokens WHERE grant_id = $1`, g.ID); err != nil {
				return err
			}
			if err := revoke(ctx, tx, storage.RevokedGrant, g.ID, until); err != nil {
				return err
			}
		}
		for _, fam := range g.Families {
			if err := revokeFamily(ctx, tx, fam, until); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return g, nil
}
