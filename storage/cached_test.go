package storage_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-dcr/caddy-dcr/storage"
	"github.com/caddy-dcr/caddy-dcr/storage/badger"
)

func open(t *testing.T) storage.Store {
	t.Helper()
	s, err := badger.Open("", badger.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A revocation written through the view is answered from memory at once,
// and the view starts with what the store already holds.
func TestCachedAnswersFromMemory(t *testing.T) {
	ctx := t.Context()
	until := time.Now().Add(time.Hour).Unix()
	db := open(t)
	if err := db.RevokeAccessToken(ctx, "before", until); err != nil {
		t.Fatal(err)
	}
	c, err := storage.NewCached(ctx, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.RevokeFamily(ctx, "fam", until); err != nil {
		t.Fatal(err)
	}
	for _, q := range []struct {
		jti, family string
		want        bool
	}{{"before", "", true}, {"x", "fam", true}, {"x", "other", false}} {
		if got, err := c.Revoked(ctx, q.jti, "client", q.family, ""); err != nil || got != q.want {
			t.Errorf("Revoked(%q, family %q) = %v %v", q.jti, q.family, got, err)
		}
	}
}

// watching is a shared store whose other processes revoke a token.
type watching struct {
	storage.Store
	resyncs chan struct{}
}

func (w *watching) WatchRevocations(ctx context.Context, fn func(storage.Revocation), resync func()) error {
	resync()
	w.resyncs <- struct{}{}
	fn(storage.Revocation{Kind: storage.RevokedToken, Key: "elsewhere", Until: time.Now().Add(time.Hour).Unix()})
	<-ctx.Done()
	return ctx.Err()
}

// Another process's revocation reaches the view through the backend's
// watch, and Close waits for the watch to end.
func TestCachedFollowsASharedStore(t *testing.T) {
	w := &watching{Store: open(t), resyncs: make(chan struct{}, 1)}
	c, err := storage.NewCached(t.Context(), w, nil)
	if err != nil {
		t.Fatal(err)
	}
	<-w.resyncs
	deadline := time.Now().Add(time.Second)
	for {
		if got, _ := c.Revoked(t.Context(), "elsewhere", "", "", ""); got {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a revocation made elsewhere never reached the view")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}

// failing is a shared store whose watch cannot connect.
type failing struct{ storage.Store }

func (failing) WatchRevocations(ctx context.Context, fn func(storage.Revocation), resync func()) error {
	return errors.New("connection refused")
}

// The view of a shared store is current only while its watch is up; a
// store of this process alone always is.
func TestCachedCurrent(t *testing.T) {
	alone, err := storage.NewCached(t.Context(), open(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer alone.Close()
	if !alone.Current() {
		t.Fatal("a store of one process is not current")
	}
	down, err := storage.NewCached(t.Context(), failing{open(t)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer down.Close()
	time.Sleep(50 * time.Millisecond)
	if down.Current() {
		t.Fatal("a shared store whose watch is down is current")
	}
	w := &watching{Store: open(t), resyncs: make(chan struct{}, 1)}
	up, err := storage.NewCached(t.Context(), w, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	<-w.resyncs
	if !up.Current() {
		t.Fatal("a shared store whose watch is up is not current")
	}
}

// flaky is a shared store whose watch fails its first attempts, as a
// connection lost to a restarting database does, then works.
type flaky struct {
	storage.Store
	attempts atomic.Int32
	fail     int32
}

func (f *flaky) WatchRevocations(ctx context.Context, fn func(storage.Revocation), resync func()) error {
	if f.attempts.Add(1) <= f.fail {
		return errors.New("connection refused")
	}
	resync()
	<-ctx.Done()
	return ctx.Err()
}

// After a lost watch the view reconnects, reloads everything (catching
// what was revoked while it was down) and is current again.
func TestCachedReconnectsAndReloads(t *testing.T) {
	ctx := t.Context()
	f := &flaky{Store: open(t), fail: 2}
	c, err := storage.NewCached(ctx, f, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Revoked while the watch is down: only a reload can see it.
	if err := f.Store.RevokeAccessToken(ctx, "missed", time.Now().Add(time.Hour).Unix()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !c.Current() {
		if time.Now().After(deadline) {
			t.Fatalf("not current after %d attempts", f.attempts.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if revoked, _ := c.Revoked(ctx, "missed", "", "", ""); !revoked {
		t.Fatal("a revocation made while the watch was down was not reloaded")
	}
	if n := f.attempts.Load(); n < 3 {
		t.Fatalf("%d attempts, want the two failures and a success", n)
	}
}
