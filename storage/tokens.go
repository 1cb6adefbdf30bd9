package storage

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// More key prefixes (see badger.go for clients).
const (
	prefixSigningKey    = "k/"  // k/<kid> -> SigningKey JSON
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

// ErrTokenReused is returned by RotateRefreshToken for a refresh token that
// was already rotated and by ConsumeAuthCode for a code already exchanged:
// a replay, after which the caller may revoke the family.
var ErrTokenReused = errors.New("refresh token already used")

// SigningKey is a private key that signs access tokens.
type SigningKey struct {
	ID        string `json:"kid"`
	Private   []byte `json:"private"` // PKCS #8, DER
	CreatedAt int64  `json:"created_at"`
}

// RefreshToken is an issued refresh token, stored under the hash of its
// value. Tokens rotated from one another share a Family.
type RefreshToken struct {
	ClientID  string `json:"client_id"`
	Subject   string `json:"sub"`
	Scope     string `json:"scope,omitempty"`
	Audience  string `json:"aud,omitempty"`
	IssuedAt  int64  `json:"iat"`
	ExpiresAt int64  `json:"exp"`
	Family    string `json:"family"`
	// Grant is the ID of the grant the token was issued under ("" for
	// tokens from before grants had IDs); the token is good only while
	// that grant stands.
	Grant string `json:"grant,omitempty"`
	// Used marks a token that was rotated; presenting it again is a
	// replay (OAuth 2.1 §4.3.1), unless the caller allows a short reuse
	// window. UsedAt is when it was first rotated (unix seconds) and
	// Reuses how often it was presented again within the window.
	Used   bool  `json:"used,omitempty"`
	UsedAt int64 `json:"used_at,omitempty"`
	Reuses int   `json:"reuses,omitempty"`
	// Claims are extra claims carried into the access tokens.
	Claims map[string]string `json:"claims,omitempty"`
}

// Revocations is the part of the store the token gate asks on every
// request. Its answers come from memory, kept in step with the database by
// the writes of this process, so they never block.
type Revocations interface {
	// Revoked reports whether an access token with this jti, client,
	// family and grant ("" for none) was revoked: directly, through its
	// family, through its grant, or through its client (deleted).
	Revoked(jti, clientID, family, grant string) bool
}

// revocations is the in-memory index behind Revoked. Every entry holds the
// expiry of the last token it can cover: the maintenance loop sweeps it
// after that, as Badger drops its record.
type revocations struct {
	mu sync.RWMutex
	// by maps each revocation record prefix (prefixRevoked*) to its
	// entries: key -> expiry (unix seconds).
	by map[string]map[string]int64
}

func newRevocations() *revocations {
	r := &revocations{by: map[string]map[string]int64{}}
	for _, p := range []string{prefixRevokedJTI, prefixRevokedFamily, prefixRevokedGrant, prefixRevokedClient} {
		r.by[p] = map[string]int64{}
	}
	return r
}

func (r *revocations) revoked(jti, clientID, family, grant string) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, q := range [...]struct{ prefix, key string }{
		{prefixRevokedJTI, jti}, {prefixRevokedClient, clientID},
		{prefixRevokedFamily, family}, {prefixRevokedGrant, grant},
	} {
		if q.key == "" {
			continue
		}
		if _, ok := r.by[q.prefix][q.key]; ok {
			return true
		}
	}
	return false
}

// add records revocations that were just committed.
func (r *revocations) add(prefix string, until int64, keys ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range keys {
		r.by[prefix][k] = until
	}
}

func (r *revocations) sweep(now int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range r.by {
		for k, exp := range m {
			if exp < now {
				delete(m, k)
			}
		}
	}
}

// Revoked implements Revocations.
func (s *Badger) Revoked(jti, clientID, family, grant string) bool {
	return s.revoked.revoked(jti, clientID, family, grant)
}

// loadRevocations fills the in-memory index from the database at open,
// leaving out what has expired.
func (s *Badger) loadRevocations() error {
	now := time.Now().Unix()
	return s.db.View(func(txn *badger.Txn) error {
		for prefix, into := range s.revoked.by {
			opts := badger.DefaultIteratorOptions
			opts.Prefix = []byte(prefix)
			it := txn.NewIterator(opts)
			for it.Rewind(); it.Valid(); it.Next() {
				item := it.Item()
				v, err := item.ValueCopy(nil)
				if err != nil {
					it.Close()
					return err
				}
				n, err := strconv.ParseInt(string(v), 10, 64)
				if err != nil || n < now {
					continue
				}
				into[string(item.Key()[len(prefix):])] = n
			}
			it.Close()
		}
		return nil
	})
}

// revoke writes a revocation record that Badger drops after until.
func revoke(txn *badger.Txn, prefix, key string, until int64) error {
	return setUntil(txn, []byte(prefix+key), []byte(strconv.FormatInt(until, 10)), until)
}

// setUntil writes key=value that Badger may drop after the unix time exp.
func setUntil(txn *badger.Txn, key []byte, value []byte, exp int64) error {
	e := badger.NewEntry(key, value)
	if exp > 0 {
		e.ExpiresAt = uint64(exp) + 60 // a minute of grace over the handler's clock
	}
	return txn.SetEntry(e)
}

// SigningKeys returns the stored signing keys, oldest first.
func (s *Badger) SigningKeys(ctx context.Context) ([]*SigningKey, error) {
	keys, err := scanJSON[SigningKey](ctx, s, prefixSigningKey)
	sort.Slice(keys, func(i, j int) bool { return keys[i].CreatedAt < keys[j].CreatedAt })
	return keys, err
}

