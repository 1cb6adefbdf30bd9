package badger

import (
	"context"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bdb "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"go.uber.org/zap"

	"github.com/caddy-dcr/caddy-dcr/storage"
)

// Key prefixes. Every record kind has its own, so a prefix scan never
// crosses kinds.
const (
	prefixClient            = "c/"   // c/<client id> -> client record (clientrecord.go)
	prefixRegistrationToken = "r/"   // r/<hex sha256 of token> -> client id
	prefixInitialToken      = "i/"   // i/<id> -> InitialAccessToken JSON
	prefixInitialTokenHash  = "i-h/" // i-h/<hex sha256 of token> -> id
	prefixDisabledClient    = "d/"   // d/<client id> -> nothing: the client is disabled
	prefixClientIssued      = "ci/"  // ci/<issued at, 16 hex digits>/<client id> -> nothing: clients in the order of removal (reap.go)

)

// maxConflictRetries bounds how often a write that lost a race with a
// concurrent transaction is replayed.
const maxConflictRetries = 64

// Options tune a Badger store.
type Options struct {
	// SyncWrites makes every commit wait for fsync. Without it a committed
	// write survives the process being killed (it is in the OS page cache)
	// but the last writes may be lost on power loss.
	SyncWrites bool

	// InMemory keeps everything in memory; for tests.
	InMemory bool

	// GCInterval is how often value-log garbage collection runs.
	// Default: 10 minutes.
	GCInterval time.Duration

	// CompactInterval is how often the tables are compacted whole, which
	// drops every version deleted or expired since (Badger's own
	// compactions drop them only as its levels fill). Default: 6 hours.
	CompactInterval time.Duration

	// Logger receives Badger's own logs and the store's. Default: no-op.
	Logger *zap.Logger
}

// Store is the storage.Store backed by an embedded Badger v4 database.
type Store struct {
	db     *bdb.DB
	logger *zap.Logger
	// clients counts the stored clients (CountClients): counted at Open,
	// then moved by every committed creation and removal. Badger's lock
	// keeps every other process out, so the count is exact.
	clients atomic.Int64
	stop    chan struct{}
	wg      sync.WaitGroup
	close   sync.Once
}

var _ storage.Store = (*Store)(nil)

