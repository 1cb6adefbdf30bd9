// Package storetest is the conformance suite of the storage.Store
// contract: every backend runs it (storage/badger, storage/postgres).
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-dcr/caddy-dcr/storage"
)

// Open returns a new, empty store for one test; the suite closes it.
type Open func(t *testing.T) storage.Store

// Run runs the whole suite against the backend that open makes.
func Run(t *testing.T, open Open) {
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, storage.Store)
	}{
		{"ClientLifecycle", testClientLifecycle},
		{"ReplaceClientIsCompareAndSwap", testReplaceClientCAS},
		{"ClientWritersKeepToTheirFields", testClientWriters},
		{"ClientWritersRacing", testClientWritersRace},
		{"ClientSettingsCompareAndSwap", testClientSettingsCompareAndSwap},
		{"InitialAccessTokens", testInitialAccessTokens},
		{"InitialAccessTokenUsesAreCounted", testInitialAccessTokenRace},
		{"ClientsPaging", testClientsPaging},
		{"SigningKeysOneRotationWins", testSigningKeys},
		{"SigningKeysPerAlgorithm", testSigningKeysPerAlgorithm},
		{"ServerSecretIsStable", testServerSecret},
		{"RefreshRotation", testRefreshRotation},
		{"ConcurrentRotationHasOneWinner", testConcurrentRotation},
		{"ReuseWindowIsBounded", testReuseWindow},
		{"ConcurrentCodeExchangeHasOneWinner", testCodes},
		{"GrantsRecordMergeRevoke", testGrants},
		{"DeleteClientTakesEverythingWithIt", testDeleteClient},
		{"Revocations", testRevocations},
		{"RevocationsReachThousandsOfTokens", testLargeRevocations},
		{"RecordGrantRacingRevokeGrant", testGrantRace},
		{"CancelledContext", testCancelled},
		{"CountClients", testCountClients},
		{"ReapClients", testReapClients},
		{"ReapResumesAfterAPosition", testReapResumes},
		{"ReapersRacing", testReapRace},
		{"DisabledClients", testDisabledClients},
		{"OpenIDConnectFieldsRoundTrip", testOpenIDConnectFields},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() { _ = s.Close() })
			tc.fn(t, s)
		})
	}
}

// NewClient returns a client record with every kind of field set.
func NewClient(id string) *storage.Client {
	return &storage.Client{
		ID:                    id,
		IssuedAt:              1700000000,
		SecretHash:            storage.HashSecret("secret-" + id),
		RegistrationTokenHash: storage.HashSecret("rat-" + id),
		Metadata: storage.Metadata{
			RedirectURIs:            []string{"https://app.example/cb"},
			TokenEndpointAuthMethod: storage.AuthMethodBasic,
			GrantTypes:              []string{"authorization_code"},
			ResponseTypes:           []string{"code"},
			ClientName:              "App " + id,
			Extra:                   map[string]json.RawMessage{"x_custom": json.RawMessage(`{"a":[1,2]}`)},
		},
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func testClientLifecycle(t *testing.T, s storage.Store) {
	ctx := t.Context()
	must(t, s.CreateClient(ctx, NewClient("abc")))
	if err := s.CreateClient(ctx, NewClient("abc")); !errors.Is(err, storage.ErrExists) {
		t.Fatalf("second create: %v, want ErrExists", err)
	}
	got, err := s.Client(ctx, "abc")
	must(t, err)
	if got.Metadata.ClientName != "App abc" || string(got.Metadata.Extra["x_custom"]) != `{"a":[1,2]}` ||
		string(got.SecretHash) != string(storage.HashSecret("secret-abc")) || got.IssuedAt != 1700000000 {
		t.Fatalf("round trip lost data: %+v", got)
	}
	if _, err := s.Client(ctx, "nope"); !errors.Is(err, storage.ErrNotFound) || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing client: %v", err)
	}
	byToken, err := s.ClientByRegistrationToken(ctx, storage.HashSecret("rat-abc"))
	if err != nil || byToken.ID != "abc" {
		t.Fatalf("by token: %v %v", byToken, err)
	}

	// Replacing with a new registration token re-indexes it.
	next := NewClient("abc")
	next.RegistrationTokenHash = storage.HashSecret("rat-2")
	next.Metadata.ClientName = "Renamed"
	must(t, s.ReplaceClient(ctx, next, storage.HashSecret("rat-abc")))
	if _, err := s.ClientByRegistrationToken(ctx, storage.HashSecret("rat-abc")); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("old token still indexed: %v", err)
	}
	if c, err := s.ClientByRegistrationToken(ctx, storage.HashSecret("rat-2")); err != nil || c.Metadata.ClientName != "Renamed" {
		t.Fatalf("new token: %v %v", c, err)
	}
	if err := s.ReplaceClient(ctx, NewClient("nope"), storage.HashSecret("rat-nope")); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("replacing a missing client: %v", err)
	}

	must(t, s.DeleteClient(ctx, "abc", time.Now().Add(time.Hour).Unix()))
	if _, err := s.Client(ctx, "abc"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
	if _, err := s.ClientByRegistrationToken(ctx, storage.HashSecret("rat-2")); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("token index survived delete: %v", err)
	}
	if err := s.DeleteClient(ctx, "abc", time.Now().Add(time.Hour).Unix()); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
}

