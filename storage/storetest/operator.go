package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-dcr/caddy-dcr/storage"
)

// testClientWriters checks that a client's three writers (registration,
// use, operator) each write only their own fields.
func testClientWriters(t *testing.T, s storage.Store) {
	ctx := t.Context()
	c := NewClient("own")
	c.Origin = storage.OriginOperator
	c.Settings = storage.ClientSettings{Scope: "read", AccessTokenTTL: 60}
	must(t, s.CreateClient(ctx, c))
	got, err := s.Client(ctx, "own")
	must(t, err)
	if got.Origin != storage.OriginOperator || got.Settings.Scope != "read" || got.Settings.AccessTokenTTL != 60 || got.LastUsedAt != 0 {
		t.Fatalf("stored %+v", got)
	}
	if got.Reapable() {
		t.Fatal("an operator's client is reapable by default")
	}

	keep := false
	stored, err := s.SetClientSettings(ctx, "own", c.Settings, storage.ClientSettings{Disabled: true, RefreshTokenTTL: 3600, Keep: &keep})
	must(t, err)
	if !stored.Settings.Disabled || stored.Settings.Scope != "" || stored.Settings.RefreshTokenTTL != 3600 || stored.Metadata.ClientName != "App own" {
		t.Fatalf("SetClientSettings returned %+v", stored)
	}
	must(t, s.TouchClient(ctx, "own", 200))
	must(t, s.TouchClient(ctx, "own", 100)) // never backwards

	// The registration's writer does not know the other fields: it
	// must not reset them.
	next := NewClient("own")
	next.Metadata.ClientName = "Renamed"
	next.RegistrationTokenHash = storage.HashSecret("rotated")
	must(t, s.ReplaceClient(ctx, next, c.RegistrationTokenHash))
	got, err = s.Client(ctx, "own")
	must(t, err)
	if got.Metadata.ClientName != "Renamed" || got.Origin != storage.OriginOperator || !got.Settings.Disabled ||
		got.Settings.Keep == nil || *got.Settings.Keep || got.LastUsedAt != 200 {
		t.Fatalf("after ReplaceClient: %+v", got)
	}
	if !got.Reapable() {
		t.Fatal("Keep=false does not make the client reapable")
	}

	if _, err := s.SetClientSettings(ctx, "nobody", storage.ClientSettings{}, storage.ClientSettings{}); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("SetClientSettings of a missing client: %v", err)
	}
	if err := s.TouchClient(ctx, "nobody", 1); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("TouchClient of a missing client: %v", err)
	}
	if _, err := s.Client(ctx, "nobody"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("a writer created a missing client: %v", err)
	}
}

// testClientWritersRace runs the three writers of one client at once:
// none loses another's change.
func testClientWritersRace(t *testing.T, s storage.Store) {
	ctx := t.Context()
	c := NewClient("race")
	must(t, s.CreateClient(ctx, c))
	const n = 16
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(3)
		go func() {
			defer wg.Done()
			must(t, s.TouchClient(ctx, "race", int64(1000+i)))
		}()
		go func() {
			defer wg.Done()
			must(t, updateSettings(ctx, s, "race", func(cs *storage.ClientSettings) {
				cs.Disabled, cs.AccessTokenTTL = true, 600
			}))
		}()
		go func() {
			defer wg.Done()
			next := NewClient("race")
			next.Metadata.ClientName = "Updated"
			// Every writer presents the original token: the client is
			// not rotated, so each replace succeeds.
			must(t, s.ReplaceClient(ctx, next, c.RegistrationTokenHash))
		}()
	}
	wg.Wait()
	got, err := s.Client(ctx, "race")
	must(t, err)
	if got.LastUsedAt != 1000+n-1 || !got.Settings.Disabled || got.Settings.AccessTokenTTL != 600 || got.Metadata.ClientName != "Updated" {
		t.Fatalf("lost an update: %+v", got)
	}
}

func initialToken(id string, maxUses int, expiresAt int64) *storage.InitialAccessToken {
	return &storage.InitialAccessToken{
		ID: id, Hash: storage.HashSecret("iat-" + id), Description: "for " + id,
		CreatedAt: time.Now().Unix(), ExpiresAt: expiresAt, MaxUses: maxUses,
	}
}

