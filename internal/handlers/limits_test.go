package handlers

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-dcr/caddy-dcr/storage"
)

func (ts *testServer) clientCount() int {
	ts.t.Helper()
	n, err := ts.store.CountClients(ts.t.Context())
	if err != nil {
		ts.t.Fatal(err)
	}
	return n
}

// At max_clients, registration makes room by reaping the oldest clients
// that never got a token (and are reapable, and old enough not to be in
// their first authorization); when there are none, it refuses with 503
// and stores nothing.
func TestMaxClients(t *testing.T) {
	ts := newTestServer(t, Config{Limits: Limits{MaxClients: 3}})
	body := `{"grant_types":["client_credentials"]}`
	unused := ts.register(body)["client_id"].(string)
	ts.clock = ts.clock.Add(time.Minute)
	usedID, usedSecret := ts.machineClient("")
	ts.clientCredentialsToken(usedID, usedSecret, "")
	ts.clock = ts.clock.Add(time.Minute)
	young := ts.register(body)["client_id"].(string)

	// Full, and the unused client is too young to reap.
	w, m := ts.do("POST", "/oauth/register", "", "application/json", body)
	assertOAuthJSON(t, w, m, http.StatusServiceUnavailable, "temporarily_unavailable")
	if w.Header().Get("Retry-After") == "" {
		t.Error("no Retry-After")
	}
	if n := ts.clientCount(); n != 3 {
		t.Fatalf("%d clients after a refusal", n)
	}

	// Later the oldest unused one makes room; the used one stays.
	ts.clock = ts.clock.Add(maxClientsReapAge)
	w, m = ts.do("POST", "/oauth/register", "", "application/json", body)
	assertOAuthJSON(t, w, m, http.StatusCreated, "")
	if _, err := ts.store.Client(t.Context(), unused); err == nil {
		t.Error("the oldest unused client was not reaped")
	}
	for _, id := range []string{usedID, young} {
		if _, err := ts.store.Client(t.Context(), id); err != nil {
			t.Errorf("%s was reaped: %v", id, err)
		}
	}
	if n := ts.clientCount(); n != 3 {
		t.Fatalf("%d clients, max 3", n)
	}

	// Clients the operator keeps are not reaped to make room.
	ts.clock = ts.clock.Add(time.Hour)
	keep := true
	for _, id := range []string{young, m["client_id"].(string)} {
		if err := ts.setSettings(id, storage.ClientSettings{Keep: &keep}); err != nil {
			t.Fatal(err)
		}
	}
	w, m = ts.do("POST", "/oauth/register", "", "application/json", body)
	assertOAuthJSON(t, w, m, http.StatusServiceUnavailable, "temporarily_unavailable")
}

