package handlers

import (
	"crypto/sha256"
	"encoding/binary"
	"hash/maphash"
	"strings"
	"sync"
	"sync/atomic"
)

// DefaultTokenCacheSize is how many verified access tokens a store's
// cache holds when no handler on it sets token_cache_size: enough for
// 100,000 clients calling at once, at about 400-500 bytes each (50 MiB when
// full; a token's entry is the same size whichever handler cached it).
const DefaultTokenCacheSize = 100_000

// tokenCacheShards splits the cache so that requests for different tokens
// take different locks: there is no lock common to every request.
const tokenCacheShards = 64

// tokenCache keeps the claims of access tokens whose signature was
// already verified, so a token costs one signature check, not one per
// request. It belongs to the store (see cacheFor): every dcr handler on
// one store shares it, so a token verified by one gate is known to the
// others. An entry is used only until the token's exp; revocation is
// checked on every request, outside the cache.
//
// Each shard evicts with S3-FIFO (Yang et al., SOSP 2023): a new token
// enters a small queue, a tenth of the shard, and moves on to the main
// queue only if it was used again meanwhile; the ids of those that were
// not are remembered for a while (a ghost queue), so that one coming back
// goes straight to the main queue. The main queue is a CLOCK: an entry
// used since the hand last passed stays. Tokens in use are kept, and a
// burst of tokens presented once (a scan, or a client that takes a new
// token per call) passes through the small queue without pushing them
// out, where LRU would flush them all. A hit only reads under its shard's
// read lock and sets a counter on the entry.
//
// Nothing in it can give a token back. An entry is keyed by the SHA-256 of
// the token's signature segment (86 characters for ES256, 342 for RS256,
// where hashing the whole ES256 token, about 450, would be the gate's
// largest cost; an RS256 signature, deterministic, still differs with the
// signed text, which holds a fresh jti), and bound to the
// whole token by a 64-bit maphash under a seed drawn at start: a string
// that carries a known signature with another header or payload misses
// the cache and goes to full verification, and without the seed no one
// can make another string that hashes the same.
type tokenCache struct {
	seed   maphash.Seed
	shards [tokenCacheShards]tokenShard
	// shardSize is the capacity of each shard: the largest size wanted
	// by a handler on the store, divided among the shards.
	shardSize atomic.Int64

	mu    sync.Mutex
	wants map[*int]struct{} // one per handler using the cache
}

type tokenShard struct {
	mu    sync.RWMutex
	m     map[uint64]*cacheEntry // by the key's id
	small fifo[*cacheEntry]
	main  fifo[*cacheEntry]
	// ghost holds the ids of the entries dropped from the small queue
	// unused, oldest first in ghosts.
	ghost  map[uint64]struct{}
	ghosts fifo[uint64]
	_      [64]byte // keeps neighbouring shards' locks off one cache line
}

// cacheEntry is one verified token. Its claims are compact: every string
// in them is a piece of one allocation, and a single audience is held in
// the entry itself.
type cacheEntry struct {
	key    tokenKey
	used   atomic.Int32 // uses since it entered its queue or the hand passed, at most 3
	gone   bool         // removed from the map; dropped when its queue reaches it
	aud    [1]string
	claims accessClaims
}

// tokenKey is a token's place in the cache.
type tokenKey struct {
	sig   [sha256.Size]byte
	whole uint64
}

// id is the map key of k: part of the signature's hash. Two tokens with
// the same id (about one chance in 10^10 among 100,000) only evict each
// other: an entry is used only when its whole key matches.
func (k *tokenKey) id() uint64 { return binary.LittleEndian.Uint64(k.sig[8:]) }

func (k *tokenKey) shard() int { return int(k.sig[0]) % tokenCacheShards }

func newTokenCache() *tokenCache {
	c := &tokenCache{seed: maphash.MakeSeed(), wants: map[*int]struct{}{}}
	for i := range c.shards {
		c.shards[i].m = map[uint64]*cacheEntry{}
		c.shards[i].ghost = map[uint64]struct{}{}
	}
	return c
}

// want makes the cache hold at least size entries until release is
// called: the cache is as large as the largest size its users want.
func (c *tokenCache) want(size int) (release func()) {
	w := &size
	c.mu.Lock()
	c.wants[w] = struct{}{}
	c.resize()
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		delete(c.wants, w)
		c.resize()
		c.mu.Unlock()
	}
}

// resize sets the shards' capacity; callers hold c.mu. A smaller size
// takes effect as entries are added.
func (c *tokenCache) resize() {
	largest := 0
	for w := range c.wants {
		largest = max(largest, *w)
	}
	c.shardSize.Store(int64((largest + tokenCacheShards - 1) / tokenCacheShards))
}

func (c *tokenCache) key(token string) tokenKey {
	sig := token[strings.LastIndexByte(token, '.')+1:]
	return tokenKey{sig: sha256Of(sig), whole: maphash.String(c.seed, token)}
}

// sha256Of hashes s without allocating a copy of it when it is no longer
// than a token's signed part usually is (sha256.Sum256([]byte(s)) would).
func sha256Of(s string) [sha256.Size]byte {
	var buf [1024]byte
	if len(s) > len(buf) {
		return sha256.Sum256([]byte(s))
	}
	n := copy(buf[:], s)
	return sha256.Sum256(buf[:n])
}

