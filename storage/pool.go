package storage

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
)

// Backend is what a dcr.storage guest module provides once provisioned:
// the store it configures, opened or shared. The module's Cleanup lets go
// of it.
type Backend interface {
	Store() *Cached
}

// stores shares one open store among every handler that configures the
// same one (the same Badger directory, the same PostgreSQL DSN), across
// config reloads: Caddy provisions the new config before it cleans up the
// old one, and Badger holds a lock on its directory, so each handler
// opening its own would fail on every reload; a pool of database
// connections per handler would be waste.
var stores = caddy.NewUsagePool()

type pooled struct {
	*Cached
	options any
}

// Destruct closes the store once its last user let go.
func (p pooled) Destruct() error {
	names.Delete(p.Cached)
	return p.Close()
}

// names holds the key of each open store, for NameOf.
var names sync.Map // *Cached -> string

// NameOf returns the key under which s was shared ("badger:<dir>",
// "postgres:<user>@<host>:<port>/<database>#<fingerprint>"; it names no
// secret), or "" for a store that Share did not open. The admin API tells
// stores apart by it.
func NameOf(s Store) string {
	name, _ := names.Load(s)
	n, _ := name.(string)
	return n
}

// Share returns the open store under key (a backend's name and its
// address, as "badger:/var/lib/caddy/dcr"), opening it with open and
// loading its revocations when no handler has it open, and takes a
// reference that Release drops. options are the settings that must agree
// among the handlers sharing it: a handler that names the same store with
// other options is refused rather than silently given the first one's.
func Share(ctx context.Context, key string, options any, open func() (Store, error), log *zap.Logger) (*Cached, error) {
	v, loaded, err := stores.LoadOrNew(key, func() (caddy.Destructor, error) {
		s, err := open()
		if err != nil {
			return nil, err
		}
		s = Observe(s)
		c, err := NewCached(ctx, s, log)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("loading revocations: %w", err), s.Close())
		}
		log.Debug("opened store", zap.String("store", key))
		names.Store(c, key)
		return pooled{c, options}, nil
	})
	if err != nil {
		return nil, err
	}
	p := v.(pooled)
	if loaded && !reflect.DeepEqual(p.options, options) {
		_, _ = stores.Delete(key)
		return nil, fmt.Errorf("%s is already open with other options (%+v, here %+v): give every handler that names it the same ones", key, p.options, options)
	}
	return p.Cached, nil
}

// Release drops one reference taken by Share; the last one closes the
// store.
func Release(key string, log *zap.Logger) error {
	deleted, err := stores.Delete(key)
	if deleted {
		log.Debug("closed store", zap.String("store", key))
	}
	return err
}

// errNotShared is Acquire's answer for a store not open through Share.
var errNotShared = errors.New("the store is not open through Share")

// Acquire takes one more reference to s, a store Share opened and that is
// still open, for a user that must keep it open until it is done with it
// (a background job whose end is not tied to a module's Cleanup: Caddy
// cleans a config's modules up in no set order). It returns the key that
// Release takes to drop the reference, or "" and no error for a store
// that Share did not open: its owner closes it.
func Acquire(s Store) (string, error) {
	key := NameOf(s)
	if key == "" {
		return "", nil
	}
	v, _, err := stores.LoadOrNew(key, func() (caddy.Destructor, error) { return nil, errNotShared })
	if err != nil {
		return "", fmt.Errorf("%s was closed: %w", key, err)
	}
	if v.(pooled).Cached != s {
		_, _ = stores.Delete(key)
		return "", fmt.Errorf("%s was closed and opened again: %w", key, errNotShared)
	}
	return key, nil
}

// References reports how many users hold the store under key (0 when it
// is not open).
func References(key string) int {
	n, _ := stores.References(key)
	return n
}

// Holder is what a dcr.storage module embeds: the reference to a shared
// store that it takes in Provision (Hold) and lets go of in Cleanup, and
// the Backend method that hands the store to the dcr handler.
type Holder struct {
	key   string // the pool key once Hold took the store
	store *Cached
	log   *zap.Logger
}

// Hold shares the store under key (see Share) and keeps the reference
// until Cleanup.
func (h *Holder) Hold(ctx context.Context, key string, options any, open func() (Store, error), log *zap.Logger) error {
	c, err := Share(ctx, key, options, open, log)
	if err != nil {
		return err
	}
	h.key, h.store, h.log = key, c, log
	return nil
}

// Store returns the store Hold took.
func (h *Holder) Store() *Cached { return h.store }

// Cleanup lets go of the store if Hold took it; the last user to let go
// closes it. It is safe after a Provision that failed part way, and more
// than once.
func (h *Holder) Cleanup() error {
	if h.key == "" {
		return nil
	}
	key := h.key
	h.key = ""
	return Release(key, h.log)
}
