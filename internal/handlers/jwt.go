package handlers

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"math/bits"
	"slices"
	"strconv"
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
	if onlyReservedMembers(b) {
		// The usual token: nothing more to read, and no need to
		// decode it all again into a map.
		*c = accessClaims(f)
		return nil
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

// onlyReservedMembers reports whether b, a valid JSON object, has no
// member but the reserved claims, each spelled exactly (a name with an
// escape, or a case variant, counts as another member).
func onlyReservedMembers(b []byte) bool {
	depth, name := 0, false
	for i := 0; i < len(b); i++ {
		switch c := b[i]; c {
		case '{', '[':
			depth++
			name = c == '{' && depth == 1
		case '}', ']':
			depth--
		case ',':
			name = depth == 1
		case '"':
			j := i + 1
			for ; j < len(b) && b[j] != '"'; j++ {
				if b[j] == '\\' {
					if name {
						return false
					}
					j++
				}
			}
			if name {
				if !slices.ContainsFunc(reservedClaims, func(r string) bool { return string(b[i+1:j]) == r }) {
					return false
				}
				name = false
			}
			i = j
		}
	}
	return true
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
	headers    map[string]*ecdsa.PublicKey // by the encoded header this server writes for the key
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
	headers := make(map[string]*ecdsa.PublicKey, len(keys))
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
		// Only access token headers: an ID token is no access token.
		headers[current.header] = &priv.PublicKey
	}
	jwks, err := json.Marshal(set)
	if err != nil {
		return err
	}
	k.mu.Lock()
	k.current, k.created = current, time.Unix(keys[len(keys)-1].CreatedAt, 0)
	k.public, k.headers, k.jwks, k.lastReload = public, headers, jwks, now
	k.mu.Unlock()
	return nil
}

// sign encodes and signs claims as a JWT with the current key, rotating the
// key first when it has signed long enough.
func (k *keyRing) sign(ctx context.Context, c *accessClaims) (string, error) {
	var buf [512]byte // a token's claims fit: the payload stays on the stack
	payload, err := appendClaims(buf[:0], c)
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
	b := make([]byte, 0, len(header)+1+base64.RawURLEncoding.EncodedLen(len(payload))+1+86)
	b = append(b, header...)
	b = append(b, '.')
	b = base64.RawURLEncoding.AppendEncode(b, payload)
	digest := sha256.Sum256(b)
	// RFC 6979: the nonce is derived from the key and the digest, so
	// signing needs no randomness (a weak source could not leak the key)
	// and skips the SHA-512 DRBG that Go's randomized signatures run,
	// about a quarter of the signing time. Every token's claims hold a
	// fresh random jti, so no two tokens share a message.
	der, err := key.priv.Sign(nil, digest[:], crypto.SHA256)
	if err != nil {
		return "", err
	}
	var sig [64]byte
	if !rawSignature(&sig, der) {
		return "", errors.New("ecdsa returned a malformed signature")
	}
	// (r, n-s) verifies as well as (r, s); parseJWT accepts only the
	// low one, so every token has a single signature.
	if bytes.Compare(sig[32:], p256HalfOrderBytes) > 0 {
		negateModOrder((*[32]byte)(sig[32:]))
	}
	b = append(b, '.')
	b = base64.RawURLEncoding.AppendEncode(b, sig[:])
	return string(b), nil
}

// p256OrderBytes is n, the order of P-256, as 32 big-endian bytes.
var p256OrderBytes = elliptic.P256().Params().N.FillBytes(make([]byte, 32))

// negateModOrder replaces s, a signature's s with 0 < s < n, by n - s, in
// four 64-bit words rather than with math/big, which allocates.
func negateModOrder(s *[32]byte) {
	var borrow uint64
	for i := 24; i >= 0; i -= 8 {
		var d uint64
		d, borrow = bits.Sub64(binary.BigEndian.Uint64(p256OrderBytes[i:]), binary.BigEndian.Uint64(s[i:]), borrow)
		binary.BigEndian.PutUint64(s[i:], d)
	}
}

