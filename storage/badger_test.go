package storage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func openMem(t *testing.T) *Badger {
	t.Helper()
	s, err := OpenBadger("", Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func newClient(id string) *Client {
	return &Client{
		ID:                    id,
		IssuedAt:              1700000000,
		SecretHash:            HashSecret("secret-" + id),
		RegistrationTokenHash: HashSecret("rat-" + id),
		Metadata: Metadata{
			RedirectURIs:            []string{"https://app.example/cb"},
			TokenEndpointAuthMethod: AuthMethodBasic,
			GrantTypes:              []string{"authorization_code"},
			ResponseTypes:           []string{"code"},
			ClientName:              "App " + id,
			Extra:                   map[string]json.RawMessage{"x_custom": json.RawMessage(`{"a":[1,2]}`)},
		},
	}
}

func TestClientLifecycle(t *testing.T) {
	ctx := context.Background()
	s := openMem(t)

	c := newClient("abc")
	if err := s.CreateClient(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateClient(ctx, newClient("abc")); !errors.Is(err, ErrExists) {
		t.Fatalf("second create: got %v, want ErrExists", err)
	}

	got, err := s.Client(ctx, "abc")
	if err != nil {
		t.Fatal(err)
	}
	if got.Metadata.ClientName != "App abc" || string(got.Metadata.Extra["x_custom"]) != `{"a":[1,2]}` {
		t.Fatalf("round trip lost data: %+v", got.Metadata)
	}
	byToken, err := s.ClientByRegistrationToken(ctx, HashSecret("rat-abc"))
	if err != nil || byToken.ID != "abc" {
		t.Fatalf("by token: %v %v", byToken, err)
	}

	// Rotating the registration token re-indexes it atomically.
	_, err = s.UpdateClient(ctx, "abc", func(c *Client) error {
		c.RegistrationTokenHash = HashSecret("rat-2")
		c.Metadata.ClientName = "Renamed"
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ClientByRegistrationToken(ctx, HashSecret("rat-abc")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("old token still indexed: %v", err)
	}
	if c, err := s.ClientByRegistrationToken(ctx, HashSecret("rat-2")); err != nil || c.Metadata.ClientName != "Renamed" {
		t.Fatalf("new token: %v %v", c, err)
	}

	if err := s.DeleteClient(ctx, "abc", time.Now().Add(time.Hour).Unix()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Client(ctx, "abc"); !errors.Is(err, ErrNotFound) || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("after delete: %v", err)
	}
	if _, err := s.ClientByRegistrationToken(ctx, HashSecret("rat-2")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("token index survived delete: %v", err)
	}
	if err := s.DeleteClient(ctx, "abc", time.Now().Add(time.Hour).Unix()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
}

func TestFailedUpdateChangesNothing(t *testing.T) {
	ctx := context.Background()
	s := openMem(t)
	if err := s.CreateClient(ctx, newClient("id1")); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	_, err := s.UpdateClient(ctx, "id1", func(c *Client) error {
		c.Metadata.ClientName = "half-done"
		c.RegistrationTokenHash = HashSecret("other")
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("got %v", err)
	}
	c, err := s.Client(ctx, "id1")
	if err != nil || c.Metadata.ClientName != "App id1" {
		t.Fatalf("update leaked: %+v %v", c, err)
	}
	if _, err := s.ClientByRegistrationToken(ctx, HashSecret("rat-id1")); err != nil {
		t.Fatalf("token index changed: %v", err)
	}
	if _, err := s.UpdateClient(ctx, "missing", func(*Client) error { return nil }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("update of missing client: %v", err)
	}
}

func TestConcurrentCreatesAndUpdates(t *testing.T) {
	ctx := context.Background()
	s := openMem(t)
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			errs <- s.CreateClient(ctx, newClient(fmt.Sprintf("client-%03d", i)))
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	all, next, err := s.Clients(ctx, "", 1000)
	if err != nil || next != "" || len(all) != n {
		t.Fatalf("listed %d clients (next %q, err %v), want %d", len(all), next, err, n)
	}
	seen := map[string]bool{}
	for _, c := range all {
		seen[c.ID] = true
		if _, err := s.ClientByRegistrationToken(ctx, c.RegistrationTokenHash); err != nil {
			t.Fatalf("%s: %v", c.ID, err)
		}
	}
	if len(seen) != n {
		t.Fatalf("%d distinct ids, want %d", len(seen), n)
	}

	// Concurrent read-modify-writes of one record conflict and are retried:
	// none is lost.
	var counter sync.WaitGroup
	for range 20 {
		counter.Go(func() {
			_, err := s.UpdateClient(ctx, "client-000", func(c *Client) error {
				c.Metadata.Contacts = append(c.Metadata.Contacts, "x")
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	counter.Wait()
	c, _ := s.Client(ctx, "client-000")
	if len(c.Metadata.Contacts) != 20 {
		t.Fatalf("%d contacts after 20 concurrent appends", len(c.Metadata.Contacts))
	}
}

func TestClientsPaging(t *testing.T) {
	ctx := context.Background()
	s := openMem(t)
	for i := range 25 {
		if err := s.CreateClient(ctx, newClient(fmt.Sprintf("p%02d", i))); err != nil {
			t.Fatal(err)
		}
	}
	var ids []string
	cursor := ""
	for pages := 0; ; pages++ {
		page, next, err := s.Clients(ctx, cursor, 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range page {
			ids = append(ids, c.ID)
		}
		if next == "" {
			if pages != 2 {
				t.Fatalf("got %d pages, want 3", pages+1)
			}
			break
		}
		cursor = next
	}
	if len(ids) != 25 || ids[0] != "p00" || ids[24] != "p24" {
		t.Fatalf("paged ids: %v", ids)
	}
}

func TestReopenFromDisk(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "dcr")
	s, err := OpenBadger(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateClient(ctx, newClient("durable")); err != nil {
		t.Fatal(err)
	}
	// A second open of the same directory fails with a hint, not a hang.
	if _, err := OpenBadger(dir, Options{}); err == nil {
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

	s, err = OpenBadger(dir, Options{SyncWrites: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, err := s.ClientByRegistrationToken(ctx, HashSecret("rat-durable"))
	if err != nil || c.ID != "durable" {
		t.Fatalf("after reopen: %v %v", c, err)
	}
}

func TestCancelledContext(t *testing.T) {
	s := openMem(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.CreateClient(ctx, newClient("x")); !errors.Is(err, context.Canceled) {
		t.Fatalf("create: %v", err)
	}
	if _, err := s.Client(ctx, "x"); !errors.Is(err, context.Canceled) {
		t.Fatalf("read: %v", err)
	}
}

func TestMetadataJSONNeverNull(t *testing.T) {
	b, err := json.Marshal(Metadata{TokenEndpointAuthMethod: AuthMethodNone})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for k, v := range m {
		if v == nil {
			t.Errorf("%s is null in %s", k, b)
		}
	}
	if _, ok := m["redirect_uris"].([]any); !ok {
		t.Fatalf("redirect_uris not an array: %s", b)
	}
}

func TestServerSecretIsStable(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "db")
	s, err := OpenBadger(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	a, err := s.ServerSecret(ctx, "csrf")
	if err != nil || len(a) != 32 {
		t.Fatalf("%x %v", a, err)
	}
	other, _ := s.ServerSecret(ctx, "other")
	if string(other) == string(a) {
		t.Fatal("two names share a secret")
	}
	s.Close()
	s, err = OpenBadger(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b, _ := s.ServerSecret(ctx, "csrf")
	if string(a) != string(b) {
		t.Fatal("the secret changed across a reopen")
	}
}
