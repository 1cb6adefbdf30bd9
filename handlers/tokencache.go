package handlers

import (
	"crypto/sha256"
	"sync"
)

// defaultTokenCacheSize bounds the verified tokens kept in memory per
// handler: about 1 KiB each.
const defaultTokenCacheSize = 10000

// tokenCache keeps the claims of access tokens whose signature was already
// verified, so a token costs one signature check, not one per request. It
// is keyed by the SHA-256 of the token, never the token itself, and holds
// at most max entries, evicting an arbitrary one when full (Go's map
// iteration order is random), as Caddy's basic_auth cache does. An entry is
// used only until the token's exp; revocation is checked on every request,
// outside the cache.
type tokenCache struct {
	mu  sync.RWMutex
	m   map[[sha256.Size]byte]*accessClaims
	max int
}

func newTokenCache(max int) *tokenCache {
	return &tokenCache{m: make(map[[sha256.Size]byte]*accessClaims), max: max}
}

func (c *tokenCache) get(key [sha256.Size]byte) (*accessClaims, bool) {
	c.mu.RLock()
	claims, ok := c.m[key]
	c.mu.RUnlock()
	return claims, ok
}

func (c *tokenCache) put(key [sha256.Size]byte, claims *accessClaims) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		for k := range c.m {
			delete(c.m, k)
			break
		}
	}
	c.m[key] = claims
}

func (c *tokenCache) remove(key [sha256.Size]byte) {
	c.mu.Lock()
	delete(c.m, key)
	c.mu.Unlock()
}