// Many writers replacing one client from the same read: exactly one
// succeeds, the others see ErrConflict, and nothing is lost or mixed.
func testReplaceClientCAS(t *testing.T, s storage.Store) {
	ctx := t.Context()
	must(t, s.CreateClient(ctx, NewClient("c1")))
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			c := NewClient("c1")
			c.RegistrationTokenHash = storage.HashSecret(fmt.Sprint("rat-", i))
			c.Metadata.ClientName = fmt.Sprint("writer ", i)
			switch err := s.ReplaceClient(ctx, c, storage.HashSecret("rat-c1")); {
			case err == nil:
				wins.Add(1)
			case !errors.Is(err, storage.ErrConflict):
				t.Errorf("writer %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d writers won, want 1", wins.Load())
	}
	c, err := s.Client(ctx, "c1")
	must(t, err)
	if by, err := s.ClientByRegistrationToken(ctx, c.RegistrationTokenHash); err != nil || by.Metadata.ClientName != c.Metadata.ClientName {
		t.Fatalf("the winner's token does not find the winner's record: %v %v", by, err)
	}
}

func testClientsPaging(t *testing.T, s storage.Store) {
	ctx := t.Context()
	for i := range 25 {
		must(t, s.CreateClient(ctx, NewClient(fmt.Sprintf("id%02d", i))))
	}
	var all []string
	cursor := ""
	for {
		page, next, err := s.Clients(ctx, cursor, 10)
		must(t, err)
		for _, c := range page {
			all = append(all, c.ID)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if len(all) != 25 || all[0] != "id00" || all[24] != "id24" {
		t.Fatalf("paging: %v", all)
	}
	if page, _, err := s.Clients(ctx, "", 0); err != nil || len(page) != 0 {
		t.Fatalf("limit 0: %v %v", page, err)
	}
}

func testSigningKeys(t *testing.T, s storage.Store) {
	ctx := t.Context()
	added, err := s.AddSigningKey(ctx, &storage.SigningKey{ID: "k1", Private: []byte{1}, CreatedAt: 100}, 100)
	if err != nil || !added {
		t.Fatalf("first key: %v %v", added, err)
	}
	// Several instances rotating at once: one key is stored.
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			ok, err := s.AddSigningKey(ctx, &storage.SigningKey{ID: fmt.Sprint("k2-", i), Private: []byte{2}, CreatedAt: 200}, 150)
			if err != nil {
				t.Error(err)
			}
			if ok {
				wins.Add(1)
			}
		})
	}
	wg.Wait()
	keys, err := s.SigningKeys(ctx)
	must(t, err)
	if wins.Load() != 1 || len(keys) != 2 || keys[0].ID != "k1" || keys[1].CreatedAt != 200 {
		t.Fatalf("%d rotations stored; keys %+v", wins.Load(), keys)
	}
	must(t, s.DeleteSigningKey(ctx, "k1"))
	must(t, s.DeleteSigningKey(ctx, "k1"))
	if keys, _ := s.SigningKeys(ctx); len(keys) != 1 {
		t.Fatalf("after delete: %+v", keys)
	}
}

