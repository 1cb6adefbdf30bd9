package handlers

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
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
// (ECDSA on P-256 with SHA-256, RFC 7518 §3.4) unless the operator picks
// RS256: supported by every JOSE library a resource server might use to
// verify them from the JWKS.
const (
	jwtAlg = "ES256"
	jwtTyp = "at+jwt"
	// maxTokenLen bounds what the parser reads of a presented token.
	maxTokenLen = 8 << 10
)

// algRS256 is RSASSA-PKCS1-v1_5 with SHA-256 (RFC 7518 §3.3), which RFC
// 9068 §2.1 has every authorization server support for access tokens and
// OpenID Connect Core 1.0 §15.1 every OP for ID tokens.
const algRS256 = "RS256"

// rsaKeyBits is the size of the RSA keys: 2048 bits, NIST's minimum (SP
// 800-131A, SP 800-57 Part 1: 112-bit strength) and the size every relying
// party and JOSE library supports; larger keys cost more to make and to
// sign with and some verifiers cap the size.
const rsaKeyBits = 2048

// idTokenAlgs are the algorithms this server signs ID tokens with, the
// default first: OpenID Connect Registration 1.0 §2 makes RS256 the
// id_token_signed_response_alg of a client that registers none. Discovery
// lists them (id_token_signing_alg_values_supported) and registration
// accepts exactly these for id_token_signed_response_alg.
var idTokenAlgs = []string{algRS256, jwtAlg}

// AccessTokenSigningAlgs are the algorithms access tokens can be signed
// with (Config.AccessTokenSigningAlg).
var AccessTokenSigningAlgs = []string{jwtAlg, algRS256}

// CheckAccessTokenSigningAlg refuses an algorithm access tokens cannot be
// signed with; the caller names the setting.
func CheckAccessTokenSigningAlg(alg string) error {
	if !slices.Contains(AccessTokenSigningAlgs, alg) {
		return fmt.Errorf("%q is not one of %s", alg, strings.Join(AccessTokenSigningAlgs, ", "))
	}
	return nil
}

// signingAlgs are the algorithms the key ring keeps keys for. ES256 always
// has one; RS256 gets its first the first time something is signed with it
// (signRSA), since making an RSA key takes a tenth of a second to a second.
var signingAlgs = []string{jwtAlg, algRS256}

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

// rsaSigningKey is an RS256 key, beside the ES256 signingKey.
type rsaSigningKey struct {
	id       string
	priv     *rsa.PrivateKey
	header   string // access tokens'
	idHeader string // ID tokens' (typ JWT)
}

type signingKey struct {
	id     string
	priv   *ecdsa.PrivateKey
	header string // the encoded JOSE header, the same for every token
	// idHeader is the header of ID tokens: typ JWT, never at+jwt, so that
	// an ID token is never accepted as an access token (parseJWT).
	idHeader string
}

// keyRing holds the signing keys, per algorithm: the newest of each signs,
// all verify. Keys live in the store, so every handler on one database
// signs with the same keys and a restart keeps them.
type keyRing struct {
	store       storage.Store
	now         func() time.Time
	rotateAfter time.Duration // a key signs for this long
	retainFor   time.Duration // then verifies for this long (the token lifetime)
	// accessAlg signs access tokens: jwtAlg (ES256) or algRS256.
	accessAlg string

	// rotating lets one rotation at a time run in this process: a signer
	// that waited for it finds the key the one before made, instead of
	// making one (for RSA, up to a second of work) that AddSigningKey
	// then refuses.
	rotating sync.Mutex

	mu         sync.RWMutex
	current    *signingKey
	created    time.Time
	public     map[string]*ecdsa.PublicKey
	headers    map[string]*ecdsa.PublicKey // by the encoded header this server writes for the key
	jwks       []byte
	lastReload time.Time
	// The RS256 keys, as the ES256 ones above; rsaCurrent is nil until
	// the first RS256 key exists. rsaKeys, by kid, are kept from one
	// reload to the next: parsing an RSA key checks it, about 6 ms.
	rsaCurrent *rsaSigningKey
	rsaCreated time.Time
	rsaKeys    map[string]*rsaSigningKey
	rsaHeaders map[string]*rsa.PublicKey
}