// rawSignature reads the ASN.1 DER form of a P-256 ECDSA signature into
// r || s, each 32 big-endian bytes.
func rawSignature(rs *[64]byte, der []byte) bool {
	// SEQUENCE { INTEGER r, INTEGER s }, all short enough for one-byte
	// lengths.
	if len(der) < 2 || der[0] != 0x30 || int(der[1]) != len(der)-2 {
		return false
	}
	rest := der[2:]
	for _, half := range [...][]byte{rs[:32], rs[32:]} {
		if len(rest) < 2 || rest[0] != 0x02 || int(rest[1]) > len(rest)-2 {
			return false
		}
		n := int(rest[1])
		v := bytes.TrimLeft(rest[2:2+n], "\x00")
		if len(v) > 32 {
			return false
		}
		copy(half[32-len(v):], v)
		rest = rest[2+n:]
	}
	return len(rest) == 0
}

// appendClaims appends the JSON of c to b, as json.Marshal would write it
// (TestAppendClaimsAsMarshal), without reflection.
func appendClaims(b []byte, c *accessClaims) ([]byte, error) {
	str := func(b []byte, name, v string) []byte {
		b = append(b, ',', '"')
		b = append(b, name...)
		b = append(b, '"', ':')
		return appendJSONString(b, v)
	}
	num := func(b []byte, name string, v int64) []byte {
		b = append(b, ',', '"')
		b = append(b, name...)
		b = append(b, '"', ':')
		return strconv.AppendInt(b, v, 10)
	}
	b = append(b, `{"iss":`...)
	b = appendJSONString(b, c.Issuer)
	b = str(b, "sub", c.Subject)
	b = append(b, `,"aud":`...)
	if len(c.Audience) == 1 {
		b = appendJSONString(b, c.Audience[0])
	} else {
		aud, err := json.Marshal([]string(c.Audience))
		if err != nil {
			return nil, err
		}
		b = append(b, aud...)
	}
	b = num(b, "exp", c.Expiry)
	b = num(b, "iat", c.IssuedAt)
	b = str(b, "jti", c.ID)
	b = str(b, "client_id", c.ClientID)
	if c.Scope != "" {
		b = str(b, "scope", c.Scope)
	}
	if c.NotBefore != 0 {
		b = num(b, "nbf", c.NotBefore)
	}
	if c.Family != "" {
		b = str(b, "fam", c.Family)
	}
	if c.Grant != "" {
		b = str(b, "gid", c.Grant)
	}
	if len(c.Extra) == 0 {
		return append(b, '}'), nil // sorting no keys still allocates
	}
	for _, k := range slices.Sorted(maps.Keys(c.Extra)) {
		b = append(b, ',')
		b = appendJSONString(b, k)
		b = append(b, ':')
		b = appendJSONString(b, c.Extra[k])
	}
	return append(b, '}'), nil
}

// appendJSONString appends s as a JSON string, escaped as json.Marshal
// escapes it.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
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
	// A token this server signed has, byte for byte, the header it
	// wrote for its key: that header needs no decoding.
	if h, p, sig, ok := splitJWT(token); ok {
		k.mu.RLock()
		pub := k.headers[h]
		k.mu.RUnlock()
		if pub != nil {
			return verifyJWT(token, h, p, sig, pub)
		}
	}
	return parseJWT(token, func(kid string) *ecdsa.PublicKey { return k.publicKey(ctx, kid) })
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
	h, p, sig, ok := splitJWT(token)
	if !ok {
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
	return verifyJWT(token, h, p, sig, pub)
}

// splitJWT cuts a compact JWS into its three segments, each of which must
// be base64url.
func splitJWT(token string) (h, p, sig string, ok bool) {
	if len(token) > maxTokenLen {
		return "", "", "", false
	}
	h, rest, ok := strings.Cut(token, ".")
	if !ok {
		return "", "", "", false
	}
	p, sig, ok = strings.Cut(rest, ".")
	if !ok || !isBase64URL(h) || !isBase64URL(p) || !isBase64URL(sig) {
		return "", "", "", false
	}
	return h, p, sig, true
}

// p256HalfOrderBytes is p256HalfOrder as 32 big-endian bytes.
var p256HalfOrderBytes = p256HalfOrder.FillBytes(make([]byte, 32))