// Each algorithm's keys rotate on their own: a newer key of another
// algorithm does not stop an instance from storing the first key of its
// own, nor a successor, and racing instances still store one per
// algorithm. A key with no Alg is an ES256 key.
func testSigningKeysPerAlgorithm(t *testing.T, s storage.Store) {
	ctx := t.Context()
	add := func(k *storage.SigningKey, newerThan int64) bool {
		t.Helper()
		added, err := s.AddSigningKey(ctx, k, newerThan)
		must(t, err)
		return added
	}
	if !add(&storage.SigningKey{ID: "es1", Private: []byte{1}, CreatedAt: 100}, 0) {
		t.Fatal("first ES256 key not stored")
	}
	// The first RS256 key, made long after the ES256 key.
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			ok, err := s.AddSigningKey(ctx, &storage.SigningKey{ID: fmt.Sprint("rs1-", i), Private: []byte{2}, CreatedAt: 300, Alg: "RS256"}, 0)
			if err != nil {
				t.Error(err)
			}
			if ok {
				wins.Add(1)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d first RS256 keys stored, want 1", wins.Load())
	}
	// An ES256 rotation older than the RS256 key is still due: the RS256
	// key is not a newer ES256 key.
	if !add(&storage.SigningKey{ID: "es2", Private: []byte{3}, CreatedAt: 200, Alg: "ES256"}, 101) {
		t.Fatal("ES256 rotation refused because of an RS256 key")
	}
	// A second ES256 rotation from the same view loses to es2.
	if add(&storage.SigningKey{ID: "es3", Private: []byte{4}, CreatedAt: 200}, 101) {
		t.Fatal("two ES256 successors stored")
	}
	// An RS256 rotation is not blocked by the newer ES256 key...
	if !add(&storage.SigningKey{ID: "rs2", Private: []byte{5}, CreatedAt: 350, Alg: "RS256"}, 301) {
		t.Fatal("RS256 rotation refused")
	}
	// ...and is once its own algorithm has one.
	if add(&storage.SigningKey{ID: "rs3", Private: []byte{6}, CreatedAt: 400, Alg: "RS256"}, 301) {
		t.Fatal("two RS256 successors stored")
	}
	keys, err := s.SigningKeys(ctx)
	must(t, err)
	var got []string
	for _, k := range keys {
		got = append(got, k.ID+"/"+k.Algorithm())
		want := "ES256"
		if strings.HasPrefix(k.ID, "rs") {
			want = "RS256"
		}
		if k.Algorithm() != want {
			t.Errorf("key %s came back as %s (Alg %q), want %s", k.ID, k.Algorithm(), k.Alg, want)
		}
	}
	if len(keys) != 4 || keys[0].ID != "es1" || keys[1].ID != "es2" || !strings.HasPrefix(keys[2].ID, "rs1-") || keys[3].ID != "rs2" {
		t.Fatalf("keys %v, want es1, es2, rs1-*, rs2, oldest first", got)
	}
}