func newKeyRing(ctx context.Context, store storage.Store, now func() time.Time, rotateAfter, retainFor time.Duration) (*keyRing, error) {
	k := &keyRing{store: store, now: now, rotateAfter: rotateAfter, retainFor: retainFor}
	if err := k.reload(ctx, true); err != nil {
		return nil, err
	}
	return k, nil
}

// reload reads the keys from the store; with rotate, it first retires
// keys no live token can carry and makes a new key of each algorithm whose
// newest is too old (ES256 also when it has none). Callers hold no lock.
func (k *keyRing) reload(ctx context.Context, rotate bool) error {
	return k.load(ctx, rotate, false)
}

// load is reload; with makeRSA (and rotate), it also makes the first
// RS256 key when there is none.
func (k *keyRing) load(ctx context.Context, rotate, makeRSA bool) error {
	if rotate {
		k.rotating.Lock()
		defer k.rotating.Unlock()
	}
	keys, err := k.store.SigningKeys(ctx)
	if err != nil {
		return fmt.Errorf("reading signing keys: %w", err)
	}
	now := k.now()
	if rotate {
		var kept []*storage.SigningKey
		for _, alg := range signingAlgs {
			ofAlg, err := k.rotate(ctx, alg, keysOf(keys, alg), now, alg == jwtAlg || makeRSA)
			if err != nil {
				return err
			}
			kept = append(kept, ofAlg...)
		}
		keys = kept
	}
	// Keys of an algorithm this version does not know (a newer one's)
	// are left alone: neither used nor deleted.
	rsaKeys := keysOf(keys, algRS256)
	keys = keysOf(keys, jwtAlg)
	if len(keys) == 0 {
		return errors.New("no signing key")
	}
	public := make(map[string]*ecdsa.PublicKey, len(keys))
	headers := make(map[string]*ecdsa.PublicKey, len(keys))
	type jwk struct {
		Kty string `json:"kty"`
		Crv string `json:"crv,omitempty"`
		X   string `json:"x,omitempty"`
		Y   string `json:"y,omitempty"`
		N   string `json:"n,omitempty"` // RFC 7518 §6.3.1
		E   string `json:"e,omitempty"`
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
		header, idHeader := joseHeaders(jwtAlg, sk.ID)
		current = &signingKey{id: sk.ID, priv: priv, header: header, idHeader: idHeader}
		// Only access token headers: an ID token is no access token.
		headers[current.header] = &priv.PublicKey
	}
	k.mu.RLock()
	loaded := k.rsaKeys
	k.mu.RUnlock()
	rsaByID := make(map[string]*rsaSigningKey, len(rsaKeys))
	rsaHeaders := make(map[string]*rsa.PublicKey, len(rsaKeys))
	var rsaCurrent *rsaSigningKey
	var rsaCreated time.Time
	for _, sk := range rsaKeys {
		key := loaded[sk.ID]
		if key == nil {
			if key, err = parseRSAKey(sk); err != nil {
				return err
			}
		}
		rsaByID[sk.ID] = key
		set.Keys = append(set.Keys, jwk{Kty: "RSA", Kid: sk.ID, Use: "sig", Alg: algRS256,
			N: base64.RawURLEncoding.EncodeToString(key.priv.N.Bytes()),
			E: base64.RawURLEncoding.EncodeToString(big.NewInt(int64(key.priv.E)).Bytes())})
		rsaCurrent, rsaCreated = key, time.Unix(sk.CreatedAt, 0)
		rsaHeaders[key.header] = &key.priv.PublicKey
	}
	jwks, err := json.Marshal(set)
	if err != nil {
		return err
	}
	k.mu.Lock()
	k.current, k.created = current, time.Unix(keys[len(keys)-1].CreatedAt, 0)
	k.public, k.headers, k.jwks, k.lastReload = public, headers, jwks, now
	k.rsaCurrent, k.rsaCreated, k.rsaKeys, k.rsaHeaders = rsaCurrent, rsaCreated, rsaByID, rsaHeaders
	k.mu.Unlock()
	return nil
}

