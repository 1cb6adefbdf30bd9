package handlers

import (
	"fmt"
	"testing"
	"time"
)

// cacheTestClaims are claims for the i-th made-up token, valid until exp.
func cacheTestClaims(i int, exp int64) *accessClaims {
	return &accessClaims{Issuer: "http://example.com", Subject: fmt.Sprint("sub", i), Audience: audience{"http://example.com"},
		Expiry: exp, ID: fmt.Sprint("jti", i), ClientID: fmt.Sprint("client", i), Scope: "read"}
}

// cacheTestToken is a string shaped like a token, for the cache alone.
func cacheTestToken(i int) string { return fmt.Sprintf("header.payload%d.signature%d", i, i) }

// fill caches tokens from to to-1, and returns how many of them are cached.
func fill(c *tokenCache, from, to int, now int64) {
	for i := from; i < to; i++ {
		k := c.key(cacheTestToken(i))
		c.put(&k, cacheTestClaims(i, now+3600), now)
	}
}

func cached(c *tokenCache, i int) bool {
	k := c.key(cacheTestToken(i))
	_, ok := c.get(&k)
	return ok
}

// The cache holds no more than it was asked to, and the tokens in use
// survive a flood of tokens seen once (a scan, or clients that take a new
// token per call): they are what eviction keeps.
func TestTokenCacheKeepsTokensInUse(t *testing.T) {
	const size = 6400
	c := newTokenCache()
	defer c.want(size)()
	now := time.Now().Unix()
	fill(c, 0, size/2, now)
	for range 2 {
		for i := range size / 2 {
			if !cached(c, i) {
				t.Fatalf("token %d missing before any eviction", i)
			}
		}
	}
	fill(c, size, 10*size, now) // nine times the size, each used once
	kept := 0
	for i := range size / 2 {
		if cached(c, i) {
			kept++
		}
	}
	if kept < size/2*95/100 {
		t.Errorf("%d of the %d tokens in use kept after the flood, want at least 95%%", kept, size/2)
	}
	entries := 0
	for i := range c.shards {
		entries += len(c.shards[i].m)
	}
	if entries > size+tokenCacheShards {
		t.Errorf("%d entries in a cache of %d", entries, size)
	}
}

// The claims given back are the ones cached, also once compacted, and the
// copy shares nothing the caller could change.
func TestTokenCacheEntryIsCompactCopy(t *testing.T) {
	c := newTokenCache()
	defer c.want(10)()
	now := time.Now().Unix()
	in := &accessClaims{Issuer: "http://example.com", Subject: "alice", Audience: audience{"https://a.example", "https://b.example"},
		Expiry: now + 60, IssuedAt: now, NotBefore: now - 1, ID: "jti", ClientID: "client", Scope: "read write",
		Family: "fam", Grant: "gid", Extra: map[string]string{"email": "a@example.com"}}
	want := fmt.Sprintf("%+v", *in)
	k := c.key("h.p.s")
	out := c.put(&k, in, now)
	in.Audience[0], in.Subject = "changed", "changed"
	got, ok := c.get(&k)
	if !ok || got != out {
		t.Fatal("cached claims not found")
	}
	in.Audience[0], in.Subject = "https://a.example", "alice"
	if fmt.Sprintf("%+v", *got) != want {
		t.Errorf("cached %+v\nwant %s", *got, want)
	}
}

// Expired tokens make room first, though they were used (a used token
// that has not expired would stay), and removing one forgets it.
func TestTokenCacheDropsExpired(t *testing.T) {
	const size = 640
	c := newTokenCache()
	defer c.want(size)()
	now := time.Now().Unix()
	for i := range size {
		k := c.key(cacheTestToken(i))
		c.put(&k, cacheTestClaims(i, now+1), now)
		c.get(&k) // used, so only its expiry can drop it
	}
	fill(c, size, 2*size, now+1)
	kept := 0
	for i := range size {
		if cached(c, i) {
			kept++
		}
	}
	// The new tokens do not fall evenly on the shards: a shard that got
	// fewer new ones than it had old ones needed no room.
	if kept > size/5 {
		t.Errorf("%d of %d expired tokens kept", kept, size)
	}
	k := c.key(cacheTestToken(size))
	c.remove(&k)
	if cached(c, size) {
		t.Error("removed token still cached")
	}
}

// The cache is as large as the largest size its users want, and shrinks
// when that user lets go.
func TestTokenCacheSizeIsLargestWanted(t *testing.T) {
	c := newTokenCache()
	releaseSmall := c.want(64)
	releaseLarge := c.want(6400)
	if got := c.shardSize.Load(); got != 100 {
		t.Fatalf("shard size %d, want 100", got)
	}
	releaseLarge()
	if got := c.shardSize.Load(); got != 1 {
		t.Fatalf("shard size %d after the larger let go, want 1", got)
	}
	releaseSmall()
	k := c.key("h.p.s")
	c.put(&k, cacheTestClaims(0, time.Now().Unix()+60), time.Now().Unix())
	if _, ok := c.get(&k); ok {
		t.Error("a cache no one wants still caches")
	}
}

// Every handler on one store uses one cache: a token verified by one gate
// is known to the others.
func TestTokenCacheSharedByStore(t *testing.T) {
	ts := newTestServer(t, Config{})
	other, err := New(t.Context(), ts.store, Config{RegistrationPath: "/oauth/register", Now: ts.srv.now}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if other.tokens != ts.srv.tokens {
		t.Fatal("two handlers on one store have two caches")
	}
	id, secret := ts.machineClient("")
	token := ts.clientCredentialsToken(id, secret, "")
	if status, _ := ts.gated("/api", "Bearer "+token); status != 418 {
		t.Fatalf("gate: %d", status)
	}
	k := other.tokens.key(token)
	if _, ok := other.tokens.get(&k); !ok {
		t.Error("the token one handler verified is not cached for the other")
	}
}
