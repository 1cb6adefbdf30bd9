package badger

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	bdb "github.com/dgraph-io/badger/v4"
	"go.uber.org/zap"

	"github.com/caddy-dcr/caddy-dcr/storage"
)

// More key prefixes (see badger.go for clients).
const (
	prefixSigningKey    = "k/"  // k/<kid> -> storage.SigningKey JSON
	prefixRefreshToken  = "t/"  // t/<hex hash> -> RefreshToken JSON
	prefixClientTokens  = "tc/" // tc/<client id>/<hex hash> -> empty, to find a client's refresh tokens
	prefixFamilyTokens  = "tf/" // tf/<family>/<hex hash> -> empty, to find a family's refresh tokens
	prefixGrantTokens   = "tg/" // tg/<grant id>/<hex hash> -> empty, to find a grant's refresh tokens
	prefixRevokedJTI    = "vj/" // vj/<jti> -> expiry (unix seconds)
	prefixRevokedFamily = "vf/" // vf/<family> -> expiry (unix seconds)
	prefixRevokedGrant  = "vg/" // vg/<grant id> -> expiry (unix seconds)
	prefixRevokedClient = "vc/" // vc/<client id> -> expiry (unix seconds) of the deleted client's last token
	prefixServerSecret  = "s/"  // s/<name> -> a random secret of the server's
	keyRotationLock     = "kr"  // the id of the last key added, for conflict detection
)

// revoke writes a revocation record that Badger drops after until.
// A revocation made again keeps the later of the two times: it never
// shrinks.
func revoke(txn *bdb.Txn, prefix, key string, until int64) error {
	item, err := txn.Get([]byte(prefix + key))
	switch {
	case err == nil:
		old, err := untilOf(item)
		if err != nil {
			return err
		}
		until = max(until, old)
	case !errors.Is(err, bdb.ErrKeyNotFound):
		return err
	}
	return setUntil(txn, []byte(prefix+key), []byte(strconv.FormatInt(until, 10)), until)
}

// setUntil writes key=value that Badger may drop after the unix time exp.
func setUntil(txn *bdb.Txn, key []byte, value []byte, exp int64) error {
	e := bdb.NewEntry(key, value)
	if exp > 0 {
		e.ExpiresAt = uint64(exp) + 60 // a minute of grace over the handler's clock
	}
	return txn.SetEntry(e)
}

// SigningKeys returns the stored signing keys, oldest first.
func (s *Store) SigningKeys(ctx context.Context) ([]*storage.SigningKey, error) {
	keys, err := scanJSON[storage.SigningKey](ctx, s, prefixSigningKey)
	sort.Slice(keys, func(i, j int) bool { return keys[i].CreatedAt < keys[j].CreatedAt })
	return keys, err
}

// scanJSON decodes every record under prefix, in key order.
func scanJSON[T any](ctx context.Context, s *Store, prefix string) ([]*T, error) {
	var out []*T
	err := s.view(ctx, func(txn *bdb.Txn) error {
		var err error
		out, err = scanTxn[T](txn, prefix)
		return err
	})
	return out, err
}

