package badger

import (
	"container/heap"
	"context"
	"errors"
	"math"
	"slices"
	"strings"

	bdb "github.com/dgraph-io/badger/v4"
	"go.uber.org/zap"

	"github.com/caddy-dcr/caddy-dcr/storage"
)

// ReapClients implements storage.Store. The clients are read in one pass
// that keeps only the p.BatchLimit() oldest that p selects and that hold
// no live refresh token (nor, when needed, a grant): memory stays bounded
// however many are candidates. They are then removed oldest first, each
// in a transaction of its own that reads the client again and checks its
// refresh tokens and grants: a client touched meanwhile (TouchClient
// rewrites the record, which makes the two transactions conflict) is
// kept.
func (s *Store) ReapClients(ctx context.Context, p storage.ReapPolicy) ([]string, error) {
	limit := p.BatchLimit()
	candidates := make(newestFirst, 0, limit)
	err := s.view(ctx, func(txn *bdb.Txn) error {
		opts := bdb.DefaultIteratorOptions
		opts.Prefix = []byte(prefixClient)
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			c, err := itemClient(it.Item())
			if err != nil {
				return err
			}
			if !p.Selects(c) || len(candidates) == limit && !older(c, candidates[0]) {
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
			if len(candidates) < limit {
				heap.Push(&candidates, c)
			} else {
				candidates[0] = c
				heap.Fix(&candidates, 0)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(candidates, func(a, b *storage.Client) int {
		if older(a, b) {
			return -1
		}
		return 1
	})
	var reaped []string
	for _, c := range candidates {
		removed, err := s.reapClient(ctx, c.ID, &p)
		if err != nil {
			return reaped, err
		}
		if removed {
			reaped = append(reaped, c.ID)
		}
	}
	return reaped, nil
}

// older orders clients by registration, then id.
func older(a, b *storage.Client) bool {
	return a.IssuedAt < b.IssuedAt || a.IssuedAt == b.IssuedAt && a.ID < b.ID
}

// newestFirst is a heap of clients with the newest on top: the one to
// drop when an older candidate turns up.
type newestFirst []*storage.Client

func (h newestFirst) Len() int           { return len(h) }
func (h newestFirst) Less(i, j int) bool { return older(h[j], h[i]) }
func (h newestFirst) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *newestFirst) Push(x any)        { *h = append(*h, x.(*storage.Client)) }
func (h *newestFirst) Pop() any {
	old := *h
	c := old[len(old)-1]
	*h = old[:len(old)-1]
	return c
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