// parseRSAKey reads a stored RS256 key.
func parseRSAKey(sk *storage.SigningKey) (*rsaSigningKey, error) {
	parsed, err := x509.ParsePKCS8PrivateKey(sk.Private)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", sk.ID, err)
	}
	priv, ok := parsed.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("signing key %s: an RS256 key holds a %T", sk.ID, parsed)
	}
	header, idHeader := joseHeaders(algRS256, sk.ID)
	return &rsaSigningKey{id: sk.ID, priv: priv, header: header, idHeader: idHeader}, nil
}

// joseHeaders are the encoded headers a key signs with: access tokens'
// (typ at+jwt) and ID tokens' (typ JWT), so that an ID token is never
// accepted as an access token.
func joseHeaders(alg, kid string) (access, id string) {
	enc := func(typ string) string {
		b, _ := json.Marshal(map[string]string{"alg": alg, "kid": kid, "typ": typ})
		return base64.RawURLEncoding.EncodeToString(b)
	}
	return enc(jwtTyp), enc("JWT")
}

// rotate takes the keys of one algorithm, oldest first, deletes those no
// live token can carry and, when the newest has signed for rotateAfter
// (or there is none and need is set), makes a successor. It returns the
// algorithm's keys as they then are.
func (k *keyRing) rotate(ctx context.Context, alg string, keys []*storage.SigningKey, now time.Time, need bool) ([]*storage.SigningKey, error) {
	var kept []*storage.SigningKey
	for i, sk := range keys {
		// A key that stopped signing longer ago than the token lifetime
		// has no live token left.
		if i+1 < len(keys) && now.Sub(time.Unix(keys[i+1].CreatedAt, 0)) > k.retainFor+time.Minute {
			if err := k.store.DeleteSigningKey(ctx, sk.ID); err != nil {
				return nil, fmt.Errorf("deleting retired signing key: %w", err)
			}
			continue
		}
		kept = append(kept, sk)
	}
	keys = kept
	if len(keys) == 0 && !need || len(keys) > 0 && now.Sub(time.Unix(keys[len(keys)-1].CreatedAt, 0)) < k.rotateAfter {
		return keys, nil
	}
	raw, err := newPrivateKey(alg)
	if err != nil {
		return nil, fmt.Errorf("making %s signing key: %w", alg, err)
	}
	sk := &storage.SigningKey{ID: randomString(12), Private: raw, CreatedAt: now.Unix(), Alg: alg}
	// Of several instances rotating at once, one stores its key; the
	// others take it. The condition is "no key of this algorithm newer
	// than the newest this instance read": a threshold computed from the
	// clock would, in whole seconds, disagree with the test above for up
	// to a second.
	var newerThan int64
	if len(keys) > 0 {
		newerThan = keys[len(keys)-1].CreatedAt + 1
	}
	added, err := k.store.AddSigningKey(ctx, sk, newerThan)
	if err != nil {
		return nil, fmt.Errorf("storing signing key: %w", err)
	}
	if added {
		return append(keys, sk), nil
	}
	all, err := k.store.SigningKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading signing keys: %w", err)
	}
	return keysOf(all, alg), nil
}

// newPrivateKey makes a private key for alg, encoded for
// storage.SigningKey.Private.
func newPrivateKey(alg string) ([]byte, error) {
	if alg == algRS256 {
		priv, err := rsa.GenerateKey(rand.Reader, rsaKeyBits)
		if err != nil {
			return nil, err
		}
		return x509.MarshalPKCS8PrivateKey(priv)
	}
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	return priv.Bytes()
}

