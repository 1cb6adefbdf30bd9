package badger

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	bdb "github.com/dgraph-io/badger/v4"

	"github.com/caddy-dcr/caddy-dcr/storage"
)

func initialTokenKey(id string) []byte { return []byte(prefixInitialToken + id) }

func putInitialToken(txn *bdb.Txn, t *storage.InitialAccessToken) error {
	b, err := json.Marshal(t)
	if err != nil {
		return fmt.Errorf("encoding initial access token %s: %w", t.ID, err)
	}
	return setUntil(txn, initialTokenKey(t.ID), b, t.ExpiresAt)
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
		if _, err := txn.Get(initialTokenKey(id)); errors.Is(err, bdb.ErrKeyNotFound) {
			return storage.ErrNotFound
		} else if err != nil {
			return err
		}
		return txn.Delete(initialTokenKey(id))
	})
}

// CreateClientWithInitialAccessToken implements storage.Store. The tokens
// are few (the operator makes them), so the one presented is found by
// comparing every stored hash in constant time rather than through an
// index keyed by the hash.
func (s *Store) CreateClientWithInitialAccessToken(ctx context.Context, c *storage.Client, hash []byte, at int64) error {
	return s.update(ctx, func(txn *bdb.Txn) error {
		all, err := scanTxn[storage.InitialAccessToken](txn, prefixInitialToken)
		if err != nil {
			return err
		}
		var found *storage.InitialAccessToken
		for _, t := range all {
			if subtle.ConstantTimeCompare(t.Hash, hash) == 1 {
				found = t
			}
		}
		if found == nil || !found.Usable(at) {
			return storage.ErrNotFound
		}
		found.Uses++
		if err := putInitialToken(txn, found); err != nil {
			return err
		}
		return createClient(txn, c)
	})
}
