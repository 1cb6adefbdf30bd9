// Package postgres is the storage.Store of caddy-dcr in PostgreSQL (13 or
// later), for several Caddy instances sharing one set of records. It
// also implements storage.RevocationWatcher, through LISTEN/NOTIFY, so
// that a revocation made by one instance reaches the others' token gates
// at once.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"path"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/caddy-dcr/caddy-dcr/storage"
)

// Options tune a PostgreSQL store.
type Options struct {
	// MaxConns bounds the connection pool. Default: pgxpool's, the
	// greater of 4 and the number of CPUs.
	MaxConns int32
	// CallTimeout bounds every call, on top of the caller's context:
	// a database that does not answer within it counts as unavailable.
	// Default: 5 s.
	CallTimeout time.Duration
	// SweepInterval is how often expired records are deleted. Default:
	// 10 minutes.
	SweepInterval time.Duration
	// Logger receives the store's logs. Default: no-op.
	Logger *zap.Logger
}

// Store is the storage.Store backed by PostgreSQL through a pgx
// connection pool.
type Store struct {
	pool    *pgxpool.Pool
	log     *zap.Logger
	timeout time.Duration
	now     func() time.Time

	stop  context.CancelFunc // stops the sweep
	wg    sync.WaitGroup
	close sync.Once
}

// Interface guards
var (
	_ storage.Store             = (*Store)(nil)
	_ storage.RevocationWatcher = (*Store)(nil)
)

//go:embed migrations/*.sql
var migrations embed.FS

// migrationLock is the pg_advisory_xact_lock key under which migrations
// run, so that instances starting together apply each one once. It is
// "dcr-migr" in ASCII; any constant will do as long as it never changes.
const migrationLock = 0x6463722d6d696772

// notifyChannel is the LISTEN/NOTIFY channel of revocations.
const notifyChannel = "dcr_revocations"

// Open connects to the database that dsn names (a postgres:// URL or a
// keyword/value string, as libpq takes) and brings its schema up to date.
// ctx bounds the connecting and the migrations, not the store's life.
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = 5 * time.Second
	}
	if opts.SweepInterval <= 0 {
		opts.SweepInterval = 10 * time.Minute
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parsing the PostgreSQL DSN: %w", err) // pgconn redacts the password
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "caddy-dcr"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to PostgreSQL: %w", err)
	}
	s := &Store{pool: pool, log: opts.Logger, timeout: opts.CallTimeout, now: time.Now}
	// A database that cannot be reached fails here, within the call
	// timeout; the migrations may then take longer.
	err = s.call(ctx, "connecting to PostgreSQL", func(ctx context.Context) error { return pool.Ping(ctx) })
	if err == nil {
		err = s.migrate(ctx)
	}
	if err != nil {
		pool.Close()
		return nil, err
	}
	bg, stop := context.WithCancel(context.Background())
	s.stop = stop
	s.wg.Add(1)
	go s.sweepEvery(bg, opts.SweepInterval)
	return s, nil
}

// Close stops the sweep and closes the connection pool. It is safe to
// call more than once.
func (s *Store) Close() error {
	s.close.Do(func() {
		s.stop()
		s.wg.Wait()
		s.pool.Close()
	})
	return nil
}

// migrate applies, in one transaction, every migration the database has
// not seen, in the order of their numbers. The transaction holds an
// advisory lock, so a second instance starting at the same time waits and
// then finds nothing left to do. A failed migration leaves the schema as
// it was.
func (s *Store) migrate(ctx context.Context) error {
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return err
	}
	type migration struct {
		version int
		name    string
	}
	var all []migration
	for _, name := range names {
		n, _, _ := strings.Cut(path.Base(name), "_")
		v, err := strconv.Atoi(n)
		if err != nil {
			return fmt.Errorf("migration %s is not numbered: %w", name, err)
		}
		all = append(all, migration{v, name}) // fs.Glob sorts; the numbers are zero-padded
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(migrationLock)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS dcr_schema_migrations (
			version    integer PRIMARY KEY,
			name       text NOT NULL,
			applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
			return err
		}
		rows, _ := tx.Query(ctx, "SELECT version FROM dcr_schema_migrations")
		applied, err := pgx.CollectRows(rows, pgx.RowTo[int32])
		if err != nil {
			return err
		}
		for _, m := range all {
			if containsVersion(applied, m.version) {
				continue
			}
			sql, err := migrations.ReadFile(m.name)
			if err != nil {
				return err
			}
			// The simple protocol runs a file of several statements.
			if _, err := tx.Conn().PgConn().Exec(ctx, string(sql)).ReadAll(); err != nil {
				return fmt.Errorf("%s: %w", path.Base(m.name), err)
			}
			if _, err := tx.Exec(ctx, "INSERT INTO dcr_schema_migrations (version, name) VALUES ($1, $2)", m.version, path.Base(m.name)); err != nil {
				return err
			}
			s.log.Info("applied database migration", zap.String("migration", path.Base(m.name)))
		}
		return nil
	})
	return describe("migrating the database schema", err)
}