// keysOf returns the keys of alg among keys, in their order.
func keysOf(keys []*storage.SigningKey, alg string) []*storage.SigningKey {
	var out []*storage.SigningKey
	for _, sk := range keys {
		if sk.Algorithm() == alg {
			out = append(out, sk)
		}
	}
	return out
}

// sign encodes and signs claims as a JWT with the current key, rotating the
// key first when it has signed long enough.
func (k *keyRing) sign(ctx context.Context, c *accessClaims) (string, error) {
	var buf [512]byte // a token's claims fit: the payload stays on the stack
	payload, err := appendClaims(buf[:0], c)
	if err != nil {
		return "", err
	}
	return k.signAs(ctx, k.accessAlg, payload, false)
}

// signAs signs payload, a JSON object, as a JWT with the current key of
// alg (ES256 for any other value), as signPayload does.
func (k *keyRing) signAs(ctx context.Context, alg string, payload []byte, idToken bool) (string, error) {
	if alg == algRS256 {
		return k.signRSA(ctx, payload, idToken)
	}
	return k.signPayload(ctx, payload, idToken)
}

// signRSA signs payload as a JWT with the current RS256 key
// (RSASSA-PKCS1-v1_5 with SHA-256, RFC 7518 §3.3), making the first RS256
// key when there is none yet and rotating it when it has signed long
// enough; like every key, it goes through AddSigningKey, so of several
// instances one makes it and the others load it. PKCS #1 v1.5 signatures
// are deterministic: the same text always has the same signature, and
// every token carries a fresh jti.
func (k *keyRing) signRSA(ctx context.Context, payload []byte, idToken bool) (string, error) {
	k.mu.RLock()
	key, created := k.rsaCurrent, k.rsaCreated
	k.mu.RUnlock()
	if key == nil || k.now().Sub(created) >= k.rotateAfter {
		if err := k.load(ctx, true, true); err != nil {
			return "", err
		}
		k.mu.RLock()
		key = k.rsaCurrent
		k.mu.RUnlock()
		if key == nil {
			return "", errors.New("no RS256 signing key")
		}
	}
	header := key.header
	if idToken {
		header = key.idHeader
	}
	sigLen := base64.RawURLEncoding.EncodedLen(key.priv.Size())
	b := make([]byte, 0, len(header)+1+base64.RawURLEncoding.EncodedLen(len(payload))+1+sigLen)
	b = append(b, header...)
	b = append(b, '.')
	b = base64.RawURLEncoding.AppendEncode(b, payload)
	digest := sha256.Sum256(b)
	sig, err := rsa.SignPKCS1v15(nil, key.priv, crypto.SHA256, digest[:])
	if err != nil {
		return "", err
	}
	b = append(b, '.')
	b = base64.RawURLEncoding.AppendEncode(b, sig)
	return string(b), nil
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
		var rsaPub *rsa.PublicKey
		if pub == nil {
			rsaPub = k.rsaHeaders[h]
		}
		k.mu.RUnlock()
		if pub != nil {
			return verifyJWT(token, h, p, sig, pub)
		}
		if rsaPub != nil {
			return verifyRSAJWT(token, h, p, sig, rsaPub)
		}
	}
	return parseJWTKeys(token, func(kid string) *ecdsa.PublicKey { return k.publicKey(ctx, kid) },
		func(kid string) *rsa.PublicKey { return k.rsaPublicKey(ctx, kid) })
}

// publicKey returns the ES256 verification key with the given id.
func (k *keyRing) publicKey(ctx context.Context, kid string) *ecdsa.PublicKey {
	return lookUpKey(ctx, k, func() (*ecdsa.PublicKey, bool) {
		pub, ok := k.public[kid]
		return pub, ok
	})
}

