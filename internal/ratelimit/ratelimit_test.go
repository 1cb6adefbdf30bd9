package ratelimit

import (
	"net/netip"
	"testing"
	"time"
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
			l := New(3, time.Minute, exempt) // one token per 20 s
			var ok bool
			var wait time.Duration
			for i, a := range tc.addrs {
				at := start
				if i == len(tc.addrs)-1 {
					at = start.Add(tc.later)
				}
				ok, wait = l.Allow(netip.MustParseAddr(a), at)
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
	l := New(2, time.Hour, nil)
	now := time.Unix(1_700_000_000, 0)
	for i := range 3 * MaxBuckets {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		if ok, _ := l.Allow(a, now); !ok {
			t.Fatalf("first request of %s refused", a)
		}
		now = now.Add(time.Millisecond)
	}
	if n := len(l.buckets); n > MaxBuckets {
		t.Fatalf("%d buckets, cap %d", n, MaxBuckets)
	}
	// Once they have refilled, a sweep drops them all at the next new
	// address.
	now = now.Add(2 * time.Hour)
	l.Allow(netip.MustParseAddr("192.0.2.1"), now)
	if n := len(l.buckets); n != 1 {
		t.Fatalf("%d buckets after every other one refilled, want 1", n)
	}
}

// A Bucket starts full, refuses past its burst, and refills at its rate.
func TestBucket(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	b := NewBucket(3, 3*time.Second) // one token a second
	for i := range 3 {
		if !b.Allow(now) {
			t.Fatalf("take %d of the burst refused", i+1)
		}
	}
	if b.Allow(now) {
		t.Fatal("a take past the burst allowed")
	}
	if b.Allow(now.Add(900 * time.Millisecond)) {
		t.Fatal("allowed before a token came back")
	}
	if !b.Allow(now.Add(1100 * time.Millisecond)) {
		t.Fatal("refused after a token came back")
	}
	if !b.Allow(now.Add(time.Hour)) || !b.Allow(now.Add(time.Hour)) || !b.Allow(now.Add(time.Hour)) || b.Allow(now.Add(time.Hour)) {
		t.Fatal("a long wait refills the burst, not more")
	}
}