func testServerSecret(t *testing.T, s storage.Store) {
	ctx := t.Context()
	secrets := make([][]byte, 8)
	var wg sync.WaitGroup
	for i := range secrets {
		wg.Go(func() {
			var err error
			secrets[i], err = s.ServerSecret(ctx, "csrf")
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for _, sec := range secrets {
		if len(sec) != 32 || string(sec) != string(secrets[0]) {
			t.Fatalf("secrets differ: %x", secrets)
		}
	}
	other, err := s.ServerSecret(ctx, "other")
	if err != nil || string(other) == string(secrets[0]) {
		t.Fatalf("another name, the same secret: %v", err)
	}
}

func refresh(client, family, grant string, exp int64) *storage.RefreshToken {
	return &storage.RefreshToken{ClientID: client, Subject: "alice", Scope: "read", IssuedAt: exp - 3600, ExpiresAt: exp,
		Family: family, Grant: grant, Claims: map[string]string{"email": "alice@example.com"}}
}

func rotation(client string, at int64, next string) storage.Rotation {
	return storage.Rotation{ClientID: client, At: at, NextHash: storage.HashSecret(next), Next: refresh(client, "f", "", at+3600)}
}

func testRefreshRotation(t *testing.T, s storage.Store) {
	ctx := t.Context()
	now := time.Now().Unix()
	must(t, s.CreateRefreshToken(ctx, storage.HashSecret("rt1"), refresh("app", "f", "", now+3600)))
	got, err := s.RefreshToken(ctx, storage.HashSecret("rt1"))
	if err != nil || got.Claims["email"] != "alice@example.com" || got.Used {
		t.Fatalf("read: %+v %v", got, err)
	}
	// Another client's token neither works nor changes.
	if _, err := s.RotateRefreshToken(ctx, storage.HashSecret("rt1"), rotation("other", now, "x")); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("foreign rotation: %v", err)
	}
	old, err := s.RotateRefreshToken(ctx, storage.HashSecret("rt1"), rotation("app", now, "rt2"))
	if err != nil || old.Used || old.Family != "f" {
		t.Fatalf("rotation: %+v %v", old, err)
	}
	if used, _ := s.RefreshToken(ctx, storage.HashSecret("rt1")); !used.Used || used.UsedAt != now {
		t.Fatalf("not marked used: %+v", used)
	}
	if next, err := s.RefreshToken(ctx, storage.HashSecret("rt2")); err != nil || next.Used {
		t.Fatalf("successor: %+v %v", next, err)
	}
	// A replay comes back with the stored token and writes nothing.
	replayed, err := s.RotateRefreshToken(ctx, storage.HashSecret("rt1"), rotation("app", now, "rt3"))
	if !errors.Is(err, storage.ErrTokenReused) || replayed == nil || replayed.Family != "f" {
		t.Fatalf("replay: %+v %v", replayed, err)
	}
	if _, err := s.RefreshToken(ctx, storage.HashSecret("rt3")); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("a replay stored a successor: %v", err)
	}
	// Expired: not rotated.
	must(t, s.CreateRefreshToken(ctx, storage.HashSecret("old"), refresh("app", "g", "", now+10)))
	if _, err := s.RotateRefreshToken(ctx, storage.HashSecret("old"), rotation("app", now+10, "y")); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("expired rotation: %v", err)
	}
	if _, err := s.RotateRefreshToken(ctx, storage.HashSecret("missing"), rotation("app", now, "z")); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("missing token: %v", err)
	}
}

