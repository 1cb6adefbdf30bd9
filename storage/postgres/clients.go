package postgres

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/caddy-dcr/caddy-dcr/storage"
)

const clientColumns = `id, issued_at, secret_hash, secret_expires_at, registration_token_hash, metadata,
	origin, last_used_at, settings`

// nullIfEmpty stores an empty hash as NULL: the unique index of
// registration tokens then holds only real ones.
func nullIfEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// scanClient reads a client row. On a miss it still decodes a stand-in
// client's metadata, so that a miss costs what a hit costs: client
// authentication must not tell an unknown client from a wrong secret by
// its timing (the basic_auth defense).
func scanClient(row pgx.Row) (*storage.Client, error) {
	var c storage.Client
	var meta, settings []byte
	err := row.Scan(&c.ID, &c.IssuedAt, &c.SecretHash, &c.SecretExpiresAt, &c.RegistrationTokenHash, &meta,
		&c.Origin, &c.LastUsedAt, &settings)
	if errors.Is(err, pgx.ErrNoRows) {
		var m storage.Metadata
		_ = decodeMetadata(standInMetadata, &m)
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	if err := decodeMetadata(meta, &c.Metadata); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(settings, &c.Settings); err != nil {
		return nil, err
	}
	return &c, nil
}

// decodeMetadata decodes metadata as jsonb returns it. jsonb reformats
// the values it stores (`{"a": [1, 2]}`), so the raw ones, extension
// members and jwks, are compacted again, as registration stored them.
// jsonb also orders an object's members its own way; no RFC 7591 client
// can rely on their order.
func decodeMetadata(b []byte, m *storage.Metadata) error {
	if err := m.UnmarshalJSON(b); err != nil {
		return err
	}
	compact := func(raw json.RawMessage) json.RawMessage {
		var buf bytes.Buffer
		if len(raw) == 0 || json.Compact(&buf, raw) != nil {
			return raw
		}
		return buf.Bytes()
	}
	m.JWKS = compact(m.JWKS)
	for k, v := range m.Extra {
		m.Extra[k] = compact(v)
	}
	return nil
}

// standInMetadata is decoded on a miss; see scanClient.
var standInMetadata = []byte(`{"jwks": null, "scope": "read write", "grant_types": ["client_credentials"], ` +
	`"redirect_uris": [], "response_types": [], "token_endpoint_auth_method": "client_secret_basic"}`)

// CreateClient implements storage.Store.
func (s *Store) CreateClient(ctx context.Context, c *storage.Client) error {
	return s.call(ctx, "creating client", func(ctx context.Context) error {
		return insertClient(ctx, s.pool, c)
	})
}

// execer is what a pool and a transaction both do.
type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

func insertClient(ctx context.Context, db execer, c *storage.Client) error {
	meta, err := c.Metadata.MarshalJSON()
	if err != nil {
		return describe("encoding client metadata", err)
	}
	settings, err := json.Marshal(c.Settings)
	if err != nil {
		return describe("encoding client settings", err)
	}
	_, err = db.Exec(ctx, `INSERT INTO dcr_clients (`+clientColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		c.ID, c.IssuedAt, c.SecretHash, c.SecretExpiresAt, nullIfEmpty(c.RegistrationTokenHash), meta,
		c.Origin, c.LastUsedAt, settings)
	return err
}

// SetClientSettings implements storage.Store.
func (s *Store) SetClientSettings(ctx context.Context, id string, old, settings storage.ClientSettings) (*storage.Client, error) {
	b, err := json.Marshal(settings)
	if err != nil {
		return nil, describe("encoding client settings", err)
	}
	was, err := json.Marshal(old)
	if err != nil {
		return nil, describe("encoding client settings", err)
	}
	news := storage.Revocation{Kind: storage.ClientDisabled, Key: id}
	if settings.Disabled {
		news.Until = 1
	}
	payload, err := json.Marshal(news)
	if err != nil {
		return nil, err
	}
	var c *storage.Client
	err = s.tx(ctx, "setting client settings", func(ctx context.Context, tx pgx.Tx) (err error) {
		// jsonb equality ignores key order and spacing; the row lock the
		// UPDATE takes makes the comparison and the write one step.
		c, err = scanClient(tx.QueryRow(ctx, `UPDATE dcr_clients SET settings = $2 WHERE id = $1 AND settings = $3::jsonb RETURNING `+clientColumns, id, b, was))
		if errors.Is(err, pgx.ErrNoRows) {
			var exists bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM dcr_clients WHERE id = $1)`, id).Scan(&exists); err != nil {
				return err
			}
			if exists {
				return storage.ErrConflict
			}
			return storage.ErrNotFound
		}
		if err != nil {
			return err
		}
		// The other instances' gates learn it when this commits, as
		// they learn revocations.
		_, err = tx.Exec(ctx, `SELECT pg_notify('`+notifyChannel+`', $1)`, string(payload))
		return err
	})
	return c, err
}

// TouchClient implements storage.Store.
func (s *Store) TouchClient(ctx context.Context, id string, at int64) error {
	return s.call(ctx, "recording client use", func(ctx context.Context) error {
		tag, err := s.pool.Exec(ctx, `UPDATE dcr_clients SET last_used_at = GREATEST(last_used_at, $2) WHERE id = $1`, id, at)
		if err == nil && tag.RowsAffected() == 0 {
			return storage.ErrNotFound
		}
		return err
	})
}

// Client implements storage.Store.
func (s *Store) Client(ctx context.Context, id string) (*storage.Client, error) {
	var c *storage.Client
	err := s.call(ctx, "reading client", func(ctx context.Context) (err error) {
		c, err = scanClient(s.pool.QueryRow(ctx, `SELECT `+clientColumns+` FROM dcr_clients WHERE id = $1`, id))
		return err
	})
	return c, err
}

// ClientByRegistrationToken implements storage.Store.
func (s *Store) ClientByRegistrationToken(ctx context.Context, hash []byte) (*storage.Client, error) {
	var c *storage.Client
	err := s.call(ctx, "finding client by registration token", func(ctx context.Context) (err error) {
		c, err = scanClient(s.pool.QueryRow(ctx,
			`SELECT `+clientColumns+` FROM dcr_clients WHERE registration_token_hash = $1`, nullIfEmpty(hash)))
		return err
	})
	return c, err
}

// ReplaceClient implements storage.Store: the stored registration token
// hash is read under a row lock and compared here, so of several writers
// that read the same client one wins and the others see ErrConflict.
func (s *Store) ReplaceClient(ctx context.Context, c *storage.Client, tokenHash []byte) error {
	meta, err := c.Metadata.MarshalJSON()
	if err != nil {
		return describe("encoding client metadata", err)
	}
	return s.tx(ctx, "replacing client", func(ctx context.Context, tx pgx.Tx) error {
		var stored []byte
		err := tx.QueryRow(ctx, `SELECT registration_token_hash FROM dcr_clients WHERE id = $1 FOR UPDATE`, c.ID).Scan(&stored)
		if err != nil {
			return err
		}
		if subtle.ConstantTimeCompare(stored, tokenHash) != 1 {
			return storage.ErrConflict
		}
		_, err = tx.Exec(ctx, `UPDATE dcr_clients SET issued_at = $2, secret_hash = $3, secret_expires_at = $4,
			registration_token_hash = $5, metadata = $6 WHERE id = $1`,
			c.ID, c.IssuedAt, c.SecretHash, c.SecretExpiresAt, nullIfEmpty(c.RegistrationTokenHash), meta)
		return err
	})
}

// DeleteClient implements storage.Store.
func (s *Store) DeleteClient(ctx context.Context, id string, until int64) error {
	return s.tx(ctx, "deleting client", func(ctx context.Context, tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM dcr_clients WHERE id = $1`, id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return storage.ErrNotFound
		}
		if _, err := tx.Exec(ctx, `DELETE FROM dcr_refresh_tokens WHERE client_id = $1`, id); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM dcr_grants WHERE client_id = $1`, id); err != nil {
			return err
		}
		return revoke(ctx, tx, storage.RevokedClient, id, until)
	})
}

// Clients implements storage.Store.
func (s *Store) Clients(ctx context.Context, cursor string, limit int) ([]*storage.Client, string, error) {
	if limit <= 0 {
		return nil, "", nil
	}
	var out []*storage.Client
	err := s.call(ctx, "listing clients", func(ctx context.Context) error {
		rows, err := s.pool.Query(ctx, `SELECT `+clientColumns+` FROM dcr_clients WHERE id > $1 ORDER BY id LIMIT $2`, cursor, limit+1)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (*storage.Client, error) { return scanClient(row) })
		return err
	})
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = out[limit-1].ID
	}
	return out, next, nil
}