func containsVersion(applied []int32, v int) bool {
	for _, a := range applied {
		if int(a) == v {
			return true
		}
	}
	return false
}

// call runs fn under ctx bounded by the call timeout and describes its
// error with purpose. A failure once the deadline passed is a timeout,
// whatever the driver made of it; one after the caller gave up is only
// that.
func (s *Store) call(ctx context.Context, purpose string, fn func(ctx context.Context) error) error {
	cctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	err := fn(cctx)
	switch {
	case err == nil:
		return nil
	case errors.Is(ctx.Err(), context.Canceled):
		return fmt.Errorf("%s: %w", purpose, context.Canceled)
	case cctx.Err() != nil:
		return fmt.Errorf("%s: %w: %w", purpose, storage.ErrUnavailable, err)
	}
	return describe(purpose, err)
}

// tx runs fn in a transaction, as call does: committed if fn returns nil,
// rolled back otherwise.
func (s *Store) tx(ctx context.Context, purpose string, fn func(ctx context.Context, tx pgx.Tx) error) error {
	return s.call(ctx, purpose, func(ctx context.Context) error {
		return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error { return fn(ctx, tx) })
	})
}

// describe wraps err with purpose and maps the driver's answers to the
// storage errors callers test for.
func describe(purpose string, err error) error {
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("%s: %w", purpose, storage.ErrNotFound)
	case errors.As(err, &pgErr) && pgErr.Code == "23505": // unique_violation
		return fmt.Errorf("%s: %w: %w", purpose, storage.ErrExists, err)
	case unavailable(err):
		return fmt.Errorf("%s: %w: %w", purpose, storage.ErrUnavailable, err)
	}
	return fmt.Errorf("%s: %w", purpose, err)
}

// unavailable reports whether err is a failure of the database rather than
// an answer: no connection, a lost one, a timeout, or a server that is
// starting, stopping or full.
func unavailable(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "57P01", // admin_shutdown
			"57P02", // crash_shutdown
			"57P03", // cannot_connect_now
			"57014", // query_canceled (statement_timeout)
			"53300": // too_many_connections
			return true
		}
		if strings.HasPrefix(pgErr.Code, "08") { // connection_exception
			return true
		}
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	return errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err) ||
		errors.As(err, &connectErr) || errors.As(err, &netErr) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		pgconn.SafeToRetry(err)
}

// Retention past expiry before the sweep deletes a record: a minute of
// grace over the clocks of the instances that share the database.
const sweepGrace = 60

// sweepBatch bounds the rows one DELETE of the sweep removes, so that it
// never holds locks for long.
const sweepBatch = 1000

// sweepEvery deletes expired records every interval until ctx is
// cancelled. It is owned by the Store and stopped by Close.
func (s *Store) sweepEvery(ctx context.Context, interval time.Duration) {
	defer s.wg.Done()
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		if err := s.sweep(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("deleting expired records failed", zap.Error(err))
		}
	}
}

// sweep deletes refresh tokens past their expiry, codes past theirs plus
// storage.UsedCodeRetention (so a late replay is still known as one),
// initial access tokens past theirs, and revocations past their until. Instances sharing the database may sweep
// at the same time; they only delete.
func (s *Store) sweep(ctx context.Context) error {
	now := s.now().Unix() - sweepGrace
	for _, q := range []struct {
		what, sql string
		before    int64
	}{
		{"expired refresh tokens", `DELETE FROM dcr_refresh_tokens WHERE hash IN
			(SELECT hash FROM dcr_refresh_tokens WHERE expires_at < $1 LIMIT $2)`, now},
		{"expired authorization codes", `DELETE FROM dcr_auth_codes WHERE hash IN
			(SELECT hash FROM dcr_auth_codes WHERE expires_at < $1 LIMIT $2)`, now - int64(storage.UsedCodeRetention/time.Second)},
		{"expired initial access tokens", `DELETE FROM dcr_initial_access_tokens WHERE id IN
			(SELECT id FROM dcr_initial_access_tokens WHERE expires_at > 0 AND expires_at < $1 LIMIT $2)`, now},
		{"expired revocations", `DELETE FROM dcr_revocations WHERE (kind, key) IN
			(SELECT kind, key FROM dcr_revocations WHERE until < $1 LIMIT $2)`, now},
	} {
		for {
			var deleted int64
			err := s.call(ctx, "deleting "+q.what, func(ctx context.Context) error {
				tag, err := s.pool.Exec(ctx, q.sql, q.before, sweepBatch)
				deleted = tag.RowsAffected()
				return err
			})
			if err != nil {
				return err
			}
			if deleted > 0 {
				s.log.Debug("deleted "+q.what, zap.Int64("count", deleted))
			}
			if deleted < sweepBatch {
				break
			}
		}
	}
	return nil
}