// Open opens (creating if needed) the Badger database in dir. The
// directory is created with mode 0700: it holds signing keys and secret
// hashes that only Caddy's user may read.
//
// Badger's defaults are sized for large databases (64 MiB memtables, 256
// MiB block cache, 1 GiB value-log files). Records here are a few hundred
// bytes, so memtables are 4 MiB, tables 512 KiB, values stay in the LSM tree
// (the value threshold is 64 KiB), and tables are stored uncompressed: the
// compressors' and decompressors' buffers and the block cache that
// compression requires cost more memory than the mmapped tables they save
// (measured with bench/run; see the README).
func Open(dir string, opts Options) (*Store, error) {
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.GCInterval <= 0 {
		opts.GCInterval = 10 * time.Minute
	}
	if opts.CompactInterval <= 0 {
		opts.CompactInterval = 6 * time.Hour
	}
	bopts := bdb.DefaultOptions(dir).
		WithLogger(badgerLogger{opts.Logger.Sugar()}).
		WithSyncWrites(opts.SyncWrites).
		WithInMemory(opts.InMemory).
		WithMetricsEnabled(false).
		WithNumGoroutines(2).
		WithMemTableSize(2 << 20).
		WithNumMemtables(2).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(8).
		WithBaseTableSize(512 << 10).
		WithBaseLevelSize(4 << 20).
		WithNumCompactors(2).
		WithCompression(options.None).
		WithBlockCacheSize(0).
		WithValueThreshold(64 << 10).
		WithValueLogFileSize(16 << 20).
		WithCompactL0OnClose(true)
	// Tables of 512 KiB at every level, not doubling per level: right
	// after a burst of registrations, compaction's table builders (Badger
	// pools up to 8, each buffering twice its table) were most of the
	// heap; halving the tables from 1 MiB took the anonymous memory after
	// 100,000 registrations from 70 to 59 MiB. There is no With method
	// for the multiplier.
	//
	// Memtables of 2 MiB: each flush builds a level 0 table of a whole
	// memtable in a buffer that doubles as it fills and that Badger then
	// pools, and each memtable is an arena plus a mapped file. Going from
	// 4 MiB to 2 MiB took the RSS right after 100,000 registrations from
	// 146-156 MiB to 121-131 MiB (bench/run's footprint), for no change
	// in the registration rate beyond this machine's noise. The largest
	// transaction (a batch of purgeBatch deletions) stays well within the
	// 15% of a memtable Badger allows one.
	bopts.TableSizeMultiplier = 1
	if opts.InMemory {
		bopts = bopts.WithDir("").WithValueDir("")
	} else {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("creating storage directory %s: %w", dir, err)
		}
		if err := os.Chmod(dir, 0o700); err != nil {
			return nil, fmt.Errorf("restricting storage directory %s: %w", dir, err)
		}
	}
	db, err := bdb.Open(bopts)
	if err != nil {
		if strings.Contains(err.Error(), "Another process is using this Badger database") {
			return nil, fmt.Errorf("opening storage %s: %w (another Caddy process, or another program, has this directory open: stop it or give each its own storage directory)", dir, err)
		}
		return nil, fmt.Errorf("opening storage %s: %w", dir, err)
	}
	s := &Store{db: db, logger: opts.Logger, stop: make(chan struct{})}
	n, err := s.countKeys(prefixClient)
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("counting clients in %s: %w", dir, err)
	}
	s.clients.Store(n)
	if err := s.indexInitialTokens(); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("indexing initial access tokens in %s: %w", dir, err)
	}
	if err := s.indexClientsByIssued(n); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("indexing clients in %s: %w", dir, err)
	}
	s.wg.Add(1)
	go s.maintain(opts.GCInterval, opts.CompactInterval, !opts.InMemory)
	return s, nil
}

// Close stops garbage collection and closes the database. It is safe to
// call more than once.
func (s *Store) Close() error {
	var err error
	s.close.Do(func() {
		close(s.stop)
		s.wg.Wait()
		err = s.db.Close()
	})
	return err
}

// maintain runs value-log GC (on disk) every interval and compacts the
// tables every compactInterval, until Close. It is owned by the Store and
// stopped by its Close.
func (s *Store) maintain(interval, compactInterval time.Duration, gc bool) {
	defer s.wg.Done()
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	compaction := time.NewTicker(compactInterval)
	defer compaction.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-compaction.C:
			if err := s.sweepOrphans(context.Background()); err != nil {
				s.logger.Warn("removing the grants of deleted clients failed", zap.Error(err))
			}
			if err := s.compact(); err != nil {
				s.logger.Warn("compacting the database failed", zap.Error(err))
			}
			continue
		case <-ticker.C:
		}
		if !gc {
			continue
		}
		// Each call rewrites at most one file; repeat while it finds work.
		for {
			err := s.db.RunValueLogGC(0.5)
			if err == nil {
				continue
			}
			if !errors.Is(err, bdb.ErrNoRewrite) && !errors.Is(err, bdb.ErrRejected) {
				s.logger.Warn("value log garbage collection failed", zap.Error(err))
			}
			break
		}
	}
}

// update runs fn in a read-write transaction, replaying it when it loses a
// race with a concurrent transaction, as Badger's ErrConflict asks.
func (s *Store) update(ctx context.Context, fn func(txn *bdb.Txn) error) error {
	for attempt := range maxConflictRetries {
		if err := ctx.Err(); err != nil {
			return err
		}
		err := s.db.Update(fn)
		if !errors.Is(err, bdb.ErrConflict) {
			return err
		}
		// Back off a random, growing while so that the writers that
		// collided do not collide again in lockstep.
		backoff := time.Duration(rand.Int64N(int64(attempt+1) * int64(200*time.Microsecond)))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
	}
	return fmt.Errorf("too many conflicting writes: %w", bdb.ErrConflict)
}

