package badger

import (
	"context"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	bdb "github.com/dgraph-io/badger/v4"

	"github.com/caddy-dcr/caddy-dcr/storage"
)

func initialTokenKey(id string) []byte { return []byte(prefixInitialToken + id) }

// initialTokenHashKey indexes a token by its hash, so that a registration
// reads only the token it presents: reading them all made concurrent
// registrations with different tokens conflict.
func initialTokenHashKey(hash []byte) []byte {
	return []byte(prefixInitialTokenHash + hex.EncodeToString(hash))
}

// putInitialToken stores t and its hash index entry, with t's lifetime.
func putInitialToken(txn *bdb.Txn, t *storage.InitialAccessToken) error {
	b, err := json.Marshal(t)
	if err != nil {
		return fmt.Errorf("encoding initial access token %s: %w", t.ID, err)
	}
	if err := setUntil(txn, initialTokenKey(t.ID), b, t.ExpiresAt); err != nil {
		return err
	}
	return setUntil(txn, initialTokenHashKey(t.Hash), []byte(t.ID), t.ExpiresAt)
}

// indexInitialTokens writes the hash index entries of tokens stored
// before there was an index. It runs when the store opens.
func (s *Store) indexInitialTokens() error {
	return s.db.Update(func(txn *bdb.Txn) error {
		all, err := scanTxn[storage.InitialAccessToken](txn, prefixInitialToken)
		if err != nil {
			return err
		}
		for _, t := range all {
			if _, err := txn.Get(initialTokenHashKey(t.Hash)); errors.Is(err, bdb.ErrKeyNotFound) {
				err = setUntil(txn, initialTokenHashKey(t.Hash), []byte(t.ID), t.ExpiresAt)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// CreateInitialAccessToken implements storage.Store.
func (s *Store) CreateInitialAccessToken(ctx context.Context, t *storage.InitialAccessToken) error {
	return s.update(ctx, func(txn *bdb.Txn) error {
		_, err := txn.Get(initialTokenKey(t.ID))
		if err == nil {
			return storage.ErrExists
		}
		if !errors.Is(err, bdb.ErrKeyNotFound) {
			return err
		}
		return putInitialToken(txn, t)
	})
}

// InitialAccessTokens implements storage.Store. Badger drops a token a
// minute after it expires; the minute is filtered out here.
func (s *Store) InitialAccessTokens(ctx context.Context) ([]*storage.InitialAccessToken, error) {
	all, err := scanJSON[storage.InitialAccessToken](ctx, s, prefixInitialToken)
	if err != nil {
		return nil, err
	}
	now := time.Now().Unix()
	out := all[:0]
	for _, t := range all {
		if t.ExpiresAt == 0 || now < t.ExpiresAt {
			out = append(out, t)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].CreatedAt < out[j].CreatedAt })
	return out, nil
}

// DeleteInitialAccessToken implements storage.Store.
func (s *Store) DeleteInitialAccessToken(ctx context.Context, id string) error {
	return s.update(ctx, func(txn *bdb.Txn) error {
		var t storage.InitialAccessToken
		if err := getJSON(txn, initialTokenKey(id), &t); err != nil {
			return err
		}
		if err := txn.Delete(initialTokenHashKey(t.Hash)); err != nil {
			return err
		}
		return txn.Delete(initialTokenKey(id))
	})
}

// CreateClientWithInitialAccessToken implements storage.Store.
func (s *Store) CreateClientWithInitialAccessToken(ctx context.Context, c *storage.Client, hash []byte, at int64) error {
	err := s.update(ctx, func(txn *bdb.Txn) error { return createClientWithInitialToken(txn, c, hash, at) })
	if err == nil {
		s.clients.Add(1)
	}
	return err
}

// createClientWithInitialToken is CreateClientWithInitialAccessToken's
// transaction. The token is found through its hash index entry, so that
// registrations with different tokens read and write different keys and
// do not conflict.
func createClientWithInitialToken(txn *bdb.Txn, c *storage.Client, hash []byte, at int64) error {
	id, err := indexed(txn, initialTokenHashKey(hash))
	if err != nil {
		return err
	}
	var t storage.InitialAccessToken
	if err := getJSON(txn, initialTokenKey(id), &t); err != nil {
		return err // ErrNotFound: deleted, the index entry outlived it
	}
	if subtle.ConstantTimeCompare(t.Hash, hash) != 1 || !t.Usable(at) {
		return storage.ErrNotFound
	}
	t.Uses++
	if err := putInitialToken(txn, &t); err != nil {
		return err
	}
	return createClient(txn, c)
}
