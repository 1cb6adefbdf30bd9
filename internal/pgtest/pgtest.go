// Package pgtest gives tests a PostgreSQL database of their own.
//
// Start returns the DSN of a new, empty database. The database lives in
// the server that DCR_TEST_POSTGRES_DSN names, when it is set, or else in
// a throwaway cluster that the test binary starts from the PostgreSQL
// installed on this machine (initdb and postgres on PATH or under
// /usr/lib/postgresql/*/bin), once, and shares among its tests. Where
// neither is available the test is skipped, or fails when
// DCR_REQUIRE_POSTGRES=1 (as in CI).
//
// A package that uses Start should stop the shared cluster at its end:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
//
// Without it the cluster still dies with the test binary, but its
// directory stays in the temporary directory.
package pgtest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Environment variables that steer the tests.
const (
	// EnvDSN names a PostgreSQL server in which Start creates each
	// test's database, instead of starting a cluster.
	EnvDSN = "DCR_TEST_POSTGRES_DSN"
	// EnvRequire, set to 1, makes a test fail where it would be skipped
	// for want of PostgreSQL.
	EnvRequire = "DCR_REQUIRE_POSTGRES"
)

const howToEnable = "install PostgreSQL (Debian: apt-get install postgresql) or set " + EnvDSN +
	" to a server where the tests may create databases"

// shared is the cluster Start uses, started by the first test that asks.
var shared struct {
	once    sync.Once
	cluster *Cluster
	err     error
}

// Start returns the DSN of a new, empty database for t. A database made
// in the server DCR_TEST_POSTGRES_DSN names is dropped when t ends.
func Start(t testing.TB) string {
	t.Helper()
	if dsn := os.Getenv(EnvDSN); dsn != "" {
		return createDatabase(t, dsn, false)
	}
	shared.once.Do(func() {
		shared.cluster, shared.err = start()
	})
	if shared.err != nil {
		unavailable(t, shared.err)
	}
	return shared.cluster.NewDatabase(t)
}

// Main runs the tests and then stops the cluster Start shared among them.
// It returns m.Run's exit code.
func Main(m *testing.M) int {
	code := m.Run()
	if shared.cluster != nil {
		if err := shared.cluster.destroy(); err != nil {
			fmt.Fprintln(os.Stderr, "pgtest:", err)
		}
	}
	return code
}

// Cluster is a PostgreSQL server in a temporary directory, run by this
// process and reachable on 127.0.0.1.
type Cluster struct {
	bin   string // the directory of initdb and postgres
	dir   string // the temporary directory: data/, the socket, the log
	port  int
	owner *syscall.Credential // the OS user that runs PostgreSQL, when we are root

	mu   sync.Mutex
	proc *exec.Cmd
	done chan struct{} // closed when proc exited
}

// StartCluster starts a cluster of t's own, which t may Stop and Start
// again, and removes it when t ends. It is for tests that take the server
// away; other tests share one with Start.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	c, err := start()
	if err != nil {
		unavailable(t, err)
	}
	t.Cleanup(func() {
		if err := c.destroy(); err != nil {
			t.Error(err)
		}
	})
	return c
}

// unavailable skips t, or fails it when PostgreSQL is required.
func unavailable(t testing.TB, err error) {
	t.Helper()
	if os.Getenv(EnvRequire) == "1" {
		t.Fatalf("PostgreSQL is required (%s=1): %v", EnvRequire, err)
		return
	}
	t.Skipf("PostgreSQL tests skipped: %v; to run them, %s", err, howToEnable)
}

// errNotInstalled is the cause given when no PostgreSQL binaries exist.
var errNotInstalled = errors.New("no initdb and postgres on PATH or under /usr/lib/postgresql/*/bin")

// findBinaries returns the directory holding initdb and postgres: initdb's
// on PATH (Debian links only the client programs into /usr/bin, so
// symlinks are followed), else the newest /usr/lib/postgresql/<v>/bin.
func findBinaries() (string, error) {
	var dirs []string
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			dirs = append(dirs, filepath.Dir(real))
		}
		dirs = append(dirs, filepath.Dir(p))
	}
	versions, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(versions, func(a, b string) int { return versionOf(b) - versionOf(a) })
	dirs = append(dirs, versions...)
	for _, d := range dirs {
		if isExecutable(filepath.Join(d, "initdb")) && isExecutable(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	return "", errNotInstalled
}

func versionOf(bin string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(bin)))
	return v
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// start makes and starts a new cluster.
func start() (*Cluster, error) {
	bin, err := findBinaries()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{bin: bin, dir: dir}
	if err := c.init(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	// Another process may take the free port before the server binds
	// it; try a few.
	for range 3 {
		if c.port, err = freePort(); err != nil {
			break
		}
		if err = c.Start(); err == nil {
			return c, nil
		}
	}
	_ = os.RemoveAll(dir)
	return nil, err
}

// init runs initdb. PostgreSQL refuses to run as root, so as root the
// cluster belongs to the postgres user, as Debian's does.
func (c *Cluster) init() error {
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return fmt.Errorf("running as root, and there is no postgres user to run PostgreSQL as: %w", err)
		}
		uid, _ := strconv.ParseUint(u.Uid, 10, 32)
		gid, _ := strconv.ParseUint(u.Gid, 10, 32)
		c.owner = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(c.dir, int(uid), int(gid)); err != nil {
			return err
		}
	}
	cmd := c.command("initdb", "-D", c.dataDir(), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-locale", "--no-sync")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %w\n%s", err, out)
	}
	return nil
}

