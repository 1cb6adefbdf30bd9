package handlers

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-dcr/caddy-dcr/internal/ratelimit"
)

func TestRegistrationLimitAnswers429(t *testing.T) {
	ts := newTestServer(t, Config{Limits: Limits{
		RegistrationBurst: 2, RegistrationWindow: time.Minute,
		RegistrationExempt: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")},
	}})
	register := func(clientIP string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", "/oauth/register", strings.NewReader(`{"redirect_uris":["https://app.example/cb"]}`))
		r.Header.Set("Content-Type", "application/json")
		// As Caddy sets it, trusted_proxies applied.
		ctx := context.WithValue(r.Context(), caddyhttp.VarsCtxKey, map[string]any{caddyhttp.ClientIPVarKey: clientIP})
		r = r.WithContext(ctx)
		w := httptest.NewRecorder()
		if err := ts.srv.ServeHTTP(w, r, ts.next()); err != nil {
			t.Fatal(err)
		}
		return w
	}
	for range 2 {
		if w := register("192.0.2.7"); w.Code != http.StatusCreated {
			t.Fatalf("within the burst: %d %s", w.Code, w.Body)
		}
	}
	clients, _, _ := ts.store.Clients(t.Context(), "", 100)
	w := register("192.0.2.7")
	assertOAuthJSON(t, w, decodeBody(t, w), http.StatusTooManyRequests, "temporarily_unavailable")
	if ra := w.Header().Get("Retry-After"); ra != "30" {
		t.Errorf("Retry-After %q, want 30", ra)
	}
	after, _, _ := ts.store.Clients(t.Context(), "", 100)
	if len(after) != len(clients) {
		t.Errorf("a refused registration stored a client: %d, then %d", len(clients), len(after))
	}
	// The limit follows Caddy's client IP, not the connection's peer.
	if w := register("192.0.2.8"); w.Code != http.StatusCreated {
		t.Errorf("another client IP: %d", w.Code)
	}
	for range 5 {
		if w := register("198.51.100.20"); w.Code != http.StatusCreated {
			t.Fatalf("exempt address: %d", w.Code)
		}
	}
	// Time refills the bucket.
	ts.clock = ts.clock.Add(30 * time.Second)
	if w := register("192.0.2.7"); w.Code != http.StatusCreated {
		t.Errorf("after a refill: %d", w.Code)
	}
}

// The buckets belong to the store, by burst and window: a config reload
// (a new Server before the old one closes) and a second dcr handler on the
// same store take from the same buckets instead of each giving a fresh
// burst. Exemptions stay each handler's own.
func TestRegistrationLimitIsSharedPerStore(t *testing.T) {
	store := memStore(t)
	limits := Limits{RegistrationBurst: 2, RegistrationWindow: time.Minute}
	now := time.Unix(1_700_000_000, 0)
	newServer := func(l Limits) *Server {
		t.Helper()
		srv, err := New(t.Context(), store, Config{Limits: l, Now: func() time.Time { return now }}.WithDefaults())
		if err != nil {
			t.Fatal(err)
		}
		return srv
	}
	addr := netip.MustParseAddr("192.0.2.7")
	old := newServer(limits)
	for range 2 {
		if ok, _ := old.limiter.Allow(addr, now); !ok {
			t.Fatal("refused within the burst")
		}
	}
	// A reload: the new config is provisioned before the old one closes.
	reloaded := newServer(limits)
	old.Close()
	if ok, _ := reloaded.limiter.Allow(addr, now); ok {
		t.Error("a reload gave a fresh burst")
	}
	exempting := newServer(Limits{RegistrationBurst: 2, RegistrationWindow: time.Minute,
		RegistrationExempt: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}})
	if ok, _ := exempting.limiter.Allow(addr, now); !ok {
		t.Error("a handler's own exemption was not applied")
	}
	if !reloaded.limiter.SharesWith(exempting.limiter) {
		t.Error("two handlers with one burst and window have separate buckets")
	}
	other := newServer(Limits{RegistrationBurst: 3, RegistrationWindow: time.Minute})
	if ok, _ := other.limiter.Allow(addr, now); !ok {
		t.Error("another burst shares the buckets of the first")
	}
	for _, s := range []*Server{reloaded, exempting, other} {
		s.Close()
	}
	if n := ratelimit.Of(store).Len(); n != 0 {
		t.Errorf("%d tables kept after every Server closed", n)
	}
}