func testConcurrentRotation(t *testing.T, s storage.Store) {
	ctx := t.Context()
	now := time.Now().Unix()
	must(t, s.CreateRefreshToken(ctx, storage.HashSecret("rt"), refresh("app", "f", "", now+3600)))
	var wins, replays atomic.Int32
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			_, err := s.RotateRefreshToken(ctx, storage.HashSecret("rt"), rotation("app", now, fmt.Sprint("next", i)))
			switch {
			case err == nil:
				wins.Add(1)
			case errors.Is(err, storage.ErrTokenReused):
				replays.Add(1)
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 || replays.Load() != 19 {
		t.Fatalf("%d winners, %d replays; want 1 and 19", wins.Load(), replays.Load())
	}
}

func testReuseWindow(t *testing.T, s storage.Store) {
	ctx := t.Context()
	now := time.Now().Unix()
	must(t, s.CreateRefreshToken(ctx, storage.HashSecret("rt"), refresh("app", "f", "", now+3600)))
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() {
			r := rotation("app", now, fmt.Sprint("next", i))
			r.ReuseWindow, r.MaxReuses = 10, 3
			if _, err := s.RotateRefreshToken(ctx, storage.HashSecret("rt"), r); err == nil {
				wins.Add(1)
			} else if !errors.Is(err, storage.ErrTooManyReuses) {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 4 {
		t.Fatalf("%d rotations within the window, want 1 and 3 reuses", wins.Load())
	}
	r0 := rotation("app", now, "over")
	r0.ReuseWindow, r0.MaxReuses = 10, 3
	if _, err := s.RotateRefreshToken(ctx, storage.HashSecret("rt"), r0); !errors.Is(err, storage.ErrTooManyReuses) {
		t.Fatalf("over the cap within the window: %v", err)
	}
	// After the window, a replay.
	r := rotation("app", now+11, "late")
	r.ReuseWindow, r.MaxReuses = 10, 100
	must(t, s.CreateRefreshToken(ctx, storage.HashSecret("rt-b"), refresh("app", "f2", "", now+3600)))
	_, err := s.RotateRefreshToken(ctx, storage.HashSecret("rt-b"), rotation("app", now, "b1"))
	must(t, err)
	if _, err := s.RotateRefreshToken(ctx, storage.HashSecret("rt-b"), r); !errors.Is(err, storage.ErrTokenReused) {
		t.Fatalf("after the window: %v", err)
	}
}

func testCodes(t *testing.T, s storage.Store) {
	ctx := t.Context()
	now := time.Now().Unix()
	code := func(exp int64) *storage.AuthCode {
		return &storage.AuthCode{ClientID: "app", RedirectURI: "https://app.example/cb", Challenge: "c", Scope: "read",
			Audience: "https://api.example", Subject: "alice", ExpiresAt: exp, Family: "f", Claims: map[string]string{"email": "a@b"}}
	}
	must(t, s.CreateAuthCode(ctx, storage.HashSecret("code"), code(now+60)))
	var wins, replays atomic.Int32
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			c, err := s.ConsumeAuthCode(ctx, storage.HashSecret("code"), now)
			switch {
			case err == nil && c.Claims["email"] == "a@b" && c.RedirectURI == "https://app.example/cb":
				wins.Add(1)
			case errors.Is(err, storage.ErrTokenReused) && c != nil && c.UsedAt == now:
				replays.Add(1)
			default:
				t.Errorf("consume: %+v %v", c, err)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 || replays.Load() != 9 {
		t.Fatalf("%d winners, %d replays", wins.Load(), replays.Load())
	}
	must(t, s.CreateAuthCode(ctx, storage.HashSecret("late"), code(now+60)))
	if _, err := s.ConsumeAuthCode(ctx, storage.HashSecret("late"), now+60); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("expired code: %v", err)
	}
	if _, err := s.ConsumeAuthCode(ctx, storage.HashSecret("none"), now); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("missing code: %v", err)
	}
	// Whether the authorization request sent redirect_uri travels with
	// the code (RFC 6749 §4.1.3).
	omitted := code(now + 60)
	omitted.RedirectURIOmitted = true
	must(t, s.CreateAuthCode(ctx, storage.HashSecret("omitted"), omitted))
	if c, err := s.ConsumeAuthCode(ctx, storage.HashSecret("omitted"), now); err != nil || !c.RedirectURIOmitted {
		t.Fatalf("code without redirect_uri: %+v %v", c, err)
	}
	if c, err := s.ConsumeAuthCode(ctx, storage.HashSecret("omitted"), now+1); !errors.Is(err, storage.ErrTokenReused) || !c.RedirectURIOmitted {
		t.Fatalf("used code without redirect_uri: %+v %v", c, err)
	}
}

func testGrants(t *testing.T, s storage.Store) {
	ctx := t.Context()
	now := time.Now().Unix()
	g, err := s.RecordGrant(ctx, &storage.Grant{ID: "g1", Subject: "alice", ClientID: "app", ClientName: "App", Scope: "read", CreatedAt: 1, UpdatedAt: 1})
	if err != nil || g.ID != "g1" {
		t.Fatalf("record: %+v %v", g, err)
	}
	g, err = s.RecordGrant(ctx, &storage.Grant{ID: "other", Subject: "alice", ClientID: "app", ClientName: "App 2", Scope: "write read", CreatedAt: 5, UpdatedAt: 5})
	if err != nil || g.ID != "g1" || g.Scope != "read write" || g.CreatedAt != 1 || g.UpdatedAt != 5 || g.ClientName != "App 2" {
		t.Fatalf("merge: %+v %v", g, err)
	}
	_, err = s.RecordGrant(ctx, &storage.Grant{ID: "g2", Subject: "alice", ClientID: "tool", Scope: "read", CreatedAt: 1, UpdatedAt: 1})
	must(t, err)
	if got, err := s.Grant(ctx, "alice", "app"); err != nil || got.Scope != "read write" {
		t.Fatalf("read: %+v %v", got, err)
	}
	if list, err := s.Grants(ctx, "alice"); err != nil || len(list) != 2 {
		t.Fatalf("list: %v %v", list, err)
	}
	if list, err := s.Grants(ctx, "bob"); err != nil || len(list) != 0 {
		t.Fatalf("bob's list: %v %v", list, err)
	}

	for i := range 50 {
		grant, client := "g1", "app"
		if i%10 == 0 {
			grant, client = "g2", "tool"
		}
		must(t, s.CreateRefreshToken(ctx, storage.HashSecret(fmt.Sprint("rt", i)), refresh(client, fmt.Sprint("f", i), grant, now+3600)))
	}
	must(t, s.CreateAuthCode(ctx, storage.HashSecret("code"), &storage.AuthCode{ClientID: "app", Subject: "alice", Grant: "g1", ExpiresAt: now + 60, Family: "fc"}))

	revoked, err := s.RevokeGrant(ctx, "alice", "app", now+3600)
	if err != nil || revoked.ID != "g1" {
		t.Fatalf("revoke: %+v %v", revoked, err)
	}
	if _, err := s.RevokeGrant(ctx, "alice", "app", now+3600); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("second revocation: %v", err)
	}
	for i := range 50 {
		_, err := s.RefreshToken(ctx, storage.HashSecret(fmt.Sprint("rt", i)))
		if kept := i%10 == 0; kept != (err == nil) {
			t.Fatalf("refresh token %d after revoking its grant: %v", i, err)
		}
	}
	if _, err := s.ConsumeAuthCode(ctx, storage.HashSecret("code"), now); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("code of a revoked grant: %v", err)
	}
	if ok, err := s.Revoked(ctx, "jti", "app", "", "g1"); err != nil || !ok {
		t.Fatalf("grant not revoked: %v %v", ok, err)
	}
	if ok, err := s.Revoked(ctx, "jti", "tool", "", "g2"); err != nil || ok {
		t.Fatalf("the other grant revoked: %v %v", ok, err)
	}
	// A grant made again has a new ID and revives nothing.
	g, err = s.RecordGrant(ctx, &storage.Grant{ID: "g3", Subject: "alice", ClientID: "app", Scope: "read", CreatedAt: 9, UpdatedAt: 9})
	if err != nil || g.ID != "g3" {
		t.Fatalf("grant again: %+v %v", g, err)
	}
	if _, err := s.RefreshToken(ctx, storage.HashSecret("rt1")); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("a new grant revived a token: %v", err)
	}
}

