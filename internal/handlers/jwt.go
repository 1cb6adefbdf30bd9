package handlers

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/caddy-dcr/caddy-dcr/storage"
)

// Access tokens are JWTs in the profile of RFC 9068, signed with ES256
// (ECDSA on P-256 with SHA-256, RFC 7518 §3.4): supported by every JOSE
// library a resource server might use to verify them from the JWKS.
const (
	jwtAlg = "ES256"
	jwtTyp = "at+jwt"
	// maxTokenLen bounds what the parser reads of a presented token.
	maxTokenLen = 8 << 10
)

// accessClaims are the claims of an access token (RFC 9068 §2.2).
type accessClaims struct {
	Issuer   string   `json:"iss"`
	Subject  string   `json:"sub"`
	Audience audience `json:"aud"`
	Expiry   int64    `json:"exp"`
	IssuedAt int64    `json:"iat"`
	ID       string   `json:"jti"`
	ClientID string   `json:"client_id"`
	Scope    string   `json:"scope,omitempty"`
	// NotBefore is the time before which the token must not be accepted
	// (RFC 7519 §4.1.5); 0 when absent.
	NotBefore int64 `json:"nbf,omitempty"`
	// Family links a token issued from a refresh token to that token's
	// family, so revoking the family revokes it.
	Family string `json:"fam,omitempty"`
	// Grant links a token to the person's grant it was issued under, so
	// revoking the grant revokes it.
	Grant string `json:"gid,omitempty"`
	// Extra holds operator-defined claims.
	Extra map[string]string `json:"-"`
}

// audience is the aud claim: one string, or an array of them (RFC 7519
// §4.1.3). It is written as a string when it has one value.
type audience []string

func (a audience) MarshalJSON() ([]byte, error) {
	if len(a) == 1 {
		return json.Marshal(a[0])
	}
	return json.Marshal([]string(a))
}

func (a *audience) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*a = audience{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("aud is neither a string nor an array of strings")
	}
	*a = many
	return nil
}

type claimFields accessClaims

// reservedClaims are the members an access token and an introspection
// answer (RFC 7662 §2.2) set themselves.
var reservedClaims = []string{"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "client_id", "scope", "cnf", "fam", "gid",
	"active", "token_type", "username"}

// IsReservedClaim reports whether an operator's extra claim may not be
// called name because tokens or introspection answers already use it. The
// comparison ignores case: encoding/json matches member names to struct
// fields regardless of case, so a claim "Scope" would otherwise overwrite
// the token's scope when the gate decodes it.
func IsReservedClaim(name string) bool {
	return slices.ContainsFunc(reservedClaims, func(r string) bool { return strings.EqualFold(r, name) })
}

// MarshalJSON writes the registered claims, then the extra claims.
func (c accessClaims) MarshalJSON() ([]byte, error) {
	return marshalWithExtra(claimFields(c), c.Extra)
}

// marshalWithExtra encodes v, an object, followed by the members of extra
// (which must not repeat v's).
func marshalWithExtra(v any, extra map[string]string) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil || len(extra) == 0 {
		return b, err
	}
	e, err := json.Marshal(extra)
	if err != nil {
		return nil, err
	}
	return storage.JoinObjects(b, e), nil
}

// UnmarshalJSON reads the registered claims and keeps other string claims
// in Extra.
func (c *accessClaims) UnmarshalJSON(b []byte) error {
	var f claimFields
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	var all map[string]any
	if err := json.Unmarshal(b, &all); err != nil {
		return err
	}
	for k := range all {
		if IsReservedClaim(k) {
			delete(all, k)
		}
	}
	for k, v := range all {
		if s, ok := v.(string); ok {
			if f.Extra == nil {
				f.Extra = map[string]string{}
			}
			f.Extra[k] = s
		}
	}
	*c = accessClaims(f)
	return nil
}

type signingKey struct {
	id     string
	priv   *ecdsa.PrivateKey
	header string // the encoded JOSE header, the same for every token
	// idHeader is the header of ID tokens: typ JWT, never at+jwt, so that
	// an ID token is never accepted as an access token (parseJWT).
	idHeader string
}

// keyRing holds the signing keys: the newest signs, all verify. Keys live
// in the store, so every handler on one database signs with the same key
// and a restart keeps them.
type keyRing struct {
	store       storage.Store
	now         func() time.Time
	rotateAfter time.Duration // a key signs for this long
	retainFor   time.Duration // then verifies for this long (the token lifetime)

	mu         sync.RWMutex
	current    *signingKey
	created    time.Time
	public     map[string]*ecdsa.PublicKey
	jwks       []byte
	lastReload time.Time
}

func newKeyRing(ctx context.Context, store storage.Store, now func() time.Time, rotateAfter, retainFor time.Duration) (*keyRing, error) {
	k := &keyRing{store: store, now: now, rotateAfter: rotateAfter, retainFor: retainFor}
	if err := k.reload(ctx, true); err != nil {
		return nil, err
	}
	return k, nil
}

