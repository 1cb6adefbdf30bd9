package postgres

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"

	"github.com/caddy-dcr/caddy-dcr/storage"
)

func init() {
	caddy.RegisterModule(Module{})
}

// Module is the dcr.storage.postgres guest module: caddy-dcr's records in
// a PostgreSQL (13 or later) database, which several Caddy instances may
// share; a revocation made by one reaches the others' token gates through
// LISTEN/NOTIFY. Every handler that names the same DSN shares one
// connection pool, across sites and config reloads. The schema (tables
// named dcr_*) is created and migrated when the store opens, so the
// database user needs to create tables in the schema it uses (on
// PostgreSQL 15 and later, public allows that only to the database's
// owner).
type Module struct {
	// DSN names the database, as a postgres:// URL or a keyword/value
	// string (libpq's syntax; PG* environment variables and ~/.pgpass
	// apply). Placeholders known at load time are replaced, so
	// "{env.DCR_DATABASE_URL}" keeps the password out of the config.
	// Required.
	DSN string `json:"dsn"`
	// MaxConns bounds the connection pool. Handlers sharing a DSN must
	// agree on it. Default: the greater of 4 and the number of CPUs.
	MaxConns int32 `json:"max_conns,omitempty"`

	storage.Holder
}

// shared are what handlers sharing a DSN must agree on.
type shared struct{ MaxConns int32 }

// CaddyModule returns the Caddy module information.
func (Module) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "dcr.storage.postgres",
		New: func() caddy.Module { return new(Module) },
	}
}

// Provision connects to the database, or shares the pool already open for
// the same DSN.
func (m *Module) Provision(ctx caddy.Context) error {
	// The store outlives this config (it is shared across reloads), so
	// it logs to Caddy's default logger, not this config's, which is
	// closed when the config is unloaded.
	log := caddy.Log().Named("dcr.storage.postgres")
	dsn := caddy.NewReplacer().ReplaceKnown(m.DSN, "")
	if dsn == "" {
		return errors.New("postgres storage: dsn is required (and was empty after replacing placeholders)")
	}
	if m.MaxConns < 0 {
		return fmt.Errorf("postgres storage: max_conns must not be negative, got %d", m.MaxConns)
	}
	key, cfg, err := poolKey(dsn)
	if err != nil {
		return err
	}
	log.Info("using PostgreSQL storage", zap.String("host", cfg.Host), zap.Uint16("port", cfg.Port), zap.String("database", cfg.Database))
	return m.Hold(ctx, key, shared{m.MaxConns}, func() (storage.Store, error) {
		return Open(ctx, dsn, Options{MaxConns: m.MaxConns, Logger: log})
	}, log)
}

// poolKey is the key of dsn's store in the pool, which the pool logs:
// "postgres:user@host:port/database#fingerprint", never the password.
// The brief "postgres:"+dsn would log it.
func poolKey(dsn string) (string, *pgconn.Config, error) {
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return "", nil, fmt.Errorf("postgres storage: %w", err) // pgconn redacts the password
	}
	name := cfg.User + "@" + cfg.Host + ":" + strconv.Itoa(int(cfg.Port)) + "/" + cfg.Database
	return "postgres:" + name + "#" + fingerprint(dsn), cfg, nil
}

// fingerprintKey is random for each process, so that the fingerprints in
// the pool's keys (which are logged) tell DSNs apart but cannot be used
// to test guesses of a password.
var fingerprintKey = func() []byte {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return b
}()

// fingerprint tells apart DSNs that differ in anything, the password
// included, so that a reload that changes the password opens a new pool
// rather than keeping the old one's.
func fingerprint(dsn string) string {
	h := sha256.New()
	h.Write(fingerprintKey)
	h.Write([]byte(dsn))
	return hex.EncodeToString(h.Sum(nil)[:6])
}

// UnmarshalCaddyfile sets up the module from Caddyfile tokens. Syntax:
//
//	storage postgres <dsn> {
//	    max_conns <n>
//	}
func (m *Module) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the module name
	if !d.NextArg() {
		return d.ArgErr()
	}
	m.DSN = d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "max_conns":
			if m.MaxConns != 0 {
				return d.Errf("max_conns already specified: %d", m.MaxConns)
			}
			if !d.NextArg() {
				return d.ArgErr()
			}
			n, err := strconv.ParseInt(d.Val(), 10, 32)
			if err != nil || n <= 0 {
				return d.Errf("max_conns must be a positive number, got %q", d.Val())
			}
			m.MaxConns = int32(n)
			if d.NextArg() {
				return d.ArgErr()
			}
		default:
			return d.Errf("unrecognized postgres storage option %q", d.Val())
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
