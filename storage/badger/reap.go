package badger

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	bdb "github.com/dgraph-io/badger/v4"
	"go.uber.org/zap"

	"github.com/caddy-dcr/caddy-dcr/storage"
)

// ReapClients implements storage.Store. It walks the clients in the
// order of removal through their ci/ index entries, from p.After up to
// the policy's cutoff, and keeps the first p.BatchLimit() that p selects
// and that hold no live refresh token (nor, when needed, a grant). Those
// are then removed in order, each in a transaction of its own that reads
// the client again and checks its refresh tokens and grants: a client
// touched meanwhile (TouchClient rewrites the record, which makes the two
// transactions conflict) is kept.
func (s *Store) ReapClients(ctx context.Context, p storage.ReapPolicy) ([]storage.ClientPosition, error) {
	limit, cutoff := p.BatchLimit(), p.Cutoff()
	var candidates []storage.ClientPosition
	err := s.view(ctx, func(txn *bdb.Txn) error {
		candidates = candidates[:0]
		opts := bdb.DefaultIteratorOptions
		opts.Prefix, opts.PrefetchValues = []byte(prefixClientIssued), false
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Seek(issuedKey(p.After)); it.Valid() && len(candidates) < limit; it.Next() {
			pos, err := parseIssuedKey(it.Item().Key())
			if err != nil {
				return err
			}
			if pos.IssuedAt >= cutoff {
				break
			}
			if !p.After.Before(pos) {
				continue
			}
			c, err := getClient(txn, pos.ID)
			if errors.Is(err, storage.ErrNotFound) {
				continue // an entry left by a write that crashed halfway
			}
			if err != nil {
				return err
			}
			if !p.Selects(c) {
				continue
			}
			// Checked here so that a client kept for its tokens or
			// grants does not take the place of one that can go.
			if ok, err := reapable(txn, c, &p); err != nil || !ok {
				if err != nil {
					return err
				}
				continue
			}
			candidates = append(candidates, pos)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var reaped []storage.ClientPosition
	for _, pos := range candidates {
		removed, err := s.reapClient(ctx, pos.ID, &p)
		if err != nil {
			return reaped, err
		}
		if removed {
			reaped = append(reaped, pos)
		}
	}
	return reaped, nil
}

// issuedKey is the ci/ index entry of the client at pos. The registration
// time is 16 hex digits, so that the keys sort in the order of removal.
func issuedKey(pos storage.ClientPosition) []byte {
	return fmt.Appendf(nil, "%s%016x/%s", prefixClientIssued, uint64(max(pos.IssuedAt, 0)), pos.ID)
}

func parseIssuedKey(key []byte) (storage.ClientPosition, error) {
	rest := key[len(prefixClientIssued):]
	if len(rest) < 17 || rest[16] != '/' {
		return storage.ClientPosition{}, fmt.Errorf("malformed index key %q", key)
	}
	issued, err := strconv.ParseUint(string(rest[:16]), 16, 63)
	if err != nil {
		return storage.ClientPosition{}, fmt.Errorf("malformed index key %q: %w", key, err)
	}
	return storage.ClientPosition{IssuedAt: int64(issued), ID: string(rest[17:])}, nil
}

// indexClientsByIssued makes the ci/ index match the client records, of
// which there are clients. Every write keeps the two together in one
// transaction, so at open they differ only in a store from before the
// index, or one an earlier version wrote to meanwhile (rolling back is not
// supported, but should not leave clients that are never reaped): then the
// index is rebuilt from the records, which costs one read of them. A
// record that does not decode is logged and left out of the index; it
// fails where it is read, as before.
func (s *Store) indexClientsByIssued(clients int64) error {
	entries, err := s.countKeys(prefixClientIssued)
	if err != nil || entries == clients {
		return err
	}
	want := map[string]bool{}
	err = s.db.View(func(txn *bdb.Txn) error {
		opts := bdb.DefaultIteratorOptions
		opts.Prefix = []byte(prefixClient)
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			c, err := itemClient(it.Item())
			if err != nil {
				s.logger.Warn("a client record does not decode; it is left out of the reaping index",
					zap.ByteString("key", it.Item().Key()), zap.Error(err))
				continue
			}
			want[string(issuedKey(c.Position()))] = true
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.logger.Info("rebuilding the index of clients by registration time",
		zap.Int64("clients", clients), zap.Int64("entries", entries))
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	err = s.db.View(func(txn *bdb.Txn) error {
		keys, err := keysUnder(txn, prefixClientIssued, math.MaxInt)
		if err != nil {
			return err
		}
		for _, key := range keys {
			if want[key] {
				delete(want, key)
				continue
			}
			if err := wb.Delete([]byte(key)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for key := range want {
		if err := wb.Set([]byte(key), nil); err != nil {
			return err
		}
	}
	return wb.Flush()
}

// reapable reports whether c, which p selects, holds no live refresh token
// and, when only the idle rule selects it, no grant.
func reapable(txn *bdb.Txn, c *storage.Client, p *storage.ReapPolicy) (bool, error) {
	if live, err := hasLiveRefreshToken(txn, c.ID, p.Now); err != nil || live {
		return false, err
	}
	if p.NeedsNoGrant(c) {
		if grants, err := keysUnder(txn, prefixClientGrants+c.ID+"/", 1); err != nil || len(grants) > 0 {
			return false, err
		}
	}
	return true, nil
}

// reapClient removes the client id if p still selects it, as DeleteClient
// does, and reports whether it did.
func (s *Store) reapClient(ctx context.Context, id string, p *storage.ReapPolicy) (bool, error) {
	var removed bool
	err := s.update(ctx, func(txn *bdb.Txn) error {
		removed = false
		c, err := getClient(txn, id)
		if errors.Is(err, storage.ErrNotFound) {
			return nil // removed meanwhile
		}
		if err != nil || !p.Selects(c) {
			return err
		}
		if ok, err := reapable(txn, c, p); err != nil || !ok {
			return err
		}
		removed = true
		return deleteClient(txn, c, p.Until)
	})
	if err != nil || !removed {
		return false, err
	}
	s.clients.Add(-1)
	s.purgeClient(ctx, id)
	return true, nil
}

// hasLiveRefreshToken reports whether the client holds a refresh token that
// expires after now.
func hasLiveRefreshToken(txn *bdb.Txn, clientID string, now int64) (bool, error) {
	prefix := prefixClientTokens + clientID + "/"
	opts := bdb.DefaultIteratorOptions
	opts.Prefix, opts.PrefetchValues = []byte(prefix), false
	it := txn.NewIterator(opts)
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		key := string(it.Item().Key())
		var t storage.RefreshToken
		err := getJSON(txn, []byte(prefixRefreshToken+key[len(prefix):]), &t)
		if errors.Is(err, storage.ErrNotFound) {
			continue // the index entry outlived its token
		}
		if err != nil {
			return false, err
		}
		if t.ExpiresAt > now {
			return true, nil
		}
	}
	return false, nil
}

// sweepOrphans removes the grants of clients that are gone: DeleteClient
// removes them after its commit, and a failure or a crash in between
// leaves them behind. A client ID metadata document client (its id an
// https URL) is never stored, so its grants are not orphans.
func (s *Store) sweepOrphans(ctx context.Context) error {
	var orphans []string // client ids
	err := s.view(ctx, func(txn *bdb.Txn) error {
		opts := bdb.DefaultIteratorOptions
		opts.Prefix, opts.PrefetchValues = []byte(prefixClientGrants), false
		it := txn.NewIterator(opts)
		defer it.Close()
		last := ""
		for it.Rewind(); it.Valid(); it.Next() {
			key := string(it.Item().Key())[len(prefixClientGrants):]
			i := strings.LastIndexByte(key, '/')
			if i < 0 {
				continue
			}
			id := key[:i]
			if id == last || strings.HasPrefix(id, "https://") {
				continue
			}
			last = id
			if _, err := txn.Get(clientKey(id)); errors.Is(err, bdb.ErrKeyNotFound) {
				orphans = append(orphans, id)
			} else if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, id := range orphans {
		s.logger.Debug("removing the grants of a deleted client", zap.String("client_id", id))
		s.purgeClient(ctx, id)
	}
	return nil
}

// DisabledClients implements storage.Store from the index of disabled
// clients (markDisabled): keys only, however many clients there are.
func (s *Store) DisabledClients(ctx context.Context) ([]string, error) {
	var ids []string
	err := s.view(ctx, func(txn *bdb.Txn) error {
		keys, err := keysUnder(txn, prefixDisabledClient, math.MaxInt)
		for _, k := range keys {
			ids = append(ids, k[len(prefixDisabledClient):])
		}
		return err
	})
	return ids, err
}
