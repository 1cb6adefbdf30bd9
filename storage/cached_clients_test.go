package storage

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// countingStore is a store of one client that counts the reads.
type countingStore struct {
	Store
	reads  int
	client *Client
}

func (s *countingStore) Client(_ context.Context, id string) (*Client, error) {
	s.reads++
	if s.client == nil || s.client.ID != id {
		return nil, ErrNotFound
	}
	c := *s.client
	return &c, nil
}

func (s *countingStore) ReplaceClient(_ context.Context, c *Client, _ []byte) error {
	s.client = c
	return nil
}

// The token endpoint's client reads are reused for clientTTL: within it a
// change made by another process is not seen, after it it is; this
// process's own changes are seen at once, and misses are remembered like
// hits.
func TestCachedClients(t *testing.T) {
	ctx := t.Context()
	now := time.Unix(1000, 0)
	backend := &countingStore{client: &Client{ID: "a", Metadata: Metadata{ClientName: "one"}}}
	c := &Cached{Store: backend, now: func() time.Time { return now }, clients: map[string]cachedClient{}}

	for range 3 {
		if got, err := c.Client(ctx, "a"); err != nil || got.Metadata.ClientName != "one" {
			t.Fatalf("read: %v %v", got, err)
		}
		if _, err := c.Client(ctx, "missing"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("miss: %v", err)
		}
	}
	if backend.reads != 2 {
		t.Fatalf("%d backend reads for 3 reads of a client and 3 of a miss, want 2", backend.reads)
	}
	// Changed by another process: seen once clientTTL has passed.
	backend.client = &Client{ID: "a", Metadata: Metadata{ClientName: "two"}}
	if got, _ := c.Client(ctx, "a"); got.Metadata.ClientName != "one" {
		t.Fatal("a read within the TTL went to the backend")
	}
	now = now.Add(clientTTL)
	if got, _ := c.Client(ctx, "a"); got.Metadata.ClientName != "two" {
		t.Fatalf("a change elsewhere not seen after %s", clientTTL)
	}
	// Changed here: seen at once.
	if err := c.ReplaceClient(ctx, &Client{ID: "a", Metadata: Metadata{ClientName: "three"}}, nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.Client(ctx, "a"); got.Metadata.ClientName != "three" {
		t.Fatal("this process's own change not seen at once")
	}
	// A copy is returned: a caller changing it changes nothing kept.
	got, _ := c.Client(ctx, "a")
	got.Metadata.ClientName = "mutated"
	if again, _ := c.Client(ctx, "a"); again.Metadata.ClientName != "three" {
		t.Fatal("the cached client was changed through a returned copy")
	}
	// A deletion (its revocation, here or from elsewhere) drops it.
	c.revoked = map[RevocationKind]*sync.Map{RevokedClient: new(sync.Map)}
	backend.client = nil
	c.add(Revocation{RevokedClient, "a", 2000})
	if _, err := c.Client(ctx, "a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a deleted client still read from the cache: %v", err)
	}
}

// failingRevoker commits nothing it is asked and reports an error, as a
// store whose revocation committed but whose cleanup failed would.
type failingRevoker struct{ Store }

func (failingRevoker) RevokeFamily(context.Context, string, int64) error {
	return errors.New("cleanup failed")
}

// A revocation whose store call reports an error is refused by the gate
// all the same: the view learns of it before the store is asked.
func TestCachedRevocationStandsWhenTheStoreErrs(t *testing.T) {
	c := &Cached{Store: failingRevoker{}, now: time.Now, clients: map[string]cachedClient{},
		revoked: map[RevocationKind]*sync.Map{RevokedFamily: new(sync.Map)}}
	if err := c.RevokeFamily(t.Context(), "fam", time.Now().Add(time.Hour).Unix()); err == nil {
		t.Fatal("the error was lost")
	}
	if revoked, _ := c.Revoked(t.Context(), "jti", "client", "fam", ""); !revoked {
		t.Fatal("a revocation whose store call erred is not refused")
	}
}

// slowSnapshot answers DisabledClients with what it held when asked, but
// only once released: a resync's snapshot that a change overtakes.
type slowSnapshot struct {
	Store
	asked, release chan struct{}
}

func (s slowSnapshot) Revocations(context.Context) ([]Revocation, error) { return nil, nil }

func (s slowSnapshot) DisabledClients(context.Context) ([]string, error) {
	s.asked <- struct{}{}
	<-s.release
	return nil, nil // read before the disable committed
}

// A client disabled while a resync's snapshot is on its way stays
// disabled: the older snapshot does not undo the newer change.
func TestResyncDoesNotUndoANewerDisable(t *testing.T) {
	store := slowSnapshot{asked: make(chan struct{}), release: make(chan struct{})}
	c := &Cached{Store: store, now: time.Now, clients: map[string]cachedClient{}, changed: map[string]uint64{},
		revoked: map[RevocationKind]*sync.Map{RevokedClient: new(sync.Map)}}
	done := make(chan error)
	go func() { done <- c.resync(t.Context()) }()
	<-store.asked
	c.setDisabled("app", true)
	close(store.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if refused, _ := c.Revoked(t.Context(), "jti", "app", "", ""); !refused {
		t.Fatal("a resync's older snapshot re-enabled a client disabled meanwhile")
	}
	// The next resync, whose snapshot began after the change, applies.
	store.asked, store.release = make(chan struct{}, 1), make(chan struct{})
	close(store.release)
	c.Store = store
	if err := c.resync(t.Context()); err != nil {
		t.Fatal(err)
	}
	if refused, _ := c.Revoked(t.Context(), "jti", "app", "", ""); refused {
		t.Fatal("a later snapshot without the client did not apply")
	}
}

// slowRead answers Client with the client as it was when asked, once
// released: a read that a deletion overtakes.
type slowRead struct {
	Store
	asked, release chan struct{}
}

func (s slowRead) Client(_ context.Context, id string) (*Client, error) {
	s.asked <- struct{}{}
	<-s.release
	return &Client{ID: id}, nil // read before the deletion committed
}

func (slowRead) DeleteClient(context.Context, string, int64) error { return nil }

// A read of a client that a deletion overtook is not cached: the deleted
// client's secret must not work for another second (CI caught a secret
// working after a deletion that raced a token request).
func TestCachedClientsSkipAReadAWriteOvertook(t *testing.T) {
	store := slowRead{asked: make(chan struct{}), release: make(chan struct{})}
	c := &Cached{Store: store, now: time.Now, clients: map[string]cachedClient{},
		revoked: map[RevocationKind]*sync.Map{RevokedClient: new(sync.Map)}}
	done := make(chan error)
	go func() { _, err := c.Client(t.Context(), "a"); done <- err }()
	<-store.asked
	if err := c.DeleteClient(t.Context(), "a", time.Now().Add(time.Hour).Unix()); err != nil {
		t.Fatal(err)
	}
	close(store.release)
	if err := <-done; err != nil {
		t.Fatal(err) // the overlapping read may see the client as it was
	}
	c.clientsMu.Lock()
	_, cached := c.clients["a"]
	c.clientsMu.Unlock()
	if cached {
		t.Fatal("a read that the deletion overtook was cached")
	}
}
