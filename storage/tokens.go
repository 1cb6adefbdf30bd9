package storage

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
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
	prefixRevokedJTI    = "vj/" // vj/<jti> -> expiry (unix seconds)
	prefixRevokedFamily = "vf/" // vf/<family> -> expiry (unix seconds)
	prefixRevokedClient = "vc/" // vc/<client id> -> tokens issued up to this second are revoked
	prefixServerSecret  = "s/"  // s/<name> -> a random secret of the server's
)

// ErrTokenReused is returned by RotateRefreshToken for a refresh token that
// was already rotated: a replay, after which the caller revokes the family.
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
	// Used marks a token that was rotated; presenting it again is a
	// replay (OAuth 2.1 §4.3.1).
	Used bool `json:"used,omitempty"`
	// Claims are extra claims carried into the access tokens.
	Claims map[string]string `json:"claims,omitempty"`
}

// Revocations is the part of the store the token gate asks on every
// request. Its answers come from memory, kept in step with the database by
// the writes of this process, so they never block.
type Revocations interface {
	// Revoked reports whether an access token with this jti, client,
	// family ("" for none) and issue time (unix seconds) was revoked,
	// directly, through its family, or through its client (deleted, or
	// all its tokens revoked).
	Revoked(jti, clientID, family string, issuedAt int64) bool
}

// revocations is the in-memory index behind Revoked. Entries expire with
// the tokens they cover and are swept by the store's maintenance loop.
type revocations struct {
	mu       sync.RWMutex
	jtis     map[string]int64 // jti -> token expiry
	families map[string]int64 // family -> expiry of the last token it could cover
	clients  map[string]int64 // client id -> revoked up to (issue time)
}

func newRevocations() *revocations {
	return &revocations{jtis: map[string]int64{}, families: map[string]int64{}, clients: map[string]int64{}}
}

func (r *revocations) revoked(jti, clientID, family string, issuedAt int64) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if _, ok := r.jtis[jti]; ok {
		return true
	}
	if family != "" {
		if _, ok := r.families[family]; ok {
			return true
		}
	}
	before, ok := r.clients[clientID]
	return ok && issuedAt <= before
}

func (r *revocations) sweep(now int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, exp := range r.jtis {
		if exp < now {
			delete(r.jtis, k)
		}
	}
	for k, exp := range r.families {
		if exp < now {
			delete(r.families, k)
		}
	}
}

// Revoked implements Revocations.
func (s *Badger) Revoked(jti, clientID, family string, issuedAt int64) bool {
	return s.revoked.revoked(jti, clientID, family, issuedAt)
}