func testDeleteClient(t *testing.T, s storage.Store) {
	ctx := t.Context()
	now := time.Now().Unix()
	must(t, s.CreateClient(ctx, NewClient("app")))
	_, err := s.RecordGrant(ctx, &storage.Grant{ID: "g1", Subject: "alice", ClientID: "app", Scope: "read"})
	must(t, err)
	must(t, s.CreateRefreshToken(ctx, storage.HashSecret("rt"), refresh("app", "f", "g1", now+3600)))
	must(t, s.DeleteClient(ctx, "app", now+3600))
	if list, err := s.Grants(ctx, "alice"); err != nil || len(list) != 0 {
		t.Fatalf("grants of a deleted client: %v %v", list, err)
	}
	if _, err := s.RefreshToken(ctx, storage.HashSecret("rt")); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("refresh token of a deleted client: %v", err)
	}
	if ok, err := s.Revoked(ctx, "jti", "app", "", ""); err != nil || !ok {
		t.Fatalf("deleted client not revoked: %v %v", ok, err)
	}
}

func testRevocations(t *testing.T, s storage.Store) {
	ctx := t.Context()
	now := time.Now().Unix()
	must(t, s.CreateRefreshToken(ctx, storage.HashSecret("rt"), refresh("app", "fam", "", now+3600)))
	must(t, s.RevokeFamily(ctx, "fam", now+600))
	must(t, s.RevokeFamily(ctx, "fam", now+300)) // a revocation never shrinks
	// A token stored into a revoked family (a code exchange racing the
	// revocation) is refused, not stored live.
	if err := s.CreateRefreshToken(ctx, storage.HashSecret("late"), refresh("app", "fam", "", now+3600)); !errors.Is(err, storage.ErrRevoked) {
		t.Fatalf("a token stored into a revoked family: %v", err)
	}
	if _, err := s.RefreshToken(ctx, storage.HashSecret("rt")); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("refresh token of a revoked family: %v", err)
	}
	must(t, s.RevokeAccessToken(ctx, "jti-1", now+600))
	must(t, s.RevokeAccessToken(ctx, "jti-gone", now-600)) // already expired
	for _, q := range []struct {
		jti, client, family, grant string
		want                       bool
	}{
		{"jti-1", "", "", "", true}, {"x", "", "fam", "", true}, {"x", "app", "other", "g", false}, {"jti-gone", "", "", "", false},
	} {
		if ok, err := s.Revoked(ctx, q.jti, q.client, q.family, q.grant); err != nil || ok != q.want {
			t.Errorf("Revoked(%q, %q, %q, %q) = %v %v", q.jti, q.client, q.family, q.grant, ok, err)
		}
	}
	all, err := s.Revocations(ctx)
	must(t, err)
	found := map[storage.Revocation]bool{}
	for _, r := range all {
		found[r] = true
	}
	if !found[storage.Revocation{Kind: storage.RevokedToken, Key: "jti-1", Until: now + 600}] ||
		!found[storage.Revocation{Kind: storage.RevokedFamily, Key: "fam", Until: now + 600}] ||
		found[storage.Revocation{Kind: storage.RevokedToken, Key: "jti-gone", Until: now - 600}] {
		t.Fatalf("revocations: %+v", all)
	}
}