// reload reads the keys from the store; with rotate, it first retires
// keys no live token can carry and makes a new key when the newest is too
// old. Callers hold no lock.
func (k *keyRing) reload(ctx context.Context, rotate bool) error {
	keys, err := k.store.SigningKeys(ctx)
	if err != nil {
		return fmt.Errorf("reading signing keys: %w", err)
	}
	now := k.now()
	if rotate {
		var kept []*storage.SigningKey
		for i, sk := range keys {
			// A key that stopped signing longer ago than the token
			// lifetime has no live token left.
			retiredAt := now
			if i+1 < len(keys) {
				retiredAt = time.Unix(keys[i+1].CreatedAt, 0)
			}
			if i+1 < len(keys) && now.Sub(retiredAt) > k.retainFor+time.Minute {
				if err := k.store.DeleteSigningKey(ctx, sk.ID); err != nil {
					return fmt.Errorf("deleting retired signing key: %w", err)
				}
				continue
			}
			kept = append(kept, sk)
		}
		keys = kept
		if len(keys) == 0 || now.Sub(time.Unix(keys[len(keys)-1].CreatedAt, 0)) >= k.rotateAfter {
			priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				return err
			}
			raw, err := priv.Bytes()
			if err != nil {
				return err
			}
			sk := &storage.SigningKey{ID: randomString(12), Private: raw, CreatedAt: now.Unix()}
			// Of several instances rotating at once, one stores its
			// key; the others take it. The condition is "no key newer
			// than the newest this instance read": a threshold computed
			// from the clock would, in whole seconds, disagree with the
			// test above for up to a second.
			var newerThan int64
			if len(keys) > 0 {
				newerThan = keys[len(keys)-1].CreatedAt + 1
			}
			added, err := k.store.AddSigningKey(ctx, sk, newerThan)
			if err != nil {
				return fmt.Errorf("storing signing key: %w", err)
			}
			if added {
				keys = append(keys, sk)
			} else if keys, err = k.store.SigningKeys(ctx); err != nil {
				return fmt.Errorf("reading signing keys: %w", err)
			}
		}
	}
	if len(keys) == 0 {
		return errors.New("no signing key")
	}
	public := make(map[string]*ecdsa.PublicKey, len(keys))
	type jwk struct {
		Kty string `json:"kty"`
		Crv string `json:"crv"`
		X   string `json:"x"`
		Y   string `json:"y"`
		Kid string `json:"kid"`
		Use string `json:"use"`
		Alg string `json:"alg"`
	}
	set := struct {
		Keys []jwk `json:"keys"`
	}{}
	var current *signingKey
	for _, sk := range keys {
		priv, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), sk.Private)
		if err != nil {
			return fmt.Errorf("signing key %s: %w", sk.ID, err)
		}
		point, err := priv.PublicKey.Bytes() // 0x04 || X || Y
		if err != nil {
			return err
		}
		public[sk.ID] = &priv.PublicKey
		set.Keys = append(set.Keys, jwk{Kty: "EC", Crv: "P-256", Kid: sk.ID, Use: "sig", Alg: jwtAlg,
			X: base64.RawURLEncoding.EncodeToString(point[1:33]),
			Y: base64.RawURLEncoding.EncodeToString(point[33:65])})
		header, _ := json.Marshal(map[string]string{"alg": jwtAlg, "kid": sk.ID, "typ": jwtTyp})
		idHeader, _ := json.Marshal(map[string]string{"alg": jwtAlg, "kid": sk.ID, "typ": "JWT"})
		current = &signingKey{id: sk.ID, priv: priv, header: base64.RawURLEncoding.EncodeToString(header),
			idHeader: base64.RawURLEncoding.EncodeToString(idHeader)}
	}
	jwks, err := json.Marshal(set)
	if err != nil {
		return err
	}
	k.mu.Lock()
	k.current, k.created = current, time.Unix(keys[len(keys)-1].CreatedAt, 0)
	k.public, k.jwks, k.lastReload = public, jwks, now
	k.mu.Unlock()
	return nil
}

// sign encodes and signs claims as a JWT with the current key, rotating the
// key first when it has signed long enough.
func (k *keyRing) sign(ctx context.Context, c *accessClaims) (string, error) {
	payload, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	return k.signPayload(ctx, payload, false)
}

// signPayload signs payload, a JSON object, as a JWT with the current key:
// with the ID token header when idToken is set, else the access token's.
func (k *keyRing) signPayload(ctx context.Context, payload []byte, idToken bool) (string, error) {
	k.mu.RLock()
	key, created := k.current, k.created
	k.mu.RUnlock()
	if k.now().Sub(created) >= k.rotateAfter {
		if err := k.reload(ctx, true); err != nil {
			return "", err
		}
		k.mu.RLock()
		key = k.current
		k.mu.RUnlock()
	}
	header := key.header
	if idToken {
		header = key.idHeader
	}
	var b strings.Builder
	b.Grow(len(header) + len(payload)*4/3 + 90)
	b.WriteString(header)
	b.WriteByte('.')
	b.WriteString(base64.RawURLEncoding.EncodeToString(payload))
	digest := sha256.Sum256([]byte(b.String()))
	r, s, err := ecdsa.Sign(rand.Reader, key.priv, digest[:])
	if err != nil {
		return "", err
	}
	// (r, n-s) verifies as well as (r, s); parseJWT accepts only the
	// low one, so every token has a single signature.
	if s.Cmp(p256HalfOrder) > 0 {
		s.Sub(elliptic.P256().Params().N, s)
	}
	var sig [64]byte
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	b.WriteByte('.')
	b.WriteString(base64.RawURLEncoding.EncodeToString(sig[:]))
	return b.String(), nil
}

