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
)

func TestRateLimiterBucket(t *testing.T) {
	start := time.Unix(1_700_000_000, 0)
	exempt := []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}
	for _, tc := range []struct {
		name   string
		addrs  []string      // one request each, all at start
		later  time.Duration // then one more from the last address, this much later
		want   bool
		waitAt time.Duration // the Retry-After expected when refused
	}{
		{"burst is served", []string{"192.0.2.1", "192.0.2.1", "192.0.2.1"}, 0, true, 0},
		{"past the burst is refused", []string{"192.0.2.1", "192.0.2.1", "192.0.2.1", "192.0.2.1"}, 0, false, 20 * time.Second},
		{"a refill brings one back", []string{"192.0.2.1", "192.0.2.1", "192.0.2.1", "192.0.2.1"}, 20 * time.Second, true, 0},
		{"half a refill is not enough", []string{"192.0.2.1", "192.0.2.1", "192.0.2.1", "192.0.2.1"}, 10 * time.Second, false, 10 * time.Second},
		{"addresses have their own buckets", []string{"192.0.2.1", "192.0.2.1", "192.0.2.1", "192.0.2.2"}, 0, true, 0},
		{"an IPv6 /64 shares one bucket", []string{"2001:db8::1", "2001:db8::2", "2001:db8::3", "2001:db8::ffff"}, 0, false, 20 * time.Second},
		{"another /64 does not", []string{"2001:db8::1", "2001:db8::2", "2001:db8::3", "2001:db8:0:1::1"}, 0, true, 0},
		{"an IPv4-mapped address is its IPv4 address", []string{"192.0.2.1", "::ffff:192.0.2.1", "192.0.2.1", "::ffff:192.0.2.1"}, 0, false, 20 * time.Second},
		{"exempt addresses are not limited", []string{"203.0.113.9", "203.0.113.9", "203.0.113.9", "203.0.113.9", "203.0.113.9"}, 0, true, 0},
		{"an IPv4-mapped exempt address is exempt", []string{"::ffff:203.0.113.9", "::ffff:203.0.113.9", "::ffff:203.0.113.9", "::ffff:203.0.113.9"}, 0, true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newRateLimiter(3, time.Minute, exempt) // one token per 20 s
			var ok bool
			var wait time.Duration
			for i, a := range tc.addrs {
				at := start
				if i == len(tc.addrs)-1 {
					at = start.Add(tc.later)
				}
				ok, wait = l.allow(netip.MustParseAddr(a), at)
			}
			if ok != tc.want || wait != tc.waitAt {
				t.Fatalf("allowed %v, wait %s; want %v, %s", ok, wait, tc.want, tc.waitAt)
			}
		})
	}
}

// Strangers create buckets, so the table stays bounded however many
// addresses come; an address whose bucket was dropped only gets a fresh
// burst.
func TestRateLimiterTableIsBounded(t *testing.T) {
	l := newRateLimiter(2, time.Hour, nil)
	now := time.Unix(1_700_000_000, 0)
	for i := range 3 * maxLimitBuckets {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		if ok, _ := l.allow(a, now); !ok {
			t.Fatalf("first request of %s refused", a)
		}
		now = now.Add(time.Millisecond)
	}
	if n := len(l.buckets); n > maxLimitBuckets {
		t.Fatalf("%d buckets, cap %d", n, maxLimitBuckets)
	}
	// Once they have refilled, a sweep drops them all at the next new
	// address.
	now = now.Add(2 * time.Hour)
	l.allow(netip.MustParseAddr("192.0.2.1"), now)
	if n := len(l.buckets); n != 1 {
		t.Fatalf("%d buckets after every other one refilled, want 1", n)
	}
}

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
		if ok, _ := old.limiter.allow(addr, now); !ok {
			t.Fatal("refused within the burst")
		}
	}
	// A reload: the new config is provisioned before the old one closes.
	reloaded := newServer(limits)
	old.Close()
	if ok, _ := reloaded.limiter.allow(addr, now); ok {
		t.Error("a reload gave a fresh burst")
	}
	exempting := newServer(Limits{RegistrationBurst: 2, RegistrationWindow: time.Minute,
		RegistrationExempt: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}})
	if ok, _ := exempting.limiter.allow(addr, now); !ok {
		t.Error("a handler's own exemption was not applied")
	}
	if reloaded.limiter.limitTable != exempting.limiter.limitTable {
		t.Error("two handlers with one burst and window have separate buckets")
	}
	other := newServer(Limits{RegistrationBurst: 3, RegistrationWindow: time.Minute})
	if ok, _ := other.limiter.allow(addr, now); !ok {
		t.Error("another burst shares the buckets of the first")
	}
	for _, s := range []*Server{reloaded, exempting, other} {
		s.Close()
	}
	if n := len(limitTablesOf(store).m); n != 0 {
		t.Errorf("%d tables kept after every Server closed", n)
	}
}
