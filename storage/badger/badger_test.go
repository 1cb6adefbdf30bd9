package badger

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/caddy-dcr/caddy-dcr/storage"
	"github.com/caddy-dcr/caddy-dcr/storage/storetest"
)

var newClient = storetest.NewClient

func openMem(t testing.TB) *Store {
	t.Helper()
	s, err := Open("", Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformanceInMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storage.Store { return openMem(t) })
}

func TestConformanceOnDisk(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storage.Store {
		s, err := Open(filepath.Join(t.TempDir(), "db"), Options{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestReopenFromDisk(t *testing.T) {
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "dcr")
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateClient(ctx, newClient("durable")); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeAccessToken(ctx, "jti", time.Now().Add(time.Hour).Unix()); err != nil {
		t.Fatal(err)
	}
	// A second open of the same directory fails with a hint, not a hang.
	if _, err := Open(dir, Options{}); err == nil {
		t.Fatal("second open of a locked directory succeeded")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	info, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o700 {
		t.Fatalf("storage directory mode %o, want 700", perm)
	}

	s, err = Open(dir, Options{SyncWrites: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, err := s.ClientByRegistrationToken(ctx, storage.HashSecret("rat-durable"))
	if err != nil || c.ID != "durable" {
		t.Fatalf("after reopen: %v %v", c, err)
	}
	if ok, err := s.Revoked(ctx, "jti", "", "", ""); err != nil || !ok {
		t.Fatalf("revocation lost on reopen: %v %v", ok, err)
	}
	if _, err := s.Client(ctx, "missing"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatal(err)
	}
}