// verifyJWT checks the signature of token, whose segments are h, p and sig
// and whose header was accepted with the key pub, and decodes its claims.
// Beyond what ECDSA needs, it allocates only the claims: the signature
// and the signed text are read from the stack.
func verifyJWT(token, h, p, sig string, pub *ecdsa.PublicKey) (*accessClaims, error) {
	var raw [64]byte
	var buf [88]byte // the 86 characters of a 64-byte signature
	if len(sig) != 86 {
		return nil, errBadToken
	}
	copy(buf[:], sig)
	if n, err := jwtEncoding.Decode(raw[:], buf[:len(sig)]); err != nil || n != 64 {
		return nil, errBadToken
	}
	if bytes.Compare(raw[32:], p256HalfOrderBytes) > 0 {
		return nil, errBadToken
	}
	var der [72]byte
	digest := sha256Of(token[:len(h)+1+len(p)])
	if !ecdsa.VerifyASN1(pub, digest[:], derSignature(der[:0], &raw)) {
		return nil, errBadToken
	}
	payload, err := jwtEncoding.DecodeString(p)
	if err != nil || checkIJSON(payload) != nil {
		return nil, errBadToken
	}
	var c accessClaims
	if !decodeOwnClaims(payload, &c) {
		if err := json.Unmarshal(payload, &c); err != nil {
			return nil, errBadToken
		}
	}
	return &c, nil
}

// decodeOwnClaims decodes claims written the way appendClaims writes them
// (members in its order, one audience, no extra claims, no escape in any
// string) into c, with their strings cut from one copy of b; it reports
// false, leaving the rest to encoding/json, for anything else. b has
// passed checkIJSON. TestDecodeOwnClaims holds it to what json.Unmarshal
// reads.
func decodeOwnClaims(b []byte, c *accessClaims) bool {
	all := string(b)
	i := 0
	member := func(name string) bool { // ,"name": (the first without the comma)
		if i > 1 {
			if i >= len(all) || all[i] != ',' {
				return false
			}
			i++
		}
		if len(all)-i < len(name)+3 || all[i] != '"' || all[i+1:i+1+len(name)] != name || all[i+1+len(name)] != '"' ||
			all[i+2+len(name)] != ':' {
			return false
		}
		i += len(name) + 3
		return true
	}
	str := func(v *string) bool {
		if i >= len(all) || all[i] != '"' {
			return false
		}
		end := strings.IndexByte(all[i+1:], '"')
		if end < 0 || strings.IndexByte(all[i+1:i+1+end], '\\') >= 0 {
			return false
		}
		*v = all[i+1 : i+1+end]
		i += end + 2
		return true
	}
	num := func(v *int64) bool {
		j := i
		for j < len(all) && (all[j] == '-' || '0' <= all[j] && all[j] <= '9') {
			j++
		}
		digits := strings.TrimPrefix(all[i:j], "-")
		if len(digits) > 1 && digits[0] == '0' { // not JSON: left to encoding/json to refuse
			return false
		}
		n, err := strconv.ParseInt(all[i:j], 10, 64)
		if err != nil || j == len(all) || all[j] != ',' && all[j] != '}' {
			return false
		}
		*v, i = n, j
		return true
	}
	var aud string
	if !strings.HasPrefix(all, "{") {
		return false
	}
	i = 1
	if !member("iss") || !str(&c.Issuer) || !member("sub") || !str(&c.Subject) || !member("aud") || !str(&aud) ||
		!member("exp") || !num(&c.Expiry) || !member("iat") || !num(&c.IssuedAt) || !member("jti") || !str(&c.ID) ||
		!member("client_id") || !str(&c.ClientID) {
		return false
	}
	c.Audience = audience{aud}
	for _, opt := range [...]struct {
		name string
		s    *string
		n    *int64
	}{{"scope", &c.Scope, nil}, {"nbf", nil, &c.NotBefore}, {"fam", &c.Family, nil}, {"gid", &c.Grant, nil}} {
		if !strings.HasPrefix(all[i:], `,"`+opt.name+`":`) {
			continue
		}
		if !member(opt.name) || (opt.s != nil && !str(opt.s)) || (opt.n != nil && !num(opt.n)) {
			return false
		}
	}
	return i == len(all)-1 && all[i] == '}'
}

// derSignature appends the ASN.1 DER form of the ECDSA signature r || s
// (RFC 3279 §2.2.3: a SEQUENCE of two INTEGERs) to b.
func derSignature(b []byte, rs *[64]byte) []byte {
	integer := func(b, v []byte) []byte {
		v = bytes.TrimLeft(v, "\x00")
		pad := len(v) == 0 || v[0]&0x80 != 0 // minimal, non-negative
		n := len(v)
		if pad {
			n++
		}
		b = append(b, 0x02, byte(n))
		if pad {
			b = append(b, 0)
		}
		return append(b, v...)
	}
	b = append(b, 0x30, 0)
	b = integer(b, rs[:32])
	b = integer(b, rs[32:])
	b[1] = byte(len(b) - 2)
	return b
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