// scanJSON decodes every record under prefix, in key order.
func scanJSON[T any](ctx context.Context, s *Badger, prefix string) ([]*T, error) {
	var out []*T
	err := s.view(ctx, func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = []byte(prefix)
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			v := new(T)
			if err := it.Item().Value(func(b []byte) error { return json.Unmarshal(b, v) }); err != nil {
				return err
			}
			out = append(out, v)
		}
		return nil
	})
	return out, err
}

// PutSigningKey stores a signing key.
func (s *Badger) PutSigningKey(ctx context.Context, k *SigningKey) error {
	b, err := json.Marshal(k)
	if err != nil {
		return err
	}
	return s.update(ctx, func(txn *badger.Txn) error {
		return txn.Set([]byte(prefixSigningKey+k.ID), b)
	})
}

// ServerSecret returns the random secret stored under name, creating it
// (32 bytes from crypto/rand) the first time, in one transaction, so every
// handler on this database and every restart gets the same one.
func (s *Badger) ServerSecret(ctx context.Context, name string) ([]byte, error) {
	var secret []byte
	err := s.update(ctx, func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(prefixServerSecret + name))
		if err == nil {
			secret, err = item.ValueCopy(nil)
			return err
		}
		if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		secret = make([]byte, 32)
		_, _ = rand.Read(secret)
		return txn.Set([]byte(prefixServerSecret+name), secret)
	})
	return secret, err
}

// DeleteSigningKey removes a signing key; a missing key is not an error.
func (s *Badger) DeleteSigningKey(ctx context.Context, id string) error {
	return s.update(ctx, func(txn *badger.Txn) error {
		return txn.Delete([]byte(prefixSigningKey + id))
	})
}

func refreshKey(hash []byte) []byte { return []byte(prefixRefreshToken + hex.EncodeToString(hash)) }

// refreshIndexKeys are the index entries that find a refresh token by
// client, by family and by grant.
func refreshIndexKeys(hash []byte, t *RefreshToken) [][]byte {
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

func putRefreshToken(txn *badger.Txn, hash []byte, t *RefreshToken) error {
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
func (s *Badger) CreateRefreshToken(ctx context.Context, hash []byte, t *RefreshToken) error {
	return s.update(ctx, func(txn *badger.Txn) error {
		return putRefreshToken(txn, hash, t)
	})
}

// RefreshToken returns the refresh token whose value hashes to hash.
func (s *Badger) RefreshToken(ctx context.Context, hash []byte) (*RefreshToken, error) {
	var t RefreshToken
	err := s.view(ctx, func(txn *badger.Txn) error {
		return getJSON(txn, refreshKey(hash), &t)
	})
	if err != nil {
		return nil, err
	}
	return &t, nil
}

// RotateRefreshToken rotates the refresh token that hashes to hash, in one
// transaction: next receives the stored token, may change it (marking it
// used), and returns the new token and the hash of its value, or an error
// that aborts the rotation. What next leaves in old is stored with the new
// token. When next answers ErrTokenReused (a replay), nothing is written
// and the stored token is returned with that error, as ConsumeAuthCode
// returns a replayed code, so the caller can revoke its family without
// reading it again. A token whose grant was revoked is ErrNotFound.
func (s *Badger) RotateRefreshToken(ctx context.Context, hash []byte,
	next func(old *RefreshToken) (newHash []byte, t *RefreshToken, err error)) (*RefreshToken, error) {
	var reused *RefreshToken
	err := s.update(ctx, func(txn *badger.Txn) error {
		reused = nil
		var old RefreshToken
		if err := getJSON(txn, refreshKey(hash), &old); err != nil {
			return err
		}
		if ok, err := grantStands(txn, old.Grant, old.Subject, old.ClientID); !ok || err != nil {
			if err == nil {
				err = ErrNotFound
			}
			return err
		}
		stored := old
		newHash, t, err := next(&old)
		if errors.Is(err, ErrTokenReused) {
			reused = &stored
		}
		if err != nil {
			return err
		}
		if err := putRefreshToken(txn, hash, &old); err != nil {
			return err
		}
		return putRefreshToken(txn, newHash, t)
	})
	return reused, err
}

// keysUnder lists the keys under prefix, without their values.
func keysUnder(txn *badger.Txn, prefix string) ([]string, error) {
	opts := badger.DefaultIteratorOptions
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
func deleteByIndex(txn *badger.Txn, prefix string) error {
	keys, err := keysUnder(txn, prefix)
	if err != nil {
		return err
	}
	for _, k := range keys {
		raw, err := hex.DecodeString(k[len(prefix):])
		if err != nil {
			return fmt.Errorf("index entry %q: %w", k, err)
		}
		var t RefreshToken
		err = getJSON(txn, refreshKey(raw), &t)
		if errors.Is(err, ErrNotFound) {
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
func revokeFamily(txn *badger.Txn, family string, until int64) error {
	if err := deleteByIndex(txn, prefixFamilyTokens+family+"/"); err != nil {
		return err
	}
	return revoke(txn, prefixRevokedFamily, family, until)
}

// RevokeFamily deletes every refresh token of a family and revokes the
// access tokens issued from it until the unix time until (when the last of
// them expires).
func (s *Badger) RevokeFamily(ctx context.Context, family string, until int64) error {
	err := s.update(ctx, func(txn *badger.Txn) error {
		return revokeFamily(txn, family, until)
	})
	if err == nil {
		s.revoked.add(prefixRevokedFamily, until, family)
	}
	return err
}

// RevokeAccessToken revokes one access token until it expires.
func (s *Badger) RevokeAccessToken(ctx context.Context, jti string, exp int64) error {
	err := s.update(ctx, func(txn *badger.Txn) error {
		return revoke(txn, prefixRevokedJTI, jti, exp)
	})
	if err == nil {
		s.revoked.add(prefixRevokedJTI, exp, jti)
	}
	return err
}
