package postgres

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/caddy-dcr/caddy-dcr/storage"
)

// SigningKeys implements storage.Store.
func (s *Store) SigningKeys(ctx context.Context) ([]*storage.SigningKey, error) {
	var keys []*storage.SigningKey
	err := s.call(ctx, "reading signing keys", func(ctx context.Context) error {
		rows, err := s.pool.Query(ctx, `SELECT id, private, created_at, alg FROM dcr_signing_keys ORDER BY created_at, id`)
		if err != nil {
			return err
		}
		keys, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (*storage.SigningKey, error) {
			var k storage.SigningKey
			return &k, row.Scan(&k.ID, &k.Private, &k.CreatedAt, &k.Alg)
		})
		return err
	})
	return keys, err
}

// AddSigningKey implements storage.Store. The table is locked against
// other writers (not readers) for the check and the insert, so that of
// several instances racing to rotate an algorithm's key, one stores its
// key.
func (s *Store) AddSigningKey(ctx context.Context, k *storage.SigningKey, newerThan int64) (bool, error) {
	var added bool
	err := s.tx(ctx, "adding signing key", func(ctx context.Context, tx pgx.Tx) error {
		added = false
		if _, err := tx.Exec(ctx, `LOCK TABLE dcr_signing_keys IN SHARE ROW EXCLUSIVE MODE`); err != nil {
			return err
		}
		var newer bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM dcr_signing_keys WHERE alg = $1 AND created_at >= $2)`,
			k.Algorithm(), newerThan).Scan(&newer); err != nil {
			return err
		}
		if newer {
			return nil
		}
		if _, err := tx.Exec(ctx, `INSERT INTO dcr_signing_keys (id, private, created_at, alg) VALUES ($1, $2, $3, $4)`,
			k.ID, k.Private, k.CreatedAt, k.Algorithm()); err != nil {
			return err
		}
		added = true
		return nil
	})
	return added && err == nil, err
}

// DeleteSigningKey implements storage.Store.
func (s *Store) DeleteSigningKey(ctx context.Context, id string) error {
	return s.call(ctx, "deleting signing key", func(ctx context.Context) error {
		_, err := s.pool.Exec(ctx, `DELETE FROM dcr_signing_keys WHERE id = $1`, id)
		return err
	})
}

// ServerSecret implements storage.Store in one statement: the insert of a
// fresh secret turns, on a name already taken, into a no-op update that
// returns the stored one, so concurrent first callers agree.
func (s *Store) ServerSecret(ctx context.Context, name string) ([]byte, error) {
	fresh := make([]byte, 32)
	_, _ = rand.Read(fresh)
	var secret []byte
	err := s.call(ctx, "reading server secret", func(ctx context.Context) error {
		return s.pool.QueryRow(ctx, `INSERT INTO dcr_server_secrets (name, secret) VALUES ($1, $2)
			ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING secret`, name, fresh).Scan(&secret)
	})
	return secret, err
}

const refreshColumns = `client_id, subject, scope, audience, issued_at, expires_at, family, grant_id, used, used_at, reuses, claims, auth_time`

// grantStands is true for a record (t) issued under a grant that still
// exists for its subject and client, or under none (records from before
// grants had IDs): a code or refresh token is good only while its grant
// stands.
const grantStands = `(t.grant_id = '' OR EXISTS (SELECT 1 FROM dcr_grants g
	WHERE g.subject = t.subject AND g.client_id = t.client_id AND g.id = t.grant_id))`

// refreshLive is true for a refresh token (t) that no revocation covers:
// its grant stands, and neither its family nor its client is revoked (at
// the unix time $2). Revoking a family deletes its tokens under the
// family's lock (lockFamily), so no token of it survives; the revocation
// record also covers a client's tokens until the purge of a deleted
// client's tokens is done.
const refreshLive = grantStands + ` AND NOT EXISTS (SELECT 1 FROM dcr_revocations v
	WHERE (v.kind, v.key) IN (('` + string(storage.RevokedFamily) + `', t.family), ('` + string(storage.RevokedClient) + `', t.client_id))
	AND v.until >= $2)`

func scanRefreshToken(row pgx.Row, extra ...any) (*storage.RefreshToken, error) {
	var t storage.RefreshToken
	err := row.Scan(append([]any{&t.ClientID, &t.Subject, &t.Scope, &t.Audience, &t.IssuedAt, &t.ExpiresAt,
		&t.Family, &t.Grant, &t.Used, &t.UsedAt, &t.Reuses, &t.Claims, &t.AuthTime}, extra...)...)
	if err != nil {
		return nil, err
	}
	return &t, nil
}

func insertRefreshToken(ctx context.Context, q querier, hash []byte, t *storage.RefreshToken) error {
	_, err := q.Exec(ctx, `INSERT INTO dcr_refresh_tokens (hash, `+refreshColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
		hash, t.ClientID, t.Subject, t.Scope, t.Audience, t.IssuedAt, t.ExpiresAt, t.Family, t.Grant,
		t.Used, t.UsedAt, t.Reuses, t.Claims, t.AuthTime)
	return err
}

// querier is a pool or a transaction.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// CreateRefreshToken implements storage.Store. The client need not be
// stored (a client ID metadata document client never is). It holds its
// family's lock (see lockFamily) while it checks that nothing revoked the
// token and inserts it.
func (s *Store) CreateRefreshToken(ctx context.Context, hash []byte, t *storage.RefreshToken) error {
	return s.tx(ctx, "storing refresh token", func(ctx context.Context, tx pgx.Tx) error {
		if err := lockFamily(ctx, tx, t.Family); err != nil {
			return err
		}
		var live bool
		err := tx.QueryRow(ctx, `SELECT `+refreshLive+` FROM (SELECT $1::text AS subject, $3::text AS client_id,
			$4::text AS grant_id, $5::text AS family) t`, t.Subject, s.now().Unix(), t.ClientID, t.Grant, t.Family).Scan(&live)
		if err != nil {
			return err
		}
		if !live {
			return storage.ErrRevoked
		}
		return insertRefreshToken(ctx, tx, hash, t)
	})
}

// lockFamily takes a transaction lock on a refresh token family. Storing
// a token into a family and revoking the family both take it first, so a
// revocation's delete sees every token stored before it, and a token
// stored after it sees the revocation.
func lockFamily(ctx context.Context, tx pgx.Tx, family string) error {
	_, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('dcr-family:' || $1, 0))`, family)
	return err
}

// RefreshToken implements storage.Store. It returns a token past its
// ExpiresAt until the sweep deletes it; callers compare with their clock.
func (s *Store) RefreshToken(ctx context.Context, hash []byte) (*storage.RefreshToken, error) {
	var t *storage.RefreshToken
	err := s.call(ctx, "reading refresh token", func(ctx context.Context) (err error) {
		t, err = scanRefreshToken(s.pool.QueryRow(ctx,
			`SELECT `+refreshColumns+` FROM dcr_refresh_tokens t WHERE t.hash = $1 AND `+refreshLive, hash, s.now().Unix()))
		return err
	})
	return t, err
}

// RotateRefreshToken implements storage.Store: the token is read under a
// row lock, judged by r.Apply and written back with its successor in one
// transaction. Concurrent rotations of one token queue on the lock, and
// each sees the token as the one before left it.
func (s *Store) RotateRefreshToken(ctx context.Context, hash []byte, r storage.Rotation) (*storage.RefreshToken, error) {
	var old *storage.RefreshToken
	err := s.tx(ctx, "rotating refresh token", func(ctx context.Context, tx pgx.Tx) error {
		// The family first (a token's never changes), then the row, in
		// the order RevokeFamily takes them.
		var family string
		if err := tx.QueryRow(ctx, `SELECT family FROM dcr_refresh_tokens WHERE hash = $1`, hash).Scan(&family); err != nil {
			return err
		}
		if err := lockFamily(ctx, tx, family); err != nil {
			return err
		}
		var err error
		old, err = scanRefreshToken(tx.QueryRow(ctx,
			`SELECT `+refreshColumns+` FROM dcr_refresh_tokens t WHERE t.hash = $1 AND `+refreshLive+` FOR UPDATE OF t`, hash, s.now().Unix()))
		if err != nil {
			return err
		}
		used := *old
		if err := r.Apply(&used); err != nil {
			return err // a refusal writes nothing
		}
		if _, err := tx.Exec(ctx, `UPDATE dcr_refresh_tokens SET used = $2, used_at = $3, reuses = $4 WHERE hash = $1`,
			hash, used.Used, used.UsedAt, used.Reuses); err != nil {
			return err
		}
		return insertRefreshToken(ctx, tx, r.NextHash, r.Next)
	})
	switch {
	case err == nil, errors.Is(err, storage.ErrTokenReused), errors.Is(err, storage.ErrTooManyReuses):
		return old, err
	}
	return nil, err
}

// revoke records a revocation, keeping the later until of two, and
// notifies the instances that follow revocations (WatchRevocations) when
// the transaction commits.
func revoke(ctx context.Context, q querier, kind storage.RevocationKind, key string, until int64) error {
	payload, err := json.Marshal(storage.Revocation{Kind: kind, Key: key, Until: until})
	if err != nil {
		return err
	}
	_, err = q.Exec(ctx, `WITH r AS (
			INSERT INTO dcr_revocations (kind, key, until) VALUES ($1, $2, $3)
			ON CONFLICT (kind, key) DO UPDATE SET until = GREATEST(dcr_revocations.until, EXCLUDED.until))
		SELECT pg_notify('`+notifyChannel+`', $4)`, string(kind), key, until, string(payload))
	return err
}

// RevokeFamily implements storage.Store.
func (s *Store) RevokeFamily(ctx context.Context, family string, until int64) error {
	return s.tx(ctx, "revoking token family", func(ctx context.Context, tx pgx.Tx) error {
		return revokeFamily(ctx, tx, family, until)
	})
}

func revokeFamily(ctx context.Context, tx pgx.Tx, family string, until int64) error {
	if err := lockFamily(ctx, tx, family); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `DELETE FROM dcr_refresh_tokens WHERE family = $1`, family); err != nil {
		return err
	}
	return revoke(ctx, tx, storage.RevokedFamily, family, until)
}