func testCancelled(t *testing.T, s storage.Store) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.CreateClient(ctx, NewClient("x")); err == nil {
		t.Fatal("a write with a cancelled context succeeded")
	}
	if _, err := s.Client(ctx, "x"); err == nil {
		t.Fatal("a read with a cancelled context succeeded")
	}
}

// A grant refreshed every 15 minutes for 30 days has about 2,900 refresh
// tokens (the rotated ones are kept to recognise a replay): revoking it,
// its family or its client must work however many there are.
func testLargeRevocations(t *testing.T, s storage.Store) {
	ctx := t.Context()
	now := time.Now().Unix()
	must(t, s.CreateClient(ctx, NewClient("app")))
	_, err := s.RecordGrant(ctx, &storage.Grant{ID: "g1", Subject: "alice", ClientID: "app", Scope: "read"})
	must(t, err)
	const n = 3000
	for i := range n {
		must(t, s.CreateRefreshToken(ctx, storage.HashSecret(fmt.Sprint("g", i)), refresh("app", "fam", "g1", now+3600)))
	}
	if _, err := s.RevokeGrant(ctx, "alice", "app", now+3600); err != nil {
		t.Fatalf("revoking a grant with %d refresh tokens: %v", n, err)
	}
	for _, i := range []int{0, n / 2, n - 1} {
		if _, err := s.RefreshToken(ctx, storage.HashSecret(fmt.Sprint("g", i))); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("token %d of the revoked grant: %v", i, err)
		}
	}
	for i := range n {
		must(t, s.CreateRefreshToken(ctx, storage.HashSecret(fmt.Sprint("f", i)), refresh("app", "fam2", "", now+3600)))
	}
	if err := s.RevokeFamily(ctx, "fam2", now+3600); err != nil {
		t.Fatalf("revoking a family of %d: %v", n, err)
	}
	if _, err := s.RefreshToken(ctx, storage.HashSecret("f7")); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("token of the revoked family: %v", err)
	}
	for i := range n {
		must(t, s.CreateRefreshToken(ctx, storage.HashSecret(fmt.Sprint("c", i)), refresh("app", fmt.Sprint("c", i), "", now+3600)))
	}
	if err := s.DeleteClient(ctx, "app", now+3600); err != nil {
		t.Fatalf("deleting a client with %d refresh tokens: %v", n, err)
	}
	if _, err := s.RefreshToken(ctx, storage.HashSecret("c9")); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("token of the deleted client: %v", err)
	}
}

