package badger

import (
	"fmt"
	"path/filepath"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

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

	storage.Holder
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
	// The store outlives this config (it is shared across reloads), so
	// it logs to Caddy's default logger, not this config's, which is
	// closed when the config is unloaded.
	log := caddy.Log().Named("dcr.storage.badger")
	dir := caddy.NewReplacer().ReplaceKnown(m.Dir, "")
	if dir == "" {
		dir = filepath.Join(caddy.AppDataDir(), "dcr")
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("storage directory %s: %w", m.Dir, err)
	}
	return m.Hold(ctx, "badger:"+dir, shared{m.SyncWrites}, func() (storage.Store, error) {
		return Open(dir, Options{SyncWrites: m.SyncWrites, Logger: log})
	}, log)
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