// loadRevocations fills the in-memory index from the database at open.
func (s *Badger) loadRevocations() error {
	now := time.Now().Unix()
	return s.db.View(func(txn *badger.Txn) error {
		for _, p := range []struct {
			prefix string
			into   map[string]int64
		}{
			{prefixRevokedJTI, s.revoked.jtis},
			{prefixRevokedFamily, s.revoked.families},
			{prefixRevokedClient, s.revoked.clients},
		} {
			opts := badger.DefaultIteratorOptions
			opts.Prefix = []byte(p.prefix)
			it := txn.NewIterator(opts)
			for it.Rewind(); it.Valid(); it.Next() {
				item := it.Item()
				v, err := item.ValueCopy(nil)
				if err != nil {
					it.Close()
					return err
				}
				n, err := strconv.ParseInt(string(v), 10, 64)
				if err != nil {
					continue
				}
				if p.prefix != prefixRevokedClient && n < now {
					continue
				}
				p.into[string(item.Key()[len(p.prefix):])] = n
			}
			it.Close()
		}
		return nil
	})
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

func refreshKeys(hash []byte, t *RefreshToken) (main, byClient, byFamily []byte) {
	h := hex.EncodeToString(hash)
	return []byte(prefixRefreshToken + h),
		[]byte(prefixClientTokens + t.ClientID + "/" + h),
		[]byte(prefixFamilyTokens + t.Family + "/" + h)
}

func putRefreshToken(txn *badger.Txn, hash []byte, t *RefreshToken) error {
	b, err := json.Marshal(t)
	if err != nil {
		return err
	}
	main, byClient, byFamily := refreshKeys(hash, t)
	for _, kv := range []struct{ k, v []byte }{{main, b}, {byClient, nil}, {byFamily, nil}} {
		if err := setUntil(txn, kv.k, kv.v, t.ExpiresAt); err != nil {
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
		main, _, _ := refreshKeys(hash, &t)
		return getJSON(txn, main, &t)
	})
	if err != nil {
		return nil, err
	}
	return &t, nil
}

// RotateRefreshToken replaces the refresh token that hashes to hash, in one
// transaction: next receives the stored token and returns the new token and
// the hash of its value, or an error that aborts the rotation. A token
// already rotated changes nothing and is returned with ErrTokenReused, as
// ConsumeAuthCode returns a replayed code, so the caller can revoke its
// family without reading it again.
func (s *Badger) RotateRefreshToken(ctx context.Context, hash []byte,
	next func(old *RefreshToken) (newHash []byte, t *RefreshToken, err error)) (*RefreshToken, error) {
	var reused *RefreshToken
	err := s.update(ctx, func(txn *badger.Txn) error {
		var old RefreshToken
		main, _, _ := refreshKeys(hash, &old)
		if err := getJSON(txn, main, &old); err != nil {
			return err
		}
		if old.Used {
			reused = &old
			return ErrTokenReused
		}
		newHash, t, err := next(&old)
		if err != nil {
			return err
		}
		old.Used = true
		if err := putRefreshToken(txn, hash, &old); err != nil {
			return err
		}
		return putRefreshToken(txn, newHash, t)
	})
	return reused, err
}

// deleteByIndex deletes every refresh token listed under an index prefix
// (tc/<client>/ or tf/<family>/), with its index entries.
func deleteByIndex(txn *badger.Txn, prefix string) error {
	opts := badger.DefaultIteratorOptions
	opts.Prefix = []byte(prefix)
	opts.PrefetchValues = false
	it := txn.NewIterator(opts)
	var hashes []string
	for it.Rewind(); it.Valid(); it.Next() {
		hashes = append(hashes, string(it.Item().Key()[len(prefix):]))
	}
	it.Close()
	for _, h := range hashes {
		var t RefreshToken
		err := getJSON(txn, []byte(prefixRefreshToken+h), &t)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		raw, _ := hex.DecodeString(h)
		main, byClient, byFamily := refreshKeys(raw, &t)
		for _, k := range [][]byte{main, byClient, byFamily} {
			if err := txn.Delete(k); err != nil {
				return err
			}
		}
	}
	return nil
}

// RevokeFamily deletes every refresh token of a family and revokes the
// access tokens issued from it until the unix time until (when the last of
// them expires).
func (s *Badger) RevokeFamily(ctx context.Context, family string, until int64) error {
	err := s.update(ctx, func(txn *badger.Txn) error {
		if err := deleteByIndex(txn, prefixFamilyTokens+family+"/"); err != nil {
			return err
		}
		return setUntil(txn, []byte(prefixRevokedFamily+family), []byte(strconv.FormatInt(until, 10)), until)
	})
	if err == nil {
		s.revoked.mu.Lock()
		s.revoked.families[family] = until
		s.revoked.mu.Unlock()
	}
	return err
}

// RevokeAccessToken revokes one access token until it expires.
func (s *Badger) RevokeAccessToken(ctx context.Context, jti string, exp int64) error {
	err := s.update(ctx, func(txn *badger.Txn) error {
		return setUntil(txn, []byte(prefixRevokedJTI+jti), []byte(strconv.FormatInt(exp, 10)), exp)
	})
	if err == nil {
		s.revoked.mu.Lock()
		s.revoked.jtis[jti] = exp
		s.revoked.mu.Unlock()
	}
	return err
}