// rsaPublicKey returns the RS256 verification key with the given id.
func (k *keyRing) rsaPublicKey(ctx context.Context, kid string) *rsa.PublicKey {
	return lookUpKey(ctx, k, func() (*rsa.PublicKey, bool) {
		if key, ok := k.rsaKeys[kid]; ok {
			return &key.priv.PublicKey, true
		}
		return nil, false
	})
}

// lookUpKey asks get, under the ring's read lock, for a key. An unknown
// id may be a key another handler on the same database just made, so the
// ring is reloaded, at most once a second, and get asked again.
func lookUpKey[P any](ctx context.Context, k *keyRing, get func() (P, bool)) P {
	k.mu.RLock()
	pub, ok := get()
	stale := k.now().Sub(k.lastReload) > time.Second
	k.mu.RUnlock()
	if ok || !stale {
		return pub
	}
	if err := k.reload(ctx, false); err != nil {
		var none P
		return none
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	pub, _ = get()
	return pub
}

// verificationKeys returns the public half of every key in the ring, of
// both algorithms, for checking an ID token this server signed
// (id_token_hint).
func (k *keyRing) verificationKeys() []crypto.PublicKey {
	k.mu.RLock()
	defer k.mu.RUnlock()
	keys := make([]crypto.PublicKey, 0, len(k.public)+len(k.rsaKeys))
	for _, pub := range k.public {
		keys = append(keys, pub)
	}
	for _, rk := range k.rsaKeys {
		keys = append(keys, &rk.priv.PublicKey)
	}
	return keys
}

func (k *keyRing) jwksJSON() []byte {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.jwks
}

// parseJWT is parseJWTKeys for ES256 tokens only.
func parseJWT(token string, keyFor func(kid string) *ecdsa.PublicKey) (*accessClaims, error) {
	return parseJWTKeys(token, keyFor, func(string) *rsa.PublicKey { return nil })
}

// parseJWTKeys parses a compact JWS (RFC 7515 §7.1), accepts only our
// header (alg ES256 or RS256, typ at+jwt, a kid known for that alg, no
// crit) and a valid signature (low-S for ES256), and decodes the claims.
// The alg picks which keys the kid is looked up among, so a token can only
// verify with a key of the algorithm it names, and the key's own algorithm
// verifies it. Each segment must be canonical base64url and the header and
// claims I-JSON (RFC 7493), so that every verifier reads a token we accept
// the way we do.
func parseJWTKeys(token string, keyFor func(kid string) *ecdsa.PublicKey, rsaKeyFor func(kid string) *rsa.PublicKey) (*accessClaims, error) {
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
	if header.Alg != jwtAlg && header.Alg != algRS256 || typ != jwtTyp || header.Kid == "" || header.Crit != nil {
		return nil, errBadToken
	}
	if header.Alg == algRS256 {
		rsaPub := rsaKeyFor(header.Kid)
		if rsaPub == nil {
			return nil, errBadToken
		}
		return verifyRSAJWT(token, h, p, sig, rsaPub)
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
	return decodePayload(p)
}

// verifyRSAJWT is verifyJWT for RS256: the signature is RSASSA-PKCS1-v1_5
// with SHA-256 (RFC 7518 §3.3) under pub, exactly the key's size (256
// bytes, 342 characters, for the 2048-bit keys this server makes).
func verifyRSAJWT(token, h, p, sig string, pub *rsa.PublicKey) (*accessClaims, error) {
	if len(sig) != base64.RawURLEncoding.EncodedLen(pub.Size()) {
		return nil, errBadToken
	}
	raw, err := jwtEncoding.DecodeString(sig)
	if err != nil {
		return nil, errBadToken
	}
	digest := sha256Of(token[:len(h)+1+len(p)])
	if rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], raw) != nil {
		return nil, errBadToken
	}
	return decodePayload(p)
}

// decodePayload decodes the claims of a token whose signature checked.
func decodePayload(p string) (*accessClaims, error) {
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
