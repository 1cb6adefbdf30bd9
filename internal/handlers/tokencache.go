package handlers

import (
	"crypto/sha256"
	"hash/maphash"
	"strings"
	"sync"
)

// defaultTokenCacheSize bounds the verified tokens kept in memory per
// handler: about 1 KiB each.
const defaultTokenCacheSize = 10000

// tokenCache keeps the claims of access tokens whose signature was already
// verified, so a token costs one signature check, not one per request. It
// holds at most max entries, evicting an arbitrary one when full (Go's map
// iteration order is random), as Caddy's basic_auth cache does. An entry is
// used only until the token's exp; revocation is checked on every request,
// outside the cache.
//
// Nothing in it can give a token back. An entry is keyed by the SHA-256 of
// the token's signature segment (86 characters, where hashing the whole
// token, about 450, was the gate's largest cost), and bound to the whole
// token by a 64-bit maphash under a seed drawn at start: a string that
// carries a known signature with another header or payload misses the
// cache and goes to full verification, and without the seed no one can
// make another string that hashes the same.
type tokenCache struct {
	seed maphash.Seed
	mu   sync.RWMutex
	m    map[[sha256.Size]byte]cachedToken
	max  int
}

type cachedToken struct {
	claims *accessClaims
	whole  uint64 // maphash of the whole token
}

// tokenKey is a token's place in the cache.
type tokenKey struct {
	sig   [sha256.Size]byte
	whole uint64
}

func newTokenCache(max int) *tokenCache {
	return &tokenCache{seed: maphash.MakeSeed(), m: make(map[[sha256.Size]byte]cachedToken), max: max}
}

func (c *tokenCache) key(token string) tokenKey {
	sig := token[strings.LastIndexByte(token, '.')+1:]
	return tokenKey{sig: sha256.Sum256([]byte(sig)), whole: maphash.String(c.seed, token)}
}

func (c *tokenCache) get(k tokenKey) (*accessClaims, bool) {
	c.mu.RLock()
	e, ok := c.m[k.sig]
	c.mu.RUnlock()
	if !ok || e.whole != k.whole {
		return nil, false
	}
	return e.claims, true
}

func (c *tokenCache) put(k tokenKey, claims *accessClaims) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		for old := range c.m {
			delete(c.m, old)
			break
		}
	}
	c.m[k.sig] = cachedToken{claims: claims, whole: k.whole}
}

func (c *tokenCache) remove(k tokenKey) {
	c.mu.Lock()
	if e, ok := c.m[k.sig]; ok && e.whole == k.whole {
		delete(c.m, k.sig)
	}
	c.mu.Unlock()
}
