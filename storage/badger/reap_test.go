package badger

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	bdb "github.com/dgraph-io/badger/v4"

	"github.com/caddy-dcr/caddy-dcr/storage"
)

// A deletion cut off between its commit and its cleanup (a crash, a
// failed batch) leaves the client's grants behind; the maintenance sweep
// removes them, and keeps the grants of metadata-document clients, which
// are never stored.
func TestSweepOrphansRemovesGrantsOfDeletedClients(t *testing.T) {
	ctx := t.Context()
	s := openMem(t)
	defer s.Close()
	must(t, s.CreateClient(ctx, newClient("gone")))
	must(t, s.CreateClient(ctx, newClient("kept")))
	for _, id := range []string{"gone", "kept", "https://app.example/client.json"} {
		_, err := s.RecordGrant(ctx, &storage.Grant{ID: "g-" + id, Subject: "alice", ClientID: id, Scope: "read"})
		must(t, err)
	}
	// DeleteClient's commit without its cleanup.
	must(t, s.update(ctx, func(txn *bdb.Txn) error {
		c, err := getClient(txn, "gone")
		if err != nil {
			return err
		}
		return deleteClient(txn, c, time.Now().Unix()+60)
	}))
	if _, err := s.Grant(ctx, "alice", "gone"); err != nil {
		t.Fatalf("the orphan is not there to sweep: %v", err)
	}

	must(t, s.sweepOrphans(ctx))
	if _, err := s.Grant(ctx, "alice", "gone"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("orphaned grant left: %v", err)
	}
	for _, id := range []string{"kept", "https://app.example/client.json"} {
		if _, err := s.Grant(ctx, "alice", id); err != nil {
			t.Errorf("grant to %s: %v", id, err)
		}
	}
	if keys := indexKeys(t, s, prefixClientGrants+"gone/"); len(keys) != 0 {
		t.Errorf("index entries left: %v", keys)
	}
}

func indexKeys(t *testing.T, s *Store, prefix string) (keys []string) {
	t.Helper()
	must(t, s.db.View(func(txn *bdb.Txn) error {
		var err error
		keys, err = keysUnder(txn, prefix, 100)
		return err
	}))
	return keys
}

// ReapClients takes the Limit oldest candidates; a client kept for its
// grant does not take the place of one that can go.
func TestReapClientsTakesTheOldestReapable(t *testing.T) {
	ctx := t.Context()
	s := openMem(t)
	defer s.Close()
	// Registered in an order unlike their ids, all idle.
	const n = 40
	for i := range n {
		c := newClient(fmt.Sprintf("c%02d", i))
		c.IssuedAt = 1000 + int64((i*7)%n)
		must(t, s.CreateClient(ctx, c))
	}
	// The oldest has a grant, so the idle rule keeps it.
	_, err := s.RecordGrant(ctx, &storage.Grant{ID: "g", Subject: "alice", ClientID: "c00", Scope: "read"})
	must(t, err)
	p := storage.ReapPolicy{IdleBefore: 5000, Now: 5000, Until: 6000, Limit: 5}
	reaped, err := s.ReapClients(ctx, p)
	must(t, err)
	got := storage.IDs(reaped)
	// IssuedAt 1001..1005 are i = 23, 6, 29, 12, 35.
	if want := []string{"c23", "c06", "c29", "c12", "c35"}; !slices.Equal(got, want) {
		t.Fatalf("reaped %v, want %v", got, want)
	}
	reaped, err = s.ReapClients(ctx, storage.ReapPolicy{IdleBefore: 5000, Now: 5000, Until: 6000, Limit: 100})
	must(t, err)
	got = storage.IDs(reaped)
	if len(got) != n-6 || slices.Contains(got, "c00") {
		t.Fatalf("second pass reaped %d: %v", len(got), got)
	}
}

// A store whose ci/ index does not match its clients (written before the
// index, or by an earlier version after it) gets it rebuilt when it is
// opened, a record that does not decode notwithstanding, and reaping then
// finds every client.
func TestOpenIndexesClientsByIssued(t *testing.T) {
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "db")
	s, err := Open(dir, Options{})
	must(t, err)
	for i := range 3 {
		c := newClient(fmt.Sprintf("old-%d", i))
		c.IssuedAt = int64(1000 + i)
		must(t, s.CreateClient(ctx, c))
	}
	// As an earlier version left it: no index entry for old-0 and old-1
	// (written before the index, or by a rolled-back version), an entry
	// for a client it deleted, and a record that does not decode.
	must(t, s.db.Update(func(txn *bdb.Txn) error {
		for _, k := range indexKeys(t, s, prefixClientIssued) {
			if err := txn.Delete([]byte(k)); err != nil {
				return err
			}
		}
		if err := txn.Set(issuedKey(storage.ClientPosition{IssuedAt: 999, ID: "gone"}), nil); err != nil {
			return err
		}
		if err := txn.Set(issuedKey(storage.ClientPosition{IssuedAt: 1002, ID: "old-2"}), nil); err != nil {
			return err
		}
		return txn.Set(clientKey("bad"), []byte{clientRecordV1, 0xff})
	}))
	must(t, s.Close())

	s, err = Open(dir, Options{})
	must(t, err)
	defer s.Close()
	if n := len(indexKeys(t, s, prefixClientIssued)); n != 3 {
		t.Fatalf("%d index entries after reopening, want 3", n)
	}
	reaped, err := s.ReapClients(ctx, storage.ReapPolicy{UnusedBefore: 5000, Now: 5000, Until: 6000, Limit: 10})
	must(t, err)
	if got := storage.IDs(reaped); !slices.Equal(got, []string{"old-0", "old-1", "old-2"}) {
		t.Fatalf("reaped %v", got)
	}
	if n := len(indexKeys(t, s, prefixClientIssued)); n != 0 {
		t.Fatalf("%d index entries left by reaping", n)
	}
}
