package storetest

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/caddy-dcr/caddy-dcr/storage"
)

func countIs(t *testing.T, s storage.Store, want int) {
	t.Helper()
	n, err := s.CountClients(t.Context())
	must(t, err)
	if n != want {
		t.Fatalf("CountClients: %d, want %d", n, want)
	}
}

func testCountClients(t *testing.T, s storage.Store) {
	ctx := t.Context()
	countIs(t, s, 0)
	for _, id := range []string{"a", "b", "c"} {
		must(t, s.CreateClient(ctx, NewClient(id)))
	}
	countIs(t, s, 3)
	if err := s.CreateClient(ctx, NewClient("a")); !errors.Is(err, storage.ErrExists) {
		t.Fatalf("second create: %v", err)
	}
	countIs(t, s, 3)
	must(t, s.DeleteClient(ctx, "b", time.Now().Unix()+60))
	if err := s.DeleteClient(ctx, "b", time.Now().Unix()+60); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	countIs(t, s, 2)
	must(t, s.CreateInitialAccessToken(ctx, initialToken("one", 1, 0)))
	d := NewClient("d")
	d.Origin = storage.OriginInitialAccessToken
	must(t, s.CreateClientWithInitialAccessToken(ctx, d, storage.HashSecret("iat-one"), time.Now().Unix()))
	if err := s.CreateClientWithInitialAccessToken(ctx, NewClient("e"), storage.HashSecret("iat-one"), time.Now().Unix()); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("used-up token: %v", err)
	}
	countIs(t, s, 3)
	_, err := s.ReapClients(ctx, storage.ReapPolicy{UnusedBefore: 2_000_000_000, Now: time.Now().Unix(), Until: time.Now().Unix() + 60, Limit: 100})
	must(t, err)
	countIs(t, s, 1) // d came with an initial access token: kept
}

// reapCase is a client set up for testReapClients and whether the policy
// there removes it.
type reapCase struct {
	id               string
	origin           string
	keep             *bool
	issued, lastUsed int64
	grant            bool
	refreshExpiresIn time.Duration // 0: none; negative: expired
	reaped           bool
}

func testReapClients(t *testing.T, s storage.Store) {
	ctx := t.Context()
	yes, no := true, false
	now := time.Now().Unix()
	// Registered at 1000..1100, the policy's times 2000: unused before
	// 2000, idle since before 2000.
	cases := []reapCase{
		{id: "unused", issued: 1001, reaped: true},
		{id: "unused-recent", issued: 2500},
		{id: "unused-initial-token", origin: storage.OriginInitialAccessToken, issued: 1002},
		{id: "unused-operator", origin: storage.OriginOperator, issued: 1003},
		{id: "operator-let-go", origin: storage.OriginOperator, keep: &no, issued: 1004, reaped: true},
		{id: "dynamic-kept", keep: &yes, issued: 1005},
		{id: "unused-with-grant", issued: 1006, grant: true, reaped: true},
		{id: "idle", issued: 1007, lastUsed: 1500, reaped: true},
		{id: "idle-with-grant", issued: 1008, lastUsed: 1500, grant: true},
		{id: "idle-with-refresh-token", issued: 1009, lastUsed: 1500, refreshExpiresIn: time.Hour},
		{id: "idle-with-expired-refresh-token", issued: 1010, lastUsed: 1500, refreshExpiresIn: -time.Hour, reaped: true},
		{id: "used-lately", issued: 1011, lastUsed: 2500},
	}
	for _, tc := range cases {
		c := NewClient(tc.id)
		c.IssuedAt, c.LastUsedAt, c.Origin, c.Settings.Keep = tc.issued, tc.lastUsed, tc.origin, tc.keep
		must(t, s.CreateClient(ctx, c))
		if tc.grant {
			_, err := s.RecordGrant(ctx, &storage.Grant{ID: "g-" + tc.id, Subject: "alice", ClientID: tc.id, Scope: "read"})
			must(t, err)
		}
		if tc.refreshExpiresIn != 0 {
			must(t, s.CreateRefreshToken(ctx, storage.HashSecret("rt-"+tc.id),
				refresh(tc.id, "f-"+tc.id, "", time.Now().Add(tc.refreshExpiresIn).Unix())))
		}
	}
	countIs(t, s, len(cases))
	p := storage.ReapPolicy{UnusedBefore: 2000, IdleBefore: 2000, Now: now, Until: now + 3600, Limit: 100}

	// Limit bounds one call; the oldest go first.
	p.Limit = 2
	first, err := s.ReapClients(ctx, p)
	must(t, err)
	if !slices.Equal(storage.IDs(first), []string{"unused", "operator-let-go"}) {
		t.Fatalf("first batch %v", first)
	}
	p.Limit = 100
	rest, err := s.ReapClients(ctx, p)
	must(t, err)
	reaped := storage.IDs(append(first, rest...))
	var want []string
	for _, tc := range cases {
		if tc.reaped {
			want = append(want, tc.id)
		}
		_, err := s.Client(ctx, tc.id)
		switch {
		case tc.reaped && !errors.Is(err, storage.ErrNotFound):
			t.Errorf("%s: not reaped (%v)", tc.id, err)
		case !tc.reaped && err != nil:
			t.Errorf("%s: reaped (%v)", tc.id, err)
		}
		if tc.reaped {
			if ok, err := s.Revoked(ctx, "jti", tc.id, "", ""); err != nil || !ok {
				t.Errorf("%s: its access tokens are not revoked: %v %v", tc.id, ok, err)
			}
			if _, err := s.Grant(ctx, "alice", tc.id); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("%s: its grant is left: %v", tc.id, err)
			}
		}
	}
	if !slices.Equal(reaped, want) {
		t.Errorf("reaped %v, want %v", reaped, want)
	}
	countIs(t, s, len(cases)-len(want))
	again, err := s.ReapClients(ctx, p)
	if err != nil || len(again) != 0 {
		t.Fatalf("a second pass reaped %v (%v)", again, err)
	}
}