// A run-time initial access token registers a client that is kept (not
// reapable), counts a use only for a registration that succeeds, and
// stops working when used up; a static one (initial_access_token) still
// works and its clients are kept too.
func TestRegistrationWithInitialAccessTokens(t *testing.T) {
	ts := newTestServer(t, Config{InitialAccessTokens: []string{"static-token-value"}})
	ctx := t.Context()
	if err := ts.store.CreateInitialAccessToken(ctx, &storage.InitialAccessToken{
		ID: "t1", Hash: storage.HashSecret("runtime-token-value"), CreatedAt: ts.clock.Unix(), MaxUses: 1,
	}); err != nil {
		t.Fatal(err)
	}
	good := `{"grant_types":["client_credentials"]}`

	// Bad metadata: refused, and the use is not counted.
	w, m := ts.do("POST", "/oauth/register", "runtime-token-value", "application/json", `{"grant_types":["password"]}`)
	assertOAuthJSON(t, w, m, http.StatusBadRequest, "invalid_client_metadata")

	w, m = ts.do("POST", "/oauth/register", "runtime-token-value", "application/json", good)
	assertOAuthJSON(t, w, m, http.StatusCreated, "")
	c, err := ts.store.Client(ctx, m["client_id"].(string))
	if err != nil || c.Origin != storage.OriginInitialAccessToken || c.Reapable() {
		t.Fatalf("client of a run-time token: %+v %v", c, err)
	}
	tokens, err := ts.store.InitialAccessTokens(ctx)
	if err != nil || len(tokens) != 1 || tokens[0].Uses != 1 {
		t.Fatalf("uses: %+v %v", tokens, err)
	}

	before := ts.clientCount()
	for _, token := range []string{"runtime-token-value", "not-a-token", ""} {
		w, m = ts.do("POST", "/oauth/register", token, "application/json", good)
		assertOAuthJSON(t, w, m, http.StatusUnauthorized, "invalid_token")
	}
	if n := ts.clientCount(); n != before {
		t.Fatalf("refused registrations stored %d clients", n-before)
	}

	w, m = ts.do("POST", "/oauth/register", "static-token-value", "application/json", good)
	assertOAuthJSON(t, w, m, http.StatusCreated, "")
	if c, err := ts.store.Client(ctx, m["client_id"].(string)); err != nil || c.Origin != storage.OriginInitialAccessToken {
		t.Fatalf("client of the static token: %+v %v", c, err)
	}

	// Open registration: no token makes a dynamic client.
	open := newTestServer(t, Config{})
	m = open.register(good)
	if c, err := open.store.Client(ctx, m["client_id"].(string)); err != nil || c.Origin != storage.OriginDynamic || !c.Reapable() {
		t.Fatalf("client of open registration: %+v %v", c, err)
	}
}

// countingStore counts ReapClients calls.
type countingStore struct {
	storage.Store
	reaps atomic.Int32
}

func (c *countingStore) ReapClients(ctx context.Context, p storage.ReapPolicy) ([]storage.ClientPosition, error) {
	c.reaps.Add(1)
	return c.Store.ReapClients(ctx, p)
}

// At max_clients, a reap that freed nothing is not tried again for a
// minute: each refused registration would otherwise read every client.
func TestMaxClientsPausesReapingAfterNothingFreed(t *testing.T) {
	ts := newTestServer(t, Config{Limits: Limits{MaxClients: 1}})
	counting := &countingStore{Store: ts.srv.store}
	ts.srv.store = counting
	body := `{"grant_types":["client_credentials"]}`
	first := ts.register(body)["client_id"].(string)
	registered := ts.clock

	refused := func(when string) {
		t.Helper()
		w, m := ts.do("POST", "/oauth/register", "", "application/json", body)
		assertOAuthJSON(t, w, m, http.StatusServiceUnavailable, "temporarily_unavailable")
		if n := ts.clientCount(); n != 1 {
			t.Fatalf("%s: %d clients", when, n)
		}
	}
	// Too young to reap: the pass frees nothing, and the next ones in
	// the minute after it do not run.
	ts.clock = registered.Add(maxClientsReapAge - 30*time.Second)
	refused("first refusal")
	for range 5 {
		refused("refused again")
	}
	if n := counting.reaps.Load(); n != 1 {
		t.Fatalf("%d reap passes, want 1", n)
	}
	// Old enough now, but within the pause: still refused, no pass.
	ts.clock = registered.Add(maxClientsReapAge + 10*time.Second)
	refused("within the pause")
	if n := counting.reaps.Load(); n != 1 {
		t.Fatalf("%d reap passes within the pause, want 1", n)
	}
	// After it, the pass runs and makes room.
	ts.clock = registered.Add(maxClientsReapAge + 31*time.Second)
	w, m := ts.do("POST", "/oauth/register", "", "application/json", body)
	assertOAuthJSON(t, w, m, http.StatusCreated, "")
	if _, err := ts.store.Client(t.Context(), first); err == nil {
		t.Error("the unused client was not reaped")
	}
	if n := counting.reaps.Load(); n != 2 {
		t.Fatalf("%d reap passes, want 2", n)
	}
}