// scanTxn decodes every record under prefix in txn, in key order.
func scanTxn[T any](txn *bdb.Txn, prefix string) ([]*T, error) {
	var out []*T
	opts := bdb.DefaultIteratorOptions
	opts.Prefix = []byte(prefix)
	it := txn.NewIterator(opts)
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		v := new(T)
		if err := it.Item().Value(func(b []byte) error { return json.Unmarshal(b, v) }); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// AddSigningKey implements storage.Store: the check for a newer key of
// k's algorithm and the write are one transaction, so of several handlers (or processes
// sharing the directory, which Badger's lock forbids anyway) racing to
// rotate, one stores its key.
func (s *Store) AddSigningKey(ctx context.Context, k *storage.SigningKey, newerThan int64) (bool, error) {
	b, err := json.Marshal(k)
	if err != nil {
		return false, err
	}
	var added bool
	err = s.update(ctx, func(txn *bdb.Txn) error {
		added = false
		// An iterator's reads are not checked for conflicts (a key
		// another transaction adds meanwhile goes unseen), so every
		// rotation also reads and writes one key, which is.
		if _, err := txn.Get([]byte(keyRotationLock)); err != nil && !errors.Is(err, bdb.ErrKeyNotFound) {
			return err
		}
		if err := txn.Set([]byte(keyRotationLock), []byte(k.ID)); err != nil {
			return err
		}
		keys, err := scanTxn[storage.SigningKey](txn, prefixSigningKey)
		if err != nil {
			return err
		}
		for _, other := range keys {
			if other.Algorithm() == k.Algorithm() && other.CreatedAt >= newerThan {
				return nil
			}
		}
		added = true
		return txn.Set([]byte(prefixSigningKey+k.ID), b)
	})
	return added, err
}

// ServerSecret returns the random secret stored under name, creating it
// (32 bytes from crypto/rand) the first time, in one transaction, so every
// handler on this database and every restart gets the same one.
func (s *Store) ServerSecret(ctx context.Context, name string) ([]byte, error) {
	var secret []byte
	err := s.update(ctx, func(txn *bdb.Txn) error {
		item, err := txn.Get([]byte(prefixServerSecret + name))
		if err == nil {
			secret, err = item.ValueCopy(nil)
			return err
		}
		if !errors.Is(err, bdb.ErrKeyNotFound) {
			return err
		}
		secret = make([]byte, 32)
		_, _ = rand.Read(secret)
		return txn.Set([]byte(prefixServerSecret+name), secret)
	})
	return secret, err
}

// DeleteSigningKey removes a signing key; a missing key is not an error.
func (s *Store) DeleteSigningKey(ctx context.Context, id string) error {
	return s.update(ctx, func(txn *bdb.Txn) error {
		return txn.Delete([]byte(prefixSigningKey + id))
	})
}

func refreshKey(hash []byte) []byte { return []byte(prefixRefreshToken + hex.EncodeToString(hash)) }

// refreshIndexKeys are the index entries that find a refresh token by
// client, by family and by grant.
func refreshIndexKeys(hash []byte, t *storage.RefreshToken) [][]byte {
	h := hex.EncodeToString(hash)
	keys := [][]byte{
		[]byte(prefixClientTokens + t.ClientID + "/" + h),
		[]byte(prefixFamilyTokens + t.Family + "/" + h),
	}
	if t.Grant != "" {
		keys = append(keys, []byte(prefixGrantTokens+t.Grant+"/"+h))
	}
	return keys
}

func putRefreshToken(txn *bdb.Txn, hash []byte, t *storage.RefreshToken) error {
	b, err := json.Marshal(t)
	if err != nil {
		return err
	}
	if err := setUntil(txn, refreshKey(hash), b, t.ExpiresAt); err != nil {
		return err
	}
	for _, k := range refreshIndexKeys(hash, t) {
		if err := setUntil(txn, k, nil, t.ExpiresAt); err != nil {
			return err
		}
	}
	return nil
}

// CreateRefreshToken stores a new refresh token under the hash of its
// value. The client need not be stored (a client ID metadata document
// client never is); using the token needs the client to authenticate.
//
// The check that nothing revoked it reads the grant and the revocation
// records in the same transaction, so a concurrent revocation (which
// writes them) conflicts with it and one of the two is replayed.
func (s *Store) CreateRefreshToken(ctx context.Context, hash []byte, t *storage.RefreshToken) error {
	return s.update(ctx, func(txn *bdb.Txn) error {
		if err := requireLive(txn, t); err != nil {
			if errors.Is(err, storage.ErrNotFound) {
				return storage.ErrRevoked
			}
			return err
		}
		return putRefreshToken(txn, hash, t)
	})
}

// RefreshToken implements storage.Store.
func (s *Store) RefreshToken(ctx context.Context, hash []byte) (*storage.RefreshToken, error) {
	var t storage.RefreshToken
	err := s.view(ctx, func(txn *bdb.Txn) error {
		if err := getJSON(txn, refreshKey(hash), &t); err != nil {
			return err
		}
		return requireLive(txn, &t)
	})
	if err != nil {
		return nil, err
	}
	return &t, nil
}

// RotateRefreshToken implements storage.Store: the token is read, judged
// by r.Apply and written back with its successor in one transaction,
// replayed when a concurrent rotation of the same token commits first.
func (s *Store) RotateRefreshToken(ctx context.Context, hash []byte, r storage.Rotation) (*storage.RefreshToken, error) {
	var old storage.RefreshToken
	err := s.update(ctx, func(txn *bdb.Txn) error {
		old = storage.RefreshToken{}
		if err := getJSON(txn, refreshKey(hash), &old); err != nil {
			return err
		}
		if err := requireLive(txn, &old); err != nil {
			return err
		}
		used := old
		if err := r.Apply(&used); err != nil {
			return err
		}
		if err := putRefreshToken(txn, hash, &used); err != nil {
			return err
		}
		return putRefreshToken(txn, r.NextHash, r.Next)
	})
	switch {
	case errors.Is(err, storage.ErrTokenReused), errors.Is(err, storage.ErrTooManyReuses):
		return &old, err
	case err != nil:
		return nil, err
	}
	return &old, nil
}

// keysUnder lists the keys under prefix, without their values.
func keysUnder(txn *bdb.Txn, prefix string, limit int) ([]string, error) {
	opts := bdb.DefaultIteratorOptions
	opts.Prefix = []byte(prefix)
	opts.PrefetchValues = false
	it := txn.NewIterator(opts)
	defer it.Close()
	var keys []string
	for it.Rewind(); it.Valid() && len(keys) < limit; it.Next() {
		keys = append(keys, string(it.Item().Key()))
	}
	return keys, nil
}

// purgeBatch bounds the keys one cleanup transaction touches: Badger
// refuses a transaction too large for one request, and a long-lived grant
// has a refresh token for every rotation.
const purgeBatch = 256

// inBatches calls fn with the keys under prefix, purgeBatch at a time, each
// batch in a transaction of its own, until none is left. It runs to the
// end even if the request that started it goes away.
func (s *Store) inBatches(ctx context.Context, prefix string, fn func(txn *bdb.Txn, keys []string) error) error {
	ctx = context.WithoutCancel(ctx)
	for {
		var n int
		err := s.update(ctx, func(txn *bdb.Txn) error {
			keys, err := keysUnder(txn, prefix, purgeBatch)
			n = len(keys)
			if err != nil || n == 0 {
				return err
			}
			return fn(txn, keys)
		})
		if err != nil {
			return fmt.Errorf("cleaning up %s: %w", prefix, err)
		}
		if n < purgeBatch {
			return nil
		}
	}
}

// purge deletes every refresh token listed under the index prefixes
// (tc/<client>/, tf/<family>/ or tg/<grant>/), with all their index
// entries, in batches. Callers have already committed the revocation that
// makes the tokens unusable, so a failure here is logged, not returned:
// the revocation stands. What a purge cut short leaves is dead: under a
// grant that is gone or a client that is gone for good, or a family whose
// revocation outlives its refresh tokens (storage.FamilyRetention).
func (s *Store) purge(ctx context.Context, prefixes ...string) {
	for _, prefix := range prefixes {
		err := s.inBatches(ctx, prefix, func(txn *bdb.Txn, keys []string) error {
			return deleteIndexed(txn, prefix, keys)
		})
		if err != nil {
			s.logger.Error("deleting revoked refresh tokens failed; they stay dead and expire on their own", zap.String("index", prefix), zap.Error(err))
		}
	}
}

// deleteIndexed deletes the refresh tokens that index entries keys (under
// prefix) list, with all their index entries.
func deleteIndexed(txn *bdb.Txn, prefix string, keys []string) error {
	for _, k := range keys {
		raw, err := hex.DecodeString(k[len(prefix):])
		if err != nil {
			return fmt.Errorf("index entry %q: %w", k, err)
		}
		var t storage.RefreshToken
		err = getJSON(txn, refreshKey(raw), &t)
		if errors.Is(err, storage.ErrNotFound) {
			// Expired, or removed through another index: this
			// entry is all that is left.
			if err := txn.Delete([]byte(k)); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		for _, key := range append(refreshIndexKeys(raw, &t), refreshKey(raw)) {
			if err := txn.Delete(key); err != nil {
				return err
			}
		}
	}
	return nil
}

// RevokeFamily deletes every refresh token of a family and revokes the
// access tokens issued from it until the unix time until (when the last of
// them expires).
func (s *Store) RevokeFamily(ctx context.Context, family string, until int64) error {
	err := s.update(ctx, func(txn *bdb.Txn) error {
		return revoke(txn, prefixRevokedFamily, family, until)
	})
	if err != nil {
		return err
	}
	s.purge(ctx, prefixFamilyTokens+family+"/")
	return nil
}

// RevokeAccessToken revokes one access token until it expires.
func (s *Store) RevokeAccessToken(ctx context.Context, jti string, exp int64) error {
	return s.update(ctx, func(txn *bdb.Txn) error {
		return revoke(txn, prefixRevokedJTI, jti, exp)
	})
}

// revocationPrefixes maps each revocation kind to its key prefix.
var revocationPrefixes = map[storage.RevocationKind]string{
	storage.RevokedToken: prefixRevokedJTI, storage.RevokedFamily: prefixRevokedFamily,
	storage.RevokedGrant: prefixRevokedGrant, storage.RevokedClient: prefixRevokedClient,
}

// Revoked implements storage.Store by reading the revocation records; the
// token gate asks storage.Cached instead.
func (s *Store) Revoked(ctx context.Context, jti, clientID, family, grant string) (bool, error) {
	var revoked bool
	err := s.view(ctx, func(txn *bdb.Txn) error {
		var err error
		revoked, err = anyRevoked(txn, map[string]string{
			prefixRevokedJTI: jti, prefixRevokedClient: clientID, prefixRevokedFamily: family, prefixRevokedGrant: grant,
		})
		return err
	})
	return revoked, err
}

// anyRevoked reports whether any of the revocation records named (prefix
// -> key, "" for none) holds now.
func anyRevoked(txn *bdb.Txn, keys map[string]string) (bool, error) {
	now := time.Now().Unix()
	for prefix, key := range keys {
		if key == "" {
			continue
		}
		item, err := txn.Get([]byte(prefix + key))
		if errors.Is(err, bdb.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return false, err
		}
		until, err := untilOf(item)
		if err != nil {
			return false, err
		}
		if until >= now {
			return true, nil
		}
	}
	return false, nil
}

// requireLive is storage.ErrNotFound for a refresh token that its grant,
// its family or its client's deletion revoked: the revocation marks it
// dead at once, before its record is cleaned up.
func requireLive(txn *bdb.Txn, t *storage.RefreshToken) error {
	if err := requireGrant(txn, t.Grant, t.Subject, t.ClientID); err != nil {
		return err
	}
	revoked, err := anyRevoked(txn, map[string]string{prefixRevokedFamily: t.Family, prefixRevokedClient: t.ClientID})
	if err != nil {
		return err
	}
	if revoked {
		return storage.ErrNotFound
	}
	return nil
}

// Revocations implements storage.Store. Badger has stopped returning the
// records whose time has passed (with a minute of grace).
func (s *Store) Revocations(ctx context.Context) ([]storage.Revocation, error) {
	var out []storage.Revocation
	now := time.Now().Unix()
	err := s.view(ctx, func(txn *bdb.Txn) error {
		for kind, prefix := range revocationPrefixes {
			opts := bdb.DefaultIteratorOptions
			opts.Prefix = []byte(prefix)
			it := txn.NewIterator(opts)
			for it.Rewind(); it.Valid(); it.Next() {
				until, err := untilOf(it.Item())
				if err != nil {
					it.Close()
					return err
				}
				if until < now {
					continue // Badger keeps it a minute longer
				}
				out = append(out, storage.Revocation{Kind: kind, Key: string(it.Item().Key()[len(prefix):]), Until: until})
			}
			it.Close()
		}
		return nil
	})
	return out, err
}

// untilOf reads a revocation record's value: the unix time until which it
// holds.
func untilOf(item *bdb.Item) (int64, error) {
	var until int64
	err := item.Value(func(v []byte) error {
		var err error
		until, err = strconv.ParseInt(string(v), 10, 64)
		return err
	})
	return until, err
}
