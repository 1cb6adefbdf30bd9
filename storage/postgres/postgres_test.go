package postgres

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/caddy-dcr/caddy-dcr/internal/pgtest"
	"github.com/caddy-dcr/caddy-dcr/storage"
	"github.com/caddy-dcr/caddy-dcr/storage/storetest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// open opens a store on dsn, closed when t ends.
func open(t testing.TB, dsn string, opts Options) *Store {
	t.Helper()
	s, err := Open(t.Context(), dsn, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storage.Store { return open(t, pgtest.Start(t), Options{}) })
}

func TestConcurrentOpensMigrateOnce(t *testing.T) {
	dsn := pgtest.Start(t)
	stores := make([]*Store, 4)
	var wg sync.WaitGroup
	for i := range stores {
		wg.Go(func() {
			s, err := Open(t.Context(), dsn, Options{})
			if err != nil {
				t.Error(err)
				return
			}
			stores[i] = s
		})
	}
	wg.Wait()
	for _, s := range stores {
		if s != nil {
			t.Cleanup(func() { _ = s.Close() })
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	files, err := migrations.ReadDir("migrations")
	if err != nil {
		t.Fatal(err)
	}
	var applied, distinct int
	err = stores[0].pool.QueryRow(t.Context(), `SELECT count(*), count(DISTINCT version) FROM dcr_schema_migrations`).Scan(&applied, &distinct)
	if err != nil || applied != len(files) || distinct != len(files) {
		t.Fatalf("%d migrations recorded (%d distinct) for %d files: %v", applied, distinct, len(files), err)
	}
	// A later open finds nothing to do.
	open(t, dsn, Options{})
}

// Each revoking write, made through one store, reaches another store's
// watch: the token gates of other instances learn of it. So does a client
// disabled or enabled again.
func TestRevocationsReachOtherInstances(t *testing.T) {
	dsn := pgtest.Start(t)
	writer, follower := open(t, dsn, Options{}), open(t, dsn, Options{})
	ctx, cancel := context.WithCancel(t.Context())
	got := make(chan storage.Revocation, 16)
	listening := make(chan struct{}, 1)
	watched := make(chan error, 1)
	go func() {
		watched <- follower.WatchRevocations(ctx, func(r storage.Revocation) { got <- r }, func() { listening <- struct{}{} })
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-watched; err != nil {
			t.Errorf("watch ended with %v, want nil once its context is done", err)
		}
	})
	select {
	case <-listening:
	case err := <-watched:
		t.Fatalf("watch: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("the watch never called resync")
	}

	until := time.Now().Add(time.Hour).Unix()
	must(t, writer.CreateClient(ctx, storetest.NewClient("app")))
	_, err := writer.RecordGrant(ctx, &storage.Grant{ID: "g1", Subject: "alice", ClientID: "app", Scope: "read", Families: []string{"legacy"}})
	must(t, err)
	for _, tc := range []struct {
		name   string
		revoke func() error
		want   []storage.Revocation
	}{
		{"RevokeAccessToken", func() error { return writer.RevokeAccessToken(ctx, "jti-1", until) },
			[]storage.Revocation{{Kind: storage.RevokedToken, Key: "jti-1", Until: until}}},
		{"RevokeFamily", func() error { return writer.RevokeFamily(ctx, "fam-1", until) },
			[]storage.Revocation{{Kind: storage.RevokedFamily, Key: "fam-1", Until: until}}},
		{"RevokeGrant", func() error { _, err := writer.RevokeGrant(ctx, "alice", "app", until); return err },
			[]storage.Revocation{{Kind: storage.RevokedGrant, Key: "g1", Until: until}, {Kind: storage.RevokedFamily, Key: "legacy", Until: until}}},
		{"SetClientSettings disables", func() error {
			_, err := writer.SetClientSettings(ctx, "app", storage.ClientSettings{}, storage.ClientSettings{Disabled: true})
			return err
		}, []storage.Revocation{{Kind: storage.ClientDisabled, Key: "app", Until: 1}}},
		{"SetClientSettings enables", func() error {
			_, err := writer.SetClientSettings(ctx, "app", storage.ClientSettings{Disabled: true}, storage.ClientSettings{})
			return err
		},
			[]storage.Revocation{{Kind: storage.ClientDisabled, Key: "app", Until: 0}}},
		{"DeleteClient", func() error { return writer.DeleteClient(ctx, "app", until) },
			[]storage.Revocation{{Kind: storage.RevokedClient, Key: "app", Until: until}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			must(t, tc.revoke())
			deadline := time.After(time.Second)
			for _, want := range tc.want {
				select {
				case r := <-got:
					if r != want {
						t.Fatalf("got %+v, want %+v", r, want)
					}
				case <-deadline:
					t.Fatalf("%+v did not arrive within 1 s", want)
				}
			}
		})
	}
}

// With the server gone, calls fail within the call timeout as
// unavailable (callers answer 503), the watch returns, and once the
// server is back the same store works again.
func TestServerDownIsUnavailableThenRecovers(t *testing.T) {
	cluster := pgtest.StartCluster(t)
	dsn := cluster.NewDatabase(t)
	const timeout = time.Second
	s := open(t, dsn, Options{CallTimeout: timeout})
	ctx := t.Context()
	must(t, s.CreateClient(ctx, storetest.NewClient("app")))

	watched := make(chan error, 1)
	listening := make(chan struct{}, 1)
	go func() {
		watched <- s.WatchRevocations(ctx, func(storage.Revocation) {}, func() { listening <- struct{}{} })
	}()
	<-listening

	cluster.Stop()
	select {
	case err := <-watched:
		if err == nil {
			t.Fatal("the watch ended without an error when the server stopped")
		}
	case <-time.After(heartbeat + 2*timeout):
		t.Fatal("the watch did not notice the server stopping")
	}
	for _, call := range []struct {
		name string
		fn   func() error
	}{
		{"Client", func() error { _, err := s.Client(ctx, "app"); return err }},
		{"CreateClient", func() error { return s.CreateClient(ctx, storetest.NewClient("other")) }},
		{"RevokeAccessToken", func() error { return s.RevokeAccessToken(ctx, "jti", time.Now().Unix()+60) }},
		{"WatchRevocations", func() error { return s.WatchRevocations(ctx, func(storage.Revocation) {}, func() {}) }},
	} {
		start := time.Now()
		err := call.fn()
		if !errors.Is(err, storage.ErrUnavailable) {
			t.Errorf("%s with the server down: %v, want ErrUnavailable", call.name, err)
		}
		if d := time.Since(start); d > timeout+500*time.Millisecond {
			t.Errorf("%s took %v to fail, past the %v timeout", call.name, d, timeout)
		}
	}

	if err := cluster.Start(); err != nil {
		t.Fatal(err)
	}
	if c, err := s.Client(ctx, "app"); err != nil || c.ID != "app" {
		t.Fatalf("after the restart: %v %v", c, err)
	}
	must(t, s.RevokeAccessToken(ctx, "jti", time.Now().Unix()+60))
}

// A call that outlasts its timeout is unavailable, and returns at the
// deadline.
func TestSlowDatabaseIsUnavailable(t *testing.T) {
	s := open(t, pgtest.Start(t), Options{CallTimeout: 200 * time.Millisecond})
	start := time.Now()
	err := s.call(t.Context(), "sleeping", func(ctx context.Context) error {
		_, err := s.pool.Exec(ctx, "SELECT pg_sleep(5)")
		return err
	})
	if !errors.Is(err, storage.ErrUnavailable) {
		t.Fatalf("slow call: %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("slow call returned after %v", d)
	}
	// The caller giving up, before or during a call, is not the database
	// failing.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.Client(ctx, "x"); !errors.Is(err, context.Canceled) || errors.Is(err, storage.ErrUnavailable) {
		t.Fatalf("cancelled call: %v", err)
	}
	ctx, cancel = context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	err = s.call(ctx, "sleeping", func(ctx context.Context) error {
		time.AfterFunc(50*time.Millisecond, cancel)
		_, err := s.pool.Exec(ctx, "SELECT pg_sleep(5)")
		return err
	})
	if !errors.Is(err, context.Canceled) || errors.Is(err, storage.ErrUnavailable) {
		t.Fatalf("call cancelled midway: %v", err)
	}
}

func TestSweepDeletesExpiredRecords(t *testing.T) {
	s := open(t, pgtest.Start(t), Options{})
	ctx := t.Context()
	now := time.Now().Unix()
	hour := int64(time.Hour / time.Second)
	for _, tc := range []struct {
		key string
		exp int64
	}{{"live", now + 60}, {"expired", now - 2*60}} {
		must(t, s.CreateRefreshToken(ctx, storage.HashSecret(tc.key), &storage.RefreshToken{ClientID: "app", Subject: "alice", ExpiresAt: tc.exp, Family: tc.key}))
		must(t, s.RevokeAccessToken(ctx, tc.key, tc.exp))
	}
	// A code is kept for storage.UsedCodeRetention past its expiry, to
	// recognise a late replay.
	for _, tc := range []struct {
		key string
		exp int64
	}{{"retained", now - hour + 2*60}, {"expired", now - hour - 2*60}} {
		must(t, s.CreateAuthCode(ctx, storage.HashSecret(tc.key), &storage.AuthCode{ClientID: "app", Subject: "alice", ExpiresAt: tc.exp}))
	}
	must(t, s.sweep(ctx))

	if _, err := s.RefreshToken(ctx, storage.HashSecret("live")); err != nil {
		t.Errorf("live refresh token: %v", err)
	}
	if _, err := s.RefreshToken(ctx, storage.HashSecret("expired")); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("expired refresh token: %v", err)
	}
	if _, err := s.ConsumeAuthCode(ctx, storage.HashSecret("retained"), now); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("retained code: %v, want ErrNotFound (expired)", err)
	}
	var codes, revocations int
	must(t, s.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM dcr_auth_codes), (SELECT count(*) FROM dcr_revocations)`).Scan(&codes, &revocations))
	if codes != 1 || revocations != 1 {
		t.Fatalf("after the sweep: %d codes, %d revocations; want 1 and 1", codes, revocations)
	}
}

// A token stored into a family or for a client after its revocation (a
// code exchange or rotation racing the revocation) is refused: the family
// lock orders it after the revocation's delete, and the check sees the
// revocation record.
func TestTokenStoredAfterItsRevocationIsRefused(t *testing.T) {
	s := open(t, pgtest.Start(t), Options{})
	ctx := t.Context()
	now := time.Now().Unix()
	must(t, s.RevokeFamily(ctx, "fam", now+600))
	must(t, s.CreateClient(ctx, storetest.NewClient("app")))
	must(t, s.DeleteClient(ctx, "app", now+600))
	for _, tc := range []struct{ name, client, family string }{{"Family", "other", "fam"}, {"Client", "app", "f2"}} {
		hash := storage.HashSecret(tc.name)
		err := s.CreateRefreshToken(ctx, hash, &storage.RefreshToken{ClientID: tc.client, Subject: "alice", ExpiresAt: now + 3600, Family: tc.family})
		if !errors.Is(err, storage.ErrRevoked) {
			t.Errorf("%s: a token stored after its revocation: %v", tc.name, err)
		}
		if _, err := s.RefreshToken(ctx, hash); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("%s: the refused token was stored: %v", tc.name, err)
		}
	}
}

// Rotations racing a revocation of their family: whatever the order, no
// token of the family is left in the table.
func TestRotationRacingRevocationLeavesNoToken(t *testing.T) {
	s := open(t, pgtest.Start(t), Options{})
	ctx := t.Context()
	now := time.Now().Unix()
	for round := range 20 {
		fam := fmt.Sprint("race", round)
		hash := storage.HashSecret(fam)
		must(t, s.CreateRefreshToken(ctx, hash, &storage.RefreshToken{ClientID: "app", Subject: "alice", ExpiresAt: now + 3600, Family: fam}))
		var wg sync.WaitGroup
		wg.Go(func() {
			r := storage.Rotation{ClientID: "app", At: now, NextHash: storage.HashSecret(fam + "next"),
				Next: &storage.RefreshToken{ClientID: "app", Subject: "alice", ExpiresAt: now + 3600, Family: fam}}
			_, _ = s.RotateRefreshToken(ctx, hash, r)
		})
		wg.Go(func() { must(t, s.RevokeFamily(ctx, fam, now+600)) })
		wg.Wait()
		var left int
		must(t, s.pool.QueryRow(ctx, `SELECT count(*) FROM dcr_refresh_tokens WHERE family = $1`, fam).Scan(&left))
		if left != 0 {
			t.Fatalf("round %d: %d tokens of the revoked family left", round, left)
		}
	}
}

// jsonb reformats what it stores; a client's extension members come back
// as registration stored them.
func TestClientMetadataRoundTrip(t *testing.T) {
	s := open(t, pgtest.Start(t), Options{})
	c := storetest.NewClient("app")
	c.Metadata.Extra["x_list"] = []byte(`[1,{"b":"é","a":null}]`)
	c.Metadata.JWKS = []byte(`{"keys":[]}`)
	must(t, s.CreateClient(t.Context(), c))
	got, err := s.Client(t.Context(), "app")
	must(t, err)
	if string(got.Metadata.Extra["x_list"]) != `[1,{"a":null,"b":"é"}]` || string(got.Metadata.JWKS) != `{"keys":[]}` {
		t.Fatalf("extra %s, jwks %s", got.Metadata.Extra["x_list"], got.Metadata.JWKS)
	}
	if got.RegistrationTokenHash == nil || got.SecretHash == nil {
		t.Fatalf("hashes lost: %+v", got)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// A client disabled through one instance's view is refused by another
// instance's view within a second, and accepted again within a second of
// being enabled: the gates of every instance follow the operator.
func TestDisablingReachesOtherInstancesGates(t *testing.T) {
	dsn := pgtest.Start(t)
	view := func() *storage.Cached {
		c, err := storage.NewCached(t.Context(), open(t, dsn, Options{}), nil)
		must(t, err)
		return c
	}
	writer, follower := view(), view()
	ctx := t.Context()
	must(t, writer.CreateClient(ctx, storetest.NewClient("app")))
	for !follower.Current() {
		time.Sleep(10 * time.Millisecond)
	}
	refused := func() bool {
		r, err := follower.Revoked(ctx, "jti", "app", "", "")
		must(t, err)
		return r
	}
	waitFor := func(want bool) {
		t.Helper()
		for deadline := time.Now().Add(time.Second); refused() != want; {
			if time.Now().After(deadline) {
				t.Fatalf("the other instance still says refused=%v a second later", !want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	_, err := writer.SetClientSettings(ctx, "app", storage.ClientSettings{}, storage.ClientSettings{Disabled: true})
	must(t, err)
	waitFor(true)
	_, err = writer.SetClientSettings(ctx, "app", storage.ClientSettings{Disabled: true}, storage.ClientSettings{})
	must(t, err)
	waitFor(false)
}