func testInitialAccessTokens(t *testing.T, s storage.Store) {
	ctx := t.Context()
	now := time.Now().Unix()
	two := initialToken("two", 2, now+3600)
	must(t, s.CreateInitialAccessToken(ctx, two))
	forever := initialToken("forever", 0, 0)
	forever.CreatedAt++
	must(t, s.CreateInitialAccessToken(ctx, forever))
	must(t, s.CreateInitialAccessToken(ctx, initialToken("expired", 0, now-10)))
	if err := s.CreateInitialAccessToken(ctx, initialToken("two", 1, 0)); !errors.Is(err, storage.ErrExists) {
		t.Fatalf("a second token with a taken id: %v", err)
	}

	list, err := s.InitialAccessTokens(ctx)
	must(t, err)
	if len(list) != 2 || list[0].ID != "two" || list[1].ID != "forever" || list[0].Description != "for two" ||
		string(list[0].Hash) != string(two.Hash) || list[0].MaxUses != 2 || list[0].ExpiresAt != now+3600 {
		t.Fatalf("listed %+v", list)
	}

	must(t, s.CreateClientWithInitialAccessToken(ctx, NewClient("i1"), two.Hash, now))
	// A failed creation (the id is taken) does not count a use.
	if err := s.CreateClientWithInitialAccessToken(ctx, NewClient("i1"), two.Hash, now); !errors.Is(err, storage.ErrExists) {
		t.Fatalf("creating a taken id: %v", err)
	}
	must(t, s.CreateClientWithInitialAccessToken(ctx, NewClient("i2"), two.Hash, now))
	if err := s.CreateClientWithInitialAccessToken(ctx, NewClient("i3"), two.Hash, now); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("a used-up token: %v", err)
	}
	if _, err := s.Client(ctx, "i3"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("a refused registration stored its client: %v", err)
	}
	list, err = s.InitialAccessTokens(ctx)
	must(t, err)
	if list[0].Uses != 2 || list[1].Uses != 0 {
		t.Fatalf("uses: %+v %+v", list[0], list[1])
	}

	for name, hash := range map[string][]byte{
		"an unknown token": storage.HashSecret("nope"),
		"an expired token": storage.HashSecret("iat-expired"),
	} {
		if err := s.CreateClientWithInitialAccessToken(ctx, NewClient("x"), hash, now); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("%s: %v", name, err)
		}
	}
	// Expiry is exact: the handler's clock decides, not the backend's
	// retention.
	soon := initialToken("soon", 0, now+5)
	must(t, s.CreateInitialAccessToken(ctx, soon))
	if err := s.CreateClientWithInitialAccessToken(ctx, NewClient("late"), soon.Hash, now+5); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("a token presented at its expiry: %v", err)
	}

	must(t, s.DeleteInitialAccessToken(ctx, "forever"))
	if err := s.DeleteInitialAccessToken(ctx, "forever"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("deleting twice: %v", err)
	}
	if err := s.CreateClientWithInitialAccessToken(ctx, NewClient("y"), forever.Hash, now); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("a deleted token: %v", err)
	}
}

// testInitialAccessTokenRace presents a token allowing five uses from
// twenty goroutines: exactly five clients are created.
func testInitialAccessTokenRace(t *testing.T, s storage.Store) {
	ctx := t.Context()
	tok := initialToken("five", 5, 0)
	must(t, s.CreateInitialAccessToken(ctx, tok))
	var created atomic.Int32
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			err := s.CreateClientWithInitialAccessToken(ctx, NewClient(fmt.Sprintf("r%02d", i)), tok.Hash, time.Now().Unix())
			switch {
			case err == nil:
				created.Add(1)
			case !errors.Is(err, storage.ErrNotFound):
				t.Error(err)
			}
		})
	}
	wg.Wait()
	clients, _, err := s.Clients(ctx, "", 100)
	must(t, err)
	list, err := s.InitialAccessTokens(ctx)
	must(t, err)
	if created.Load() != 5 || len(clients) != 5 || list[0].Uses != 5 {
		t.Fatalf("created %d, stored %d, uses %d; want 5 each", created.Load(), len(clients), list[0].Uses)
	}
}

// updateSettings applies fn to a client's settings as the admin API does:
// read, compare-and-swap, and on a conflict read again.
func updateSettings(ctx context.Context, s storage.Store, id string, fn func(*storage.ClientSettings)) error {
	for {
		c, err := s.Client(ctx, id)
		if err != nil {
			return err
		}
		set := c.Settings
		fn(&set)
		if _, err = s.SetClientSettings(ctx, id, c.Settings, set); !errors.Is(err, storage.ErrConflict) {
			return err
		}
	}
}

// testClientSettingsCompareAndSwap checks that SetClientSettings writes
// only over the settings it was given as old, so that concurrent
// read-modify-writes lose nothing.
func testClientSettingsCompareAndSwap(t *testing.T, s storage.Store) {
	ctx := t.Context()
	c := NewClient("cas")
	must(t, s.CreateClient(ctx, c))
	keep := true
	first := storage.ClientSettings{Disabled: true, Scope: "read", Keep: &keep}
	_, err := s.SetClientSettings(ctx, "cas", storage.ClientSettings{}, first)
	must(t, err)

	// A stale old: refused, and nothing changes.
	stale := storage.ClientSettings{Scope: "write"}
	if _, err := s.SetClientSettings(ctx, "cas", storage.ClientSettings{}, stale); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("a stale old settings: %v, want ErrConflict", err)
	}
	keepFalse := false
	if _, err := s.SetClientSettings(ctx, "cas", storage.ClientSettings{Disabled: true, Scope: "read", Keep: &keepFalse}, stale); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("an old settings with another keep: %v, want ErrConflict", err)
	}
	got, err := s.Client(ctx, "cas")
	must(t, err)
	if !got.Settings.Equal(first) {
		t.Fatalf("a refused write changed the settings: %+v", got.Settings)
	}

	// Each goroutine flips its own part of the settings, then the
	// disabled flag both ways: every flip is a read-modify-write racing
	// the others, and none may be lost.
	const n = 8
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			for range 5 {
				must(t, updateSettings(ctx, s, "cas", func(cs *storage.ClientSettings) { cs.Disabled = !cs.Disabled }))
			}
			must(t, updateSettings(ctx, s, "cas", func(cs *storage.ClientSettings) { cs.AccessTokenTTL += int64(1) << i }))
		})
	}
	wg.Wait()
	got, err = s.Client(ctx, "cas")
	must(t, err)
	// n*5 flips, an even number, from disabled: disabled.
	if !got.Settings.Disabled || got.Settings.AccessTokenTTL != 1<<n-1 || got.Settings.Scope != "read" {
		t.Fatalf("lost an update: %+v", got.Settings)
	}
}
