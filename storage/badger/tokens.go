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
)

// revoke writes a revocation record that Badger drops after until.
func revoke(txn *bdb.Txn, prefix, key string, until int64) error {
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

// AddSigningKey implements storage.Store: the check for a newer key and
// the write are one transaction, so of several handlers (or processes
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
		keys, err := scanTxn[storage.SigningKey](txn, prefixSigningKey)
		if err != nil {
			return err
		}
		for _, other := range keys {
			if other.CreatedAt >= newerThan {
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
func (s *Store) CreateRefreshToken(ctx context.Context, hash []byte, t *storage.RefreshToken) error {
	return s.update(ctx, func(txn *bdb.Txn) error {
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
		return requireGrant(txn, t.Grant, t.Subject, t.ClientID)
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
		if err := requireGrant(txn, old.Grant, old.Subject, old.ClientID); err != nil {
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
	case errors.Is(err, storage.ErrTokenReused):
		return &old, err
	case err != nil:
		return nil, err
	}
	return &old, nil
}

// keysUnder lists the keys under prefix, without their values.
func keysUnder(txn *bdb.Txn, prefix string) ([]string, error) {
	opts := bdb.DefaultIteratorOptions
	opts.Prefix = []byte(prefix)
	opts.PrefetchValues = false
	it := txn.NewIterator(opts)
	defer it.Close()
	var keys []string
	for it.Rewind(); it.Valid(); it.Next() {
		keys = append(keys, string(it.Item().Key()))
	}
	return keys, nil
}

// deleteByIndex deletes every refresh token listed under an index prefix
// (tc/<client>/, tf/<family>/ or tg/<grant>/), with all its index entries.
func deleteByIndex(txn *bdb.Txn, prefix string) error {
	keys, err := keysUnder(txn, prefix)
	if err != nil {
		return err
	}
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

// revokeFamily deletes a family's refresh tokens and revokes its access
// tokens until the unix time until.
func revokeFamily(txn *bdb.Txn, family string, until int64) error {
	if err := deleteByIndex(txn, prefixFamilyTokens+family+"/"); err != nil {
		return err
	}
	return revoke(txn, prefixRevokedFamily, family, until)
}

// RevokeFamily deletes every refresh token of a family and revokes the
// access tokens issued from it until the unix time until (when the last of
// them expires).
func (s *Store) RevokeFamily(ctx context.Context, family string, until int64) error {
	return s.update(ctx, func(txn *bdb.Txn) error {
		return revokeFamily(txn, family, until)
	})
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
		for _, q := range [...]struct {
			kind storage.RevocationKind
			key  string
		}{{storage.RevokedToken, jti}, {storage.RevokedClient, clientID}, {storage.RevokedFamily, family}, {storage.RevokedGrant, grant}} {
			if q.key == "" {
				continue
			}
			item, err := txn.Get([]byte(revocationPrefixes[q.kind] + q.key))
			if errors.Is(err, bdb.ErrKeyNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			until, err := untilOf(item)
			if err != nil {
				return err
			}
			if until >= time.Now().Unix() {
				revoked = true
				return nil
			}
		}
		return nil
	})
	return revoked, err
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