func (s *Store) view(ctx context.Context, fn func(txn *bdb.Txn) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.View(fn)
}

func clientKey(id string) []byte { return []byte(prefixClient + id) }

func registrationTokenKey(hash []byte) []byte {
	return []byte(prefixRegistrationToken + hex.EncodeToString(hash))
}

// indexed reads the id that an index entry (a key made of a secret's
// hash) points to; a missing entry is storage.ErrNotFound.
func indexed(txn *bdb.Txn, key []byte) (string, error) {
	item, err := txn.Get(key)
	if errors.Is(err, bdb.ErrKeyNotFound) {
		return "", storage.ErrNotFound
	}
	if err != nil {
		return "", err
	}
	id, err := item.ValueCopy(nil)
	return string(id), err
}

// getJSON decodes the value at key into v, mapping a missing key to
// storage.ErrNotFound.
func getJSON(txn *bdb.Txn, key []byte, v any) error {
	item, err := txn.Get(key)
	if errors.Is(err, bdb.ErrKeyNotFound) {
		return storage.ErrNotFound
	}
	if err != nil {
		return err
	}
	return item.Value(func(b []byte) error { return json.Unmarshal(b, v) })
}

// standInClient is decoded when a client is missing, so that a miss costs
// what a hit costs: client authentication must not tell an unknown client
// from a wrong secret by its timing (the basic_auth defense).
var standInClient = func() []byte {
	b, _ := encodeClient(&storage.Client{
		ID: "AAAAAAAAAAAAAAAAAAAAAA", IssuedAt: 1, SecretHash: make([]byte, 32), RegistrationTokenHash: make([]byte, 32),
		Metadata: storage.Metadata{
			RedirectURIs: []string{}, TokenEndpointAuthMethod: storage.AuthMethodBasic,
			GrantTypes: []string{"client_credentials"}, ResponseTypes: []string{}, Scope: "read write",
		},
	})
	return b
}()