// A person re-authorizing while revoking the same grant (two tabs): the
// authorization records a grant whatever the order, and never fails.
func testGrantRace(t *testing.T, s storage.Store) {
	ctx := t.Context()
	now := time.Now().Unix()
	for i := range 30 {
		_, err := s.RecordGrant(ctx, &storage.Grant{ID: fmt.Sprint("a", i), Subject: "alice", ClientID: "app", Scope: "read"})
		must(t, err)
		var wg sync.WaitGroup
		wg.Go(func() {
			if _, err := s.RecordGrant(ctx, &storage.Grant{ID: fmt.Sprint("b", i), Subject: "alice", ClientID: "app", Scope: "read"}); err != nil {
				t.Errorf("round %d: recording a grant while it is revoked: %v", i, err)
			}
		})
		wg.Go(func() {
			if _, err := s.RevokeGrant(ctx, "alice", "app", now+600); err != nil && !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("round %d: revoking: %v", i, err)
			}
		})
		wg.Wait()
		_, _ = s.RevokeGrant(ctx, "alice", "app", now+600)
	}
}

// testOpenIDConnectFields: a code keeps its nonce and auth_time, and a
// refresh token its auth_time, through the store and a rotation.
func testOpenIDConnectFields(t *testing.T, s storage.Store) {
	ctx := t.Context()
	now := time.Now().Unix()
	must(t, s.CreateAuthCode(ctx, storage.HashSecret("oidc-code"), &storage.AuthCode{ClientID: "app", Subject: "alice",
		ExpiresAt: now + 60, Family: "fo", Nonce: "n-0S6_WzA2Mj", AuthTime: now - 30}))
	c, err := s.ConsumeAuthCode(ctx, storage.HashSecret("oidc-code"), now)
	if err != nil || c.Nonce != "n-0S6_WzA2Mj" || c.AuthTime != now-30 {
		t.Fatalf("code: %+v %v", c, err)
	}
	rt := &storage.RefreshToken{ClientID: "app", Subject: "alice", Scope: "openid", IssuedAt: now, ExpiresAt: now + 3600,
		Family: "fo", AuthTime: now - 30}
	must(t, s.CreateRefreshToken(ctx, storage.HashSecret("oidc-rt"), rt))
	next := *rt
	next.IssuedAt = now + 1
	old, err := s.RotateRefreshToken(ctx, storage.HashSecret("oidc-rt"), storage.Rotation{ClientID: "app", At: now + 1,
		NextHash: storage.HashSecret("oidc-rt2"), Next: &next})
	if err != nil || old.AuthTime != now-30 {
		t.Fatalf("rotate: %+v %v", old, err)
	}
	got, err := s.RefreshToken(ctx, storage.HashSecret("oidc-rt2"))
	if err != nil || got.AuthTime != now-30 {
		t.Fatalf("successor: %+v %v", got, err)
	}
}
