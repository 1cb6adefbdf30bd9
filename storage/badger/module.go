package badger

import (
	"fmt"
	"path/filepath"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/caddy-dcr/caddy-dcr/storage"
)

func init() {
	caddy.RegisterModule(Module{})
}

// Module is the dcr.storage.badger guest module: caddy-dcr's records in an
// embedded Badger database. Every handler that names the same directory
// shares one open database, across sites and config reloads; one process
// at a time may have it open.
type Module struct {
	// Dir is the database directory, created with mode 0700. Placeholders
	// known at load time ({env.*}) are replaced. Default: "dcr" under
	// Caddy's data directory.
	Dir string `json:"dir,omitempty"`
	// SyncWrites makes every write wait for the disk (fsync), so that a
	// power loss cannot lose an answered registration. Handlers sharing a
	// directory must agree on it. Default: false.
	SyncWrites bool `json:"sync_writes,omitempty"`

	key   string // the pool key once Provision holds the store
	store *storage.Cached
	log   *zap.Logger
}

// shared are what handlers sharing a directory must agree on.
type shared struct{ SyncWrites bool }

// CaddyModule returns the Caddy module information.
func (Module) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "dcr.storage.badger",
		New: func() caddy.Module { return new(Module) },
	}
}

// Provision opens the database, or shares the one already open in Dir.
func (m *Module) Provision(ctx caddy.Context) error {
	m.log = ctx.Logger()
	dir := caddy.NewReplacer().ReplaceKnown(m.Dir, "")
	if dir == "" {
		dir = filepath.Join(caddy.AppDataDir(), "dcr")
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("storage directory %s: %w", m.Dir, err)
	}
	key := "badger:" + dir
	m.store, err = storage.Share(ctx, key, shared{m.SyncWrites}, func() (storage.Store, error) {
		return Open(dir, Options{SyncWrites: m.SyncWrites, Logger: m.log})
	}, m.log)
	if err != nil {
		return err
	}
	m.key = key
	return nil
}

// Store returns the open store.
func (m *Module) Store() *storage.Cached { return m.store }

// Cleanup lets go of the database if Provision took it; the last handler
// to let go closes it. It is safe after a Provision that failed part way.
func (m *Module) Cleanup() error {
	if m.key == "" {
		return nil
	}
	key := m.key
	m.key = ""
	return storage.Release(key, m.log)
}

// UnmarshalCaddyfile sets up the module from Caddyfile tokens. Syntax:
//
//	storage badger [<dir>] {
//	    sync_writes
//	}
func (m *Module) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the module name
	if d.NextArg() {
		m.Dir = d.Val()
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "sync_writes":
			if d.NextArg() {
				return d.ArgErr()
			}
			if m.SyncWrites {
				return d.Err("sync_writes already specified")
			}
			m.SyncWrites = true
		default:
			return d.Errf("unrecognized badger storage option %q", d.Val())
		}
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner     = (*Module)(nil)
	_ caddy.CleanerUpper    = (*Module)(nil)
	_ caddyfile.Unmarshaler = (*Module)(nil)
	_ storage.Backend       = (*Module)(nil)
)