func getClient(txn *bdb.Txn, id string) (*storage.Client, error) {
	item, err := txn.Get(clientKey(id))
	if errors.Is(err, bdb.ErrKeyNotFound) {
		_, _ = decodeClient(standInClient)
		return nil, storage.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return itemClient(item)
}

// itemClient decodes the client record item holds.
func itemClient(item *bdb.Item) (c *storage.Client, err error) {
	err = item.Value(func(b []byte) error {
		c, err = decodeClient(b)
		return err
	})
	return c, err
}

func putClient(txn *bdb.Txn, c *storage.Client) error {
	b, err := encodeClient(c)
	if err != nil {
		return fmt.Errorf("encoding client %s: %w", c.ID, err)
	}
	return txn.Set(clientKey(c.ID), b)
}

// CreateClient implements storage.Store.
func (s *Store) CreateClient(ctx context.Context, c *storage.Client) error {
	err := s.update(ctx, func(txn *bdb.Txn) error { return createClient(txn, c) })
	if err == nil {
		s.clients.Add(1)
	}
	return err
}

func createClient(txn *bdb.Txn, c *storage.Client) error {
	_, err := txn.Get(clientKey(c.ID))
	if err == nil {
		return storage.ErrExists
	}
	if !errors.Is(err, bdb.ErrKeyNotFound) {
		return err
	}
	if err := putClient(txn, c); err != nil {
		return err
	}
	if err := txn.Set(issuedKey(c.Position()), nil); err != nil {
		return err
	}
	return txn.Set(registrationTokenKey(c.RegistrationTokenHash), []byte(c.ID))
}

// updateClient applies fn to the stored client and stores the result.
func (s *Store) updateClient(ctx context.Context, id string, fn func(c *storage.Client)) (*storage.Client, error) {
	var c *storage.Client
	err := s.update(ctx, func(txn *bdb.Txn) error {
		var err error
		if c, err = getClient(txn, id); err != nil {
			return err
		}
		fn(c)
		return putClient(txn, c)
	})
	return c, err
}

// SetClientSettings implements storage.Store.
func (s *Store) SetClientSettings(ctx context.Context, id string, old, settings storage.ClientSettings) (*storage.Client, error) {
	var c *storage.Client
	err := s.update(ctx, func(txn *bdb.Txn) error {
		var err error
		if c, err = getClient(txn, id); err != nil {
			return err
		}
		// Compared inside the transaction: a concurrent write of the
		// client makes this one conflict and retry, and compare again.
		if !c.Settings.Equal(old) {
			return storage.ErrConflict
		}
		c.Settings = settings
		if err := putClient(txn, c); err != nil {
			return err
		}
		return markDisabled(txn, c.ID, settings.Disabled)
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// markDisabled keeps the index of disabled clients that DisabledClients
// reads, so that it never decodes every client.
func markDisabled(txn *bdb.Txn, id string, disabled bool) error {
	if disabled {
		return txn.Set([]byte(prefixDisabledClient+id), nil)
	}
	return txn.Delete([]byte(prefixDisabledClient + id))
}

// TouchClient implements storage.Store.
func (s *Store) TouchClient(ctx context.Context, id string, at int64) error {
	_, err := s.updateClient(ctx, id, func(c *storage.Client) { c.LastUsedAt = max(c.LastUsedAt, at) })
	return err
}

// Client implements storage.Store.
func (s *Store) Client(ctx context.Context, id string) (*storage.Client, error) {
	var c *storage.Client
	err := s.view(ctx, func(txn *bdb.Txn) error {
		var err error
		c, err = getClient(txn, id)
		return err
	})
	return c, err
}

// ClientByRegistrationToken implements storage.Store.
func (s *Store) ClientByRegistrationToken(ctx context.Context, hash []byte) (*storage.Client, error) {
	var c *storage.Client
	err := s.view(ctx, func(txn *bdb.Txn) error {
		id, err := indexed(txn, registrationTokenKey(hash))
		if err != nil {
			return err
		}
		c, err = getClient(txn, id)
		return err
	})
	return c, err
}

// ReplaceClient implements storage.Store.
func (s *Store) ReplaceClient(ctx context.Context, c *storage.Client, tokenHash []byte) error {
	return s.update(ctx, func(txn *bdb.Txn) error {
		old, err := getClient(txn, c.ID)
		if err != nil {
			return err
		}
		if subtle.ConstantTimeCompare(old.RegistrationTokenHash, tokenHash) != 1 {
			return storage.ErrConflict
		}
		kept := *c
		kept.Origin, kept.LastUsedAt, kept.Settings = old.Origin, old.LastUsedAt, old.Settings
		if err := putClient(txn, &kept); err != nil {
			return err
		}
		if kept.IssuedAt != old.IssuedAt {
			if err := txn.Delete(issuedKey(old.Position())); err != nil {
				return err
			}
			if err := txn.Set(issuedKey(kept.Position()), nil); err != nil {
				return err
			}
		}
		if string(old.RegistrationTokenHash) != string(c.RegistrationTokenHash) {
			if err := txn.Delete(registrationTokenKey(old.RegistrationTokenHash)); err != nil {
				return err
			}
			return txn.Set(registrationTokenKey(c.RegistrationTokenHash), []byte(c.ID))
		}
		return nil
	})
}

// DeleteClient implements storage.Store.
func (s *Store) DeleteClient(ctx context.Context, id string, until int64) error {
	err := s.update(ctx, func(txn *bdb.Txn) error {
		c, err := getClient(txn, id)
		if err != nil {
			return err
		}
		return deleteClient(txn, c, until)
	})
	if err != nil {
		return err
	}
	s.clients.Add(-1)
	s.purgeClient(ctx, id)
	return nil
}

// deleteClient deletes c, its registration token's index entry, and
// revokes its tokens until the unix time until; purgeClient removes the
// rest once that committed.
func deleteClient(txn *bdb.Txn, c *storage.Client, until int64) error {
	if err := txn.Delete(registrationTokenKey(c.RegistrationTokenHash)); err != nil {
		return err
	}
	if err := revoke(txn, prefixRevokedClient, c.ID, until); err != nil {
		return err
	}
	if err := markDisabled(txn, c.ID, false); err != nil {
		return err
	}
	if err := txn.Delete(issuedKey(c.Position())); err != nil {
		return err
	}
	return txn.Delete(clientKey(c.ID))
}

// purgeClient removes what hangs on a deleted client, in batches, however
// much there is: its tokens are revoked already, so this is cleanup, and
// what a failure leaves is removed by sweepOrphans or expires.
func (s *Store) purgeClient(ctx context.Context, id string) {
	s.purge(ctx, prefixClientTokens+id+"/")
	err := s.inBatches(ctx, prefixClientGrants+id+"/", func(txn *bdb.Txn, keys []string) error {
		return deleteClientGrants(txn, id, keys)
	})
	if err != nil {
		s.logger.Error("deleting a deleted client's grants failed", zap.String("client_id", id), zap.Error(err))
	}
}

// countKeys counts the keys under prefix, reading keys only.
func (s *Store) countKeys(prefix string) (int64, error) {
	var n int64
	err := s.db.View(func(txn *bdb.Txn) error {
		opts := bdb.DefaultIteratorOptions
		opts.Prefix, opts.PrefetchValues = []byte(prefix), false
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	})
	return n, err
}

// CountClients implements storage.Store from the count kept in memory.
func (s *Store) CountClients(ctx context.Context) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return int(s.clients.Load()), nil
}

// Clients implements storage.Store.
func (s *Store) Clients(ctx context.Context, cursor string, limit int) ([]*storage.Client, string, error) {
	if limit <= 0 {
		return nil, "", nil
	}
	var out []*storage.Client
	next := ""
	err := s.view(ctx, func(txn *bdb.Txn) error {
		opts := bdb.DefaultIteratorOptions
		opts.Prefix = []byte(prefixClient)
		opts.PrefetchSize = min(limit+1, 100)
		it := txn.NewIterator(opts)
		defer it.Close()
		it.Seek(clientKey(cursor))
		if cursor != "" && it.Valid() && string(it.Item().Key()) == prefixClient+cursor {
			it.Next()
		}
		for ; it.Valid(); it.Next() {
			if len(out) == limit {
				next = out[len(out)-1].ID
				return nil
			}
			c, err := itemClient(it.Item())
			if err != nil {
				return err
			}
			out = append(out, c)
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	return out, next, nil
}

// badgerLogger sends Badger's logs to zap. Badger's Info level narrates
// routine compactions and is demoted to Debug.
type badgerLogger struct{ s *zap.SugaredLogger }

func (l badgerLogger) Errorf(f string, a ...any)   { l.s.Errorf(strings.TrimSpace(f), a...) }
func (l badgerLogger) Warningf(f string, a ...any) { l.s.Warnf(strings.TrimSpace(f), a...) }
func (l badgerLogger) Infof(f string, a ...any)    { l.s.Debugf(strings.TrimSpace(f), a...) }
func (l badgerLogger) Debugf(f string, a ...any)   { l.s.Debugf(strings.TrimSpace(f), a...) }

// compact rewrites the LSM tree into one level, which drops the versions
// that were deleted, replaced or expired, then collects the value log.
func (s *Store) compact() error {
	if err := s.db.Flatten(1); err != nil {
		return fmt.Errorf("compacting: %w", err)
	}
	for {
		err := s.db.RunValueLogGC(0.5)
		if err == nil {
			continue
		}
		if errors.Is(err, bdb.ErrNoRewrite) || errors.Is(err, bdb.ErrRejected) || errors.Is(err, bdb.ErrGCInMemoryMode) {
			return nil
		}
		return fmt.Errorf("collecting the value log: %w", err)
	}
}
