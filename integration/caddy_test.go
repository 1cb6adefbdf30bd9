// Package integration runs a real Caddy, built from ./cmd/caddy, from the
// Caddyfiles in testdata/ and talks to it over HTTP.
package integration

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/caddy-dcr/caddy-dcr/internal/pgtest"
)

// caddyBin is the Caddy binary built by TestMain.
var caddyBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "dcr-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	caddyBin = filepath.Join(dir, "caddy")
	build := exec.Command("go", "build", "-o", caddyBin, "../cmd/caddy")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building caddy:", err)
		os.Exit(1)
	}
	code := pgtest.Main(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

// syncBuffer collects a process's output for the test to read while the
// process still writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// env is one test's environment for Caddy: its data directory and ports.
type env struct {
	t                             *testing.T
	data                          string
	port, port2, port3, adminPort int
	vars                          []string
}

// EnvBackend, set to "postgres", runs the integration tests on a
// PostgreSQL store (each test a database of its own) instead of Badger.
const EnvBackend = "DCR_TEST_BACKEND"

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, data: t.TempDir(), port: freePort(t), port2: freePort(t), port3: freePort(t), adminPort: freePort(t)}
	// The Caddyfiles say storage {$DCR_TEST_STORAGE}: a Badger directory
	// of the test's own, or a PostgreSQL database of its own.
	store := "badger " + filepath.Join(e.data, "dcr")
	if os.Getenv(EnvBackend) == "postgres" {
		store = "postgres " + pgtest.Start(t)
	}
	e.vars = append(os.Environ(),
		"DCR_TEST_STORAGE="+store,
		"HOME="+e.data, "XDG_DATA_HOME="+e.data+"/xdg-data", "XDG_CONFIG_HOME="+e.data+"/xdg-config",
		"DCR_TEST_DATA="+e.data,
		fmt.Sprintf("DCR_TEST_PORT=%d", e.port),
		fmt.Sprintf("DCR_TEST_PORT2=%d", e.port2),
		fmt.Sprintf("DCR_TEST_PORT3=%d", e.port3),
		fmt.Sprintf("DCR_TEST_ADMIN_PORT=%d", e.adminPort),
	)
	return e
}

func (e *env) url(path string) string  { return fmt.Sprintf("http://127.0.0.1:%d%s", e.port, path) }
func (e *env) url2(path string) string { return fmt.Sprintf("http://127.0.0.1:%d%s", e.port2, path) }
func (e *env) url3(path string) string { return fmt.Sprintf("http://127.0.0.1:%d%s", e.port3, path) }

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// caddyProc is a running Caddy.
type caddyProc struct {
	t    *testing.T
	cmd  *exec.Cmd
	logs *syncBuffer
	done chan error
}

// start runs Caddy on testdata/<config> and waits until the site answers.
func (e *env) start(config string) *caddyProc {
	e.t.Helper()
	return e.startWith(config, e.vars, e.url("/.dcr-readiness-probe"))
}

// startWith runs Caddy on testdata/<config> with the environment vars and
// waits until probe answers.
func (e *env) startWith(config string, vars []string, probe string) *caddyProc {
	e.t.Helper()
	p := &caddyProc{t: e.t, logs: new(syncBuffer), done: make(chan error, 1)}
	p.cmd = exec.Command(caddyBin, "run", "--config", filepath.Join("..", "testdata", config), "--adapter", "caddyfile")
	p.cmd.Env = vars
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	e.t.Cleanup(func() { p.kill() })

	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-p.done:
			e.t.Fatalf("caddy exited during start: %v\n%s", err, p.logs)
		default:
		}
		resp, err := http.Get(probe)
		if err == nil {
			resp.Body.Close()
			return p
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.t.Fatalf("caddy did not start in time:\n%s", p.logs)
	return nil
}

// stop shuts Caddy down gracefully, as a service manager does.
func (p *caddyProc) stop() {
	p.t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		p.t.Fatal("caddy did not stop on SIGTERM")
	}
}

// kill ends Caddy at once, as a crash or an OOM kill does.
func (p *caddyProc) kill() {
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Kill()
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
	}
}

// load replaces the running config with testdata/<config> through the
// admin API, as `caddy reload` does.
func (e *env) load(config string) {
	e.t.Helper()
	body, err := os.ReadFile(filepath.Join("..", "testdata", config))
	if err != nil {
		e.t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", fmt.Sprintf("http://127.0.0.1:%d/load", e.adminPort), bytes.NewReader(body))
	req.Header.Set("Content-Type", "text/caddyfile")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("reload: %d %s", resp.StatusCode, msg)
	}
	// The old server closes its idle keep-alive connections as it stops;
	// a test's next request must not race that on one of them (an EOF
	// that says nothing about dcr). TestReloadUnderLoadFailsNothing is
	// the test of requests in flight across a reload.
	http.DefaultClient.CloseIdleConnections()
	// Old and new servers accept on one shared listener, and a
	// connection the old one accepted just before its Shutdown is closed
	// unanswered (net/http drops a request read while shutting down):
	// wait until the site answers a fresh connection, so that the test's
	// next request meets the new config only.
	probe := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	for i := 0; ; i++ {
		resp, err := probe.Head(e.url("/"))
		if err == nil {
			resp.Body.Close()
			return
		}
		if i == 50 {
			e.t.Fatalf("after the reload the site does not answer: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// validate runs `caddy validate` on testdata/<config> and returns its
// output and whether it succeeded.
func (e *env) validate(config string) (string, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, caddyBin, "validate", "--config", filepath.Join("..", "testdata", config), "--adapter", "caddyfile")
	cmd.Env = e.vars
	out, err := cmd.CombinedOutput()
	return string(out), err == nil
}

// assertLogsClean fails if any of the secrets appears in Caddy's output.
func assertLogsClean(t *testing.T, logs string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(logs, s) {
			t.Errorf("a secret (%.6s…) reached Caddy's logs", s)
		}
	}
}