func (c *Cluster) dataDir() string { return filepath.Join(c.dir, "data") }
func (c *Cluster) logFile() string { return filepath.Join(c.dir, "postgres.log") }

// command runs one of the PostgreSQL programs as the cluster's owner.
func (c *Cluster) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(c.bin, name), args...)
	cmd.Dir = c.dir
	// The server dies with the test binary, even one killed before its
	// cleanup ran.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.owner, Pdeathsig: syscall.SIGKILL}
	return cmd
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Start starts the server (again, after Stop) and waits until it accepts
// connections.
func (c *Cluster) Start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc != nil {
		return errors.New("pgtest: cluster already running")
	}
	log, err := os.OpenFile(c.logFile(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o666)
	if err != nil {
		return err
	}
	defer log.Close()
	if c.owner != nil {
		_ = log.Chown(int(c.owner.Uid), int(c.owner.Gid))
	}
	// A test cluster need not survive a power loss, only a crash of
	// PostgreSQL (Stop): no fsync, but every commit reaches the kernel.
	cmd := c.command("postgres", "-D", c.dataDir(), "-p", strconv.Itoa(c.port), "-k", c.dir,
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
		"-c", "full_page_writes=off", "-c", "max_connections=300")
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting postgres: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	c.proc, c.done = cmd, done

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		conn, err := pgx.Connect(ctx, c.dsn("postgres"))
		if err == nil {
			_ = conn.Close(ctx)
			return nil
		}
		select {
		case <-done:
			c.proc = nil
			return fmt.Errorf("postgres exited while starting: %s", c.logTail())
		case <-ctx.Done():
			c.stopLocked()
			return fmt.Errorf("postgres did not accept connections within 30 s: %w\n%s", err, c.logTail())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Stop shuts the server down at once, as a crash would (pg_ctl stop -m
// immediate): clients lose their connections.
func (c *Cluster) Stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopLocked()
}

func (c *Cluster) stopLocked() {
	if c.proc == nil {
		return
	}
	_ = c.proc.Process.Signal(syscall.SIGQUIT) // the immediate shutdown
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		_ = c.proc.Process.Kill()
		<-c.done
	}
	c.proc = nil
}

// destroy stops the server and removes its directory.
func (c *Cluster) destroy() error {
	c.Stop()
	return os.RemoveAll(c.dir)
}

func (c *Cluster) logTail() string {
	b, _ := os.ReadFile(c.logFile())
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// dsn returns the DSN of a database in the cluster.
func (c *Cluster) dsn(database string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, database)
}

// NewDatabase creates an empty database in the cluster for t and returns
// its DSN.
func (c *Cluster) NewDatabase(t testing.TB) string {
	t.Helper()
	return createDatabase(t, c.dsn("postgres"), true)
}

// createDatabase creates a database with a random name in the server that
// admin names and returns the DSN of the new database. In a throwaway
// cluster (local), where nothing is synced to disk, copying the template's
// files is twice as fast as PostgreSQL 15's default of logging them, and
// the database is left for the cluster's removal to take.
func createDatabase(t testing.TB, admin string, local bool) string {
	t.Helper()
	name := "dcr_test_" + strings.ToLower(rand.Text())
	dsn, err := withDatabase(admin, name)
	if err != nil {
		t.Fatalf("%s: %v", EnvDSN, err)
	}
	run := func(ctx context.Context, sql func(version int) string) error {
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		major, _, _ := strings.Cut(conn.PgConn().ParameterStatus("server_version"), ".")
		version, _ := strconv.Atoi(major)
		_, err = conn.Exec(ctx, sql(version))
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = run(ctx, func(version int) string {
		if local && version >= 15 {
			return "CREATE DATABASE " + name + " STRATEGY FILE_COPY"
		}
		return "CREATE DATABASE " + name
	})
	if err != nil {
		t.Fatalf("creating a test database: %v", err)
	}
	if local {
		return dsn
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		// WITH (FORCE) is PostgreSQL 13's; a test that stopped the server
		// has nothing left to drop.
		_ = run(ctx, func(int) string { return "DROP DATABASE IF EXISTS " + name + " WITH (FORCE)" })
	})
	return dsn
}

// withDatabase returns dsn (a URL or keyword/value string) naming database
// instead.
func withDatabase(dsn, database string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", fmt.Errorf("parsing the DSN: %w", err)
		}
		u.Path = "/" + database
		u.RawPath = ""
		return u.String(), nil
	}
	return dsn + " dbname=" + database, nil
}