// get returns the claims cached for k.
func (c *tokenCache) get(k *tokenKey) (*accessClaims, bool) {
	s := &c.shards[k.shard()]
	s.mu.RLock()
	e := s.m[k.id()]
	s.mu.RUnlock()
	if e == nil || e.key != *k {
		return nil, false
	}
	if u := e.used.Load(); u < 3 {
		e.used.Store(u + 1) // a lost update among racing hits does no harm
	}
	return &e.claims, true
}

// put caches the claims of a token just verified, at the unix time now
// (entries of expired tokens are dropped first when room is needed), and
// returns the cached copy.
func (c *tokenCache) put(k *tokenKey, claims *accessClaims, now int64) *accessClaims {
	size := int(c.shardSize.Load())
	if size <= 0 {
		return claims
	}
	e := newCacheEntry(k, claims)
	s := &c.shards[k.shard()]
	id := k.id()
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.m[id]; old != nil {
		if old.key == *k {
			return &old.claims // verified twice at once
		}
		old.gone = true
	}
	for s.small.len()+s.main.len() >= size {
		s.evict(size, now)
	}
	s.m[id] = e
	if _, ok := s.ghost[id]; ok {
		delete(s.ghost, id)
		s.main.push(e)
	} else {
		s.small.push(e)
	}
	return &e.claims
}

// evict drops one entry, or moves one on (S3-FIFO). Entries already
// removed, and those of expired tokens, are dropped wherever they are.
func (s *tokenShard) evict(size int, now int64) {
	// The main queue's oldest entry goes first if its token expired:
	// tokens have one lifetime, so in either queue the oldest are the
	// first to expire, and a used token past its exp is worth nothing.
	if s.main.len() > 0 {
		if e := s.main.peek(); e.gone || e.claims.Expiry <= now {
			s.drop(s.main.pop())
			return
		}
	}
	smallSize := max(size/10, 1)
	if s.small.len() >= smallSize || s.main.len() == 0 {
		e := s.small.pop()
		switch {
		case e.gone:
		case e.claims.Expiry <= now:
			s.drop(e)
		case e.used.Load() > 0:
			e.used.Store(0)
			s.main.push(e)
		default:
			s.drop(e)
			id := e.key.id()
			s.ghost[id] = struct{}{}
			s.ghosts.push(id)
			for s.ghosts.len() > size {
				delete(s.ghost, s.ghosts.pop())
			}
		}
		return
	}
	e := s.main.pop()
	switch u := e.used.Load(); {
	case e.gone:
	case e.claims.Expiry <= now:
		s.drop(e)
	case u > 0:
		e.used.Store(u - 1)
		s.main.push(e)
	default:
		s.drop(e)
	}
}

func (s *tokenShard) drop(e *cacheEntry) {
	e.gone = true
	if id := e.key.id(); s.m[id] == e {
		delete(s.m, id)
	}
}

// remove forgets k (an expired token); its queue drops it later.
func (c *tokenCache) remove(k *tokenKey) {
	s := &c.shards[k.shard()]
	s.mu.Lock()
	if e := s.m[k.id()]; e != nil && e.key == *k {
		s.drop(e)
	}
	s.mu.Unlock()
}

// newCacheEntry copies claims into one entry whose strings share a single
// allocation: the decoded claims are about ten allocations, each rounded
// up to its size class, and would be scanned apart by the garbage
// collector.
func newCacheEntry(k *tokenKey, c *accessClaims) *cacheEntry {
	e := &cacheEntry{key: *k, claims: *c}
	fields := [...]*string{&e.claims.Issuer, &e.claims.Subject, &e.claims.ID, &e.claims.ClientID,
		&e.claims.Scope, &e.claims.Family, &e.claims.Grant}
	n := 0
	for _, f := range fields {
		n += len(*f)
	}
	for _, a := range c.Audience {
		n += len(a)
	}
	var b strings.Builder
	b.Grow(n)
	for _, f := range fields {
		b.WriteString(*f)
	}
	for _, a := range c.Audience {
		b.WriteString(a)
	}
	all, i := b.String(), 0
	next := func(l int) string {
		i += l
		return all[i-l : i]
	}
	for _, f := range fields {
		*f = next(len(*f))
	}
	if len(c.Audience) == 1 {
		e.claims.Audience = e.aud[:]
	} else {
		e.claims.Audience = make(audience, len(c.Audience))
	}
	for j, a := range c.Audience {
		e.claims.Audience[j] = next(len(a))
	}
	return e
}

// fifo is a queue; popping an empty one panics.
type fifo[T any] struct {
	items []T
	head  int
}

func (q *fifo[T]) len() int { return len(q.items) - q.head }

func (q *fifo[T]) peek() T { return q.items[q.head] }

func (q *fifo[T]) push(v T) { q.items = append(q.items, v) }

func (q *fifo[T]) pop() T {
	v := q.items[q.head]
	var zero T
	q.items[q.head] = zero
	q.head++
	// Once half the slice is spent, the rest moves to its front: each
	// item is moved at most once per time it is pushed, on average.
	if q.head >= 32 && q.head*2 >= len(q.items) {
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	return v
}