// Reapers racing each other (instances sharing a database) remove each
// client once.
func testReapRace(t *testing.T, s storage.Store) {
	ctx := t.Context()
	const n = 60
	for i := range n {
		c := NewClient(fmt.Sprintf("c%03d", i))
		c.IssuedAt = 1000
		must(t, s.CreateClient(ctx, c))
	}
	now := time.Now().Unix()
	p := storage.ReapPolicy{UnusedBefore: 2000, Now: now, Until: now + 60, Limit: 7}
	var mu sync.Mutex
	var all []string
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				ids, err := s.ReapClients(ctx, p)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				all = append(all, storage.IDs(ids)...)
				done := len(all) >= n
				mu.Unlock()
				if done {
					return
				}
				if len(ids) == 0 {
					// Another reaper holds the work (PostgreSQL's
					// lock); try again.
					time.Sleep(time.Millisecond)
				}
			}
		})
	}
	wg.Wait()
	sort.Strings(all)
	if len(all) != n || len(slices.Compact(slices.Clone(all))) != n {
		t.Fatalf("reaped %d ids (%d distinct), want %d once each", len(all), len(slices.Compact(all)), n)
	}
	countIs(t, s, 0)
}

// Reaping resumes after a position: a batch starts past the clients an
// earlier one removed or passed over, in the order of removal (IssuedAt,
// then id in byte order), and returns where it ended.
func testReapResumes(t *testing.T, s storage.Store) {
	ctx := t.Context()
	now := time.Now().Unix()
	for _, c := range []struct {
		id     string
		issued int64
		kept   bool // holds a live refresh token
	}{{"k1", 1000, true}, {"u1", 1001, false}, {"k2", 1002, true}, {"a3", 1003, false}, {"Z2", 1003, false}, {"u4", 1004, false}} {
		cl := NewClient(c.id)
		cl.IssuedAt = c.issued
		must(t, s.CreateClient(ctx, cl))
		if c.kept {
			must(t, s.CreateRefreshToken(ctx, storage.HashSecret("rt-"+c.id), refresh(c.id, "f-"+c.id, "", now+3600)))
		}
	}
	p := storage.ReapPolicy{UnusedBefore: 2000, Now: now, Until: now + 60}
	reap := func(after storage.ClientPosition, limit int) []storage.ClientPosition {
		t.Helper()
		p.After, p.Limit = after, limit
		reaped, err := s.ReapClients(ctx, p)
		must(t, err)
		return reaped
	}
	// After a client that is still there: it is not taken.
	if got := reap(storage.ClientPosition{IssuedAt: 1001, ID: "u1"}, 1); !slices.Equal(got, []storage.ClientPosition{{IssuedAt: 1003, ID: "Z2"}}) {
		t.Fatalf("after u1: %v", got)
	}
	first := reap(storage.ClientPosition{}, 2)
	if !slices.Equal(first, []storage.ClientPosition{{IssuedAt: 1001, ID: "u1"}, {IssuedAt: 1003, ID: "a3"}}) {
		t.Fatalf("from the start: %v", first)
	}
	if got := reap(first[len(first)-1], 2); !slices.Equal(got, []storage.ClientPosition{{IssuedAt: 1004, ID: "u4"}}) {
		t.Fatalf("resumed: %v", got)
	}
	if got := reap(storage.ClientPosition{}, 10); len(got) != 0 {
		t.Fatalf("kept clients reaped: %v", got)
	}
	countIs(t, s, 2)
}

func testDisabledClients(t *testing.T, s storage.Store) {
	ctx := t.Context()
	for _, id := range []string{"a", "b", "c"} {
		must(t, s.CreateClient(ctx, NewClient(id)))
	}
	list := func() []string {
		t.Helper()
		ids, err := s.DisabledClients(ctx)
		must(t, err)
		sort.Strings(ids)
		return ids
	}
	if ids := list(); len(ids) != 0 {
		t.Fatalf("disabled before any was: %v", ids)
	}
	_, err := s.SetClientSettings(ctx, "b", storage.ClientSettings{}, storage.ClientSettings{Disabled: true})
	must(t, err)
	_, err = s.SetClientSettings(ctx, "c", storage.ClientSettings{}, storage.ClientSettings{Disabled: true, Scope: "read"})
	must(t, err)
	if ids := list(); !slices.Equal(ids, []string{"b", "c"}) {
		t.Fatalf("disabled: %v", ids)
	}
	_, err = s.SetClientSettings(ctx, "c", storage.ClientSettings{Disabled: true, Scope: "read"}, storage.ClientSettings{Scope: "read"})
	must(t, err)
	must(t, s.DeleteClient(ctx, "b", time.Now().Unix()+60))
	if ids := list(); len(ids) != 0 {
		t.Fatalf("disabled after enabling and deleting: %v", ids)
	}
}