// RevokeAccessToken implements storage.Store.
func (s *Store) RevokeAccessToken(ctx context.Context, jti string, until int64) error {
	return s.call(ctx, "revoking access token", func(ctx context.Context) error {
		return revoke(ctx, s.pool, storage.RevokedToken, jti, until)
	})
}

// Revoked implements storage.Store by reading the revocation records; the
// token gate asks storage.Cached instead.
func (s *Store) Revoked(ctx context.Context, jti, clientID, family, grant string) (bool, error) {
	var revoked bool
	err := s.call(ctx, "reading revocations", func(ctx context.Context) error {
		return s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM dcr_revocations
			WHERE (kind, key) IN (($1, $2), ($3, $4), ($5, $6), ($7, $8)) AND key <> '' AND until >= $9)`,
			string(storage.RevokedToken), jti, string(storage.RevokedClient), clientID,
			string(storage.RevokedFamily), family, string(storage.RevokedGrant), grant, s.now().Unix()).Scan(&revoked)
	})
	return revoked, err
}

// Revocations implements storage.Store.
func (s *Store) Revocations(ctx context.Context) ([]storage.Revocation, error) {
	var out []storage.Revocation
	err := s.call(ctx, "reading revocations", func(ctx context.Context) error {
		rows, err := s.pool.Query(ctx, `SELECT kind, key, until FROM dcr_revocations WHERE until >= $1`, s.now().Unix())
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (storage.Revocation, error) {
			var r storage.Revocation
			var kind string
			err := row.Scan(&kind, &r.Key, &r.Until)
			r.Kind = storage.RevocationKind(kind)
			return r, err
		})
		return err
	})
	return out, err
}