// p256HalfOrder is n/2 for P-256: an ECDSA signature's s must not exceed it.
var p256HalfOrder = new(big.Int).Rsh(elliptic.P256().Params().N, 1)

// jwtEncoding decodes a JWS segment: base64url with no padding and no
// stray bits after the last byte (RFC 7515 §2). With the alphabet check in
// isBase64URL, a token has exactly one spelling.
var jwtEncoding = base64.RawURLEncoding.Strict()

// errBadToken is every reason a presented token is not ours or not intact.
var errBadToken = errors.New("malformed or unverifiable token")

// verify checks a JWT's header and signature and returns its claims. It
// checks nothing about the claims' values; the caller does.
func (k *keyRing) verify(ctx context.Context, token string) (*accessClaims, error) {
	c, err := parseJWT(token, func(kid string) *ecdsa.PublicKey { return k.publicKey(ctx, kid) })
	if err != nil {
		return nil, err
	}
	return c, nil
}

// publicKey returns the verification key with the given id. An unknown id
// may be a key another handler on the same database just made, so the
// ring is reloaded, at most once a second.
func (k *keyRing) publicKey(ctx context.Context, kid string) *ecdsa.PublicKey {
	k.mu.RLock()
	pub, ok := k.public[kid]
	stale := k.now().Sub(k.lastReload) > time.Second
	k.mu.RUnlock()
	if ok || !stale {
		return pub
	}
	if err := k.reload(ctx, false); err != nil {
		return nil
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.public[kid]
}

func (k *keyRing) jwksJSON() []byte {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.jwks
}

// parseJWT parses a compact JWS (RFC 7515 §7.1), accepts only our header
// (alg ES256, typ at+jwt, a known kid, no crit) and a valid low-S
// signature, and decodes the claims. It never trusts the alg the token
// names for anything but refusing it. Each segment must be canonical
// base64url and the header and claims I-JSON (RFC 7493), so that every
// verifier reads a token we accept the way we do.
func parseJWT(token string, keyFor func(kid string) *ecdsa.PublicKey) (*accessClaims, error) {
	if len(token) > maxTokenLen {
		return nil, errBadToken
	}
	h, rest, ok := strings.Cut(token, ".")
	if !ok {
		return nil, errBadToken
	}
	p, sig, ok := strings.Cut(rest, ".")
	if !ok || !isBase64URL(h) || !isBase64URL(p) || !isBase64URL(sig) {
		return nil, errBadToken
	}
	rawHeader, err := jwtEncoding.DecodeString(h)
	if err != nil || checkIJSON(rawHeader) != nil {
		return nil, errBadToken
	}
	var header struct {
		Alg  string          `json:"alg"`
		Typ  string          `json:"typ"`
		Kid  string          `json:"kid"`
		Crit json.RawMessage `json:"crit"`
	}
	if err := json.Unmarshal(rawHeader, &header); err != nil {
		return nil, errBadToken
	}
	// RFC 7515 §4.1.11: crit names extensions the verifier must
	// understand; we understand none. RFC 9068 §4: the typ must be at+jwt
	// (application/ may be spelled).
	typ := strings.TrimPrefix(strings.ToLower(header.Typ), "application/")
	if header.Alg != jwtAlg || typ != jwtTyp || header.Kid == "" || header.Crit != nil {
		return nil, errBadToken
	}
	pub := keyFor(header.Kid)
	if pub == nil {
		return nil, errBadToken
	}
	rawSig, err := jwtEncoding.DecodeString(sig)
	if err != nil || len(rawSig) != 64 {
		return nil, errBadToken
	}
	r, s := new(big.Int).SetBytes(rawSig[:32]), new(big.Int).SetBytes(rawSig[32:])
	if s.Cmp(p256HalfOrder) > 0 {
		return nil, errBadToken
	}
	digest := sha256.Sum256([]byte(token[:len(h)+1+len(p)]))
	if !ecdsa.Verify(pub, digest[:], r, s) {
		return nil, errBadToken
	}
	payload, err := jwtEncoding.DecodeString(p)
	if err != nil || checkIJSON(payload) != nil {
		return nil, errBadToken
	}
	var c accessClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, errBadToken
	}
	return &c, nil
}

// isBase64URL reports whether s is non-empty and only the base64url
// alphabet: no padding, and no CR or LF, which encoding/base64 skips.
func isBase64URL(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
