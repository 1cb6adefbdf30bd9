package caddydcr

import (
	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddy-dcr/caddy-dcr/storage"
)

// stores shares one Badger database among every handler that names the
// same directory, across config reloads: Caddy provisions the new config
// before it cleans up the old one, and Badger holds a lock on its
// directory, so each handler opening its own would fail on every reload.
var stores = caddy.NewUsagePool()

type pooledStore struct{ *storage.Badger }

// Destruct closes the database once its last user let go.
func (p pooledStore) Destruct() error { return p.Close() }

// openStore takes a reference to the database in dir (a clean absolute
// path), opening it if no handler has it open.
func openStore(dir string, syncWrites bool) (*storage.Badger, error) {
	logger := caddy.Log().Named("dcr.storage")
	v, loaded, err := stores.LoadOrNew(dir, func() (caddy.Destructor, error) {
		db, err := storage.OpenBadger(dir, storage.Options{SyncWrites: syncWrites, Logger: logger})
		if err != nil {
			return nil, err
		}
		logger.Debug("opened database", zap.String("dir", dir), zap.Bool("sync_writes", syncWrites))
		return pooledStore{db}, nil
	})
	if err != nil {
		return nil, err
	}
	if loaded {
		logger.Debug("sharing open database", zap.String("dir", dir))
	}
	return v.(pooledStore).Badger, nil
}

// releaseStore drops one reference to the database in dir.
func releaseStore(dir string) error {
	deleted, err := stores.Delete(dir)
	if deleted {
		caddy.Log().Named("dcr.storage").Debug("closed database", zap.String("dir", dir))
	}
	return err
}
