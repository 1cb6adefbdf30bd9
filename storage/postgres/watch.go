package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"go.uber.org/zap"

	"github.com/caddy-dcr/caddy-dcr/storage"
)

// heartbeat is how long the revocation watch waits for a notification
// before it checks that its connection is alive: a connection lost
// without a word (a network partition) would otherwise leave the watch
// waiting for notifications that now go nowhere.
const heartbeat = 15 * time.Second

// WatchRevocations implements storage.RevocationWatcher with LISTEN on a
// connection of its own, outside the pool (a pooled connection would be
// handed to other calls). It calls resync once it listens, so that a
// revocation committed between the caller's load and the LISTEN is not
// missed, then fn for each revocation any instance commits (revoke
// notifies in the revoking transaction), until ctx is done (nil) or the
// connection fails (the error, after which the caller reconnects and
// resyncs).
func (s *Store) WatchRevocations(ctx context.Context, fn func(storage.Revocation), resync func()) error {
	cfg := s.pool.Config().ConnConfig.Copy()
	// Give up a wait by a deadline on the socket rather than a cancel
	// request, so that the connection is still good after a heartbeat.
	cfg.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.DeadlineContextWatcherHandler{Conn: c.Conn()}
	}
	var conn *pgx.Conn
	err := s.call(ctx, "listening for revocations", func(ctx context.Context) error {
		var err error
		if conn, err = pgx.ConnectConfig(ctx, cfg); err != nil {
			return err
		}
		_, err = conn.Exec(ctx, "LISTEN "+notifyChannel)
		return err
	})
	if conn != nil {
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_ = conn.Close(ctx)
		}()
	}
	if err != nil {
		return err
	}
	resync()
	for {
		wait, cancel := context.WithTimeout(ctx, heartbeat)
		n, err := conn.WaitForNotification(wait)
		cancel()
		switch {
		case ctx.Err() != nil:
			return nil
		case err == nil:
			var r storage.Revocation
			if err := json.Unmarshal([]byte(n.Payload), &r); err != nil {
				s.log.Warn("ignoring a revocation notification that does not decode", zap.Error(err))
				continue
			}
			fn(r)
		case errors.Is(wait.Err(), context.DeadlineExceeded) && pgconn.Timeout(err):
			// No news for a while: is anyone still there?
			if err := s.call(ctx, "checking the revocation listener", conn.Ping); err != nil {
				return err
			}
		default:
			return describe("waiting for revocations", err)
		}
	}
}
