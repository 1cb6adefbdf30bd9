package handlers

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-dcr/caddy-dcr/storage"
)

const (
	testKid     = "k1"
	testHeader  = `{"alg":"ES256","typ":"at+jwt","kid":"k1"}`
	testPayload = `{"iss":"https://as.example","sub":"s","aud":"https://rs.example","exp":2000000000,"iat":1700000000,"jti":"j","client_id":"c"}`
	b64Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
)

// jwtSigner signs crafted tokens with a real key, so the tests reach the
// checks that run after the signature.
type jwtSigner struct {
	priv *ecdsa.PrivateKey
}

func newJWTSigner(t *testing.T) *jwtSigner {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &jwtSigner{priv: priv}
}

func (j *jwtSigner) keyFor(kid string) *ecdsa.PublicKey {
	if kid != testKid {
		return nil
	}
	return &j.priv.PublicKey
}

// signRS signs the text h.p as given (whatever its encoding) and returns r
// and a low s.
func (j *jwtSigner) signRS(t *testing.T, h, p string) (r, s *big.Int) {
	t.Helper()
	digest := sha256.Sum256([]byte(h + "." + p))
	r, s, err := ecdsa.Sign(rand.Reader, j.priv, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	if s.Cmp(p256HalfOrder) > 0 {
		s.Sub(elliptic.P256().Params().N, s)
	}
	return r, s
}

// signSegments returns h.p.signature, signing the segments as given.
func (j *jwtSigner) signSegments(t *testing.T, h, p string) string {
	t.Helper()
	r, s := j.signRS(t, h, p)
	return h + "." + p + "." + encodeSig(r, s)
}

// sign encodes header and payload canonically and signs them.
func (j *jwtSigner) sign(t *testing.T, header, payload string) string {
	t.Helper()
	enc := base64.RawURLEncoding
	return j.signSegments(t, enc.EncodeToString([]byte(header)), enc.EncodeToString([]byte(payload)))
}

func encodeSig(r, s *big.Int) string {
	var sig [64]byte
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return base64.RawURLEncoding.EncodeToString(sig[:])
}

// setTrailingBit sets the lowest of the unused bits in the last character
// of a base64url segment whose length is not a multiple of 4: the lenient
// decoder ignores it, so the segment decodes to the same bytes.
func setTrailingBit(t testing.TB, seg string) string {
	t.Helper()
	if len(seg)%4 == 0 {
		t.Fatalf("segment %q has no trailing bits", seg)
	}
	i := strings.IndexByte(b64Alphabet, seg[len(seg)-1])
	return seg[:len(seg)-1] + string(b64Alphabet[i|1])
}

func TestParseJWTAcceptsACanonicalToken(t *testing.T) {
	j := newJWTSigner(t)
	c, err := parseJWT(j.sign(t, testHeader, testPayload), j.keyFor)
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject != "s" || c.ClientID != "c" || c.Expiry != 2000000000 || len(c.Audience) != 1 {
		t.Fatalf("claims %+v", c)
	}
}

func TestParseJWTRefusesCriticalHeaderExtensions(t *testing.T) {
	j := newJWTSigner(t)
	for _, header := range []string{
		`{"alg":"ES256","typ":"at+jwt","kid":"k1","crit":["exp"]}`,
		`{"alg":"ES256","typ":"at+jwt","kid":"k1","crit":[]}`,
		`{"alg":"ES256","typ":"at+jwt","kid":"k1","crit":null}`,
	} {
		if _, err := parseJWT(j.sign(t, header, testPayload), j.keyFor); err == nil {
			t.Errorf("accepted header %s", header)
		}
	}
}

func TestParseJWTRefusesRepeatedHeaderMembers(t *testing.T) {
	j := newJWTSigner(t)
	for _, header := range []string{
		`{"alg":"none","alg":"ES256","typ":"at+jwt","kid":"k1"}`,
		`{"alg":"ES256","typ":"at+jwt","kid":"other","kid":"k1"}`,
		`{"alg":"ES256","typ":"at+jwt","kid":"k1"} {}`,
	} {
		if _, err := parseJWT(j.sign(t, header, testPayload), j.keyFor); err == nil {
			t.Errorf("accepted header %s", header)
		}
	}
}

func TestParseJWTRefusesRepeatedClaimsAndTrailingData(t *testing.T) {
	j := newJWTSigner(t)
	for _, payload := range []string{
		`{"sub":"victim","sub":"s","aud":"a","exp":2000000000,"iat":1,"jti":"j","client_id":"c"}`,
		`{"sub":"s","aud":"a","exp":1,"exp":2000000000,"iat":1,"jti":"j","client_id":"c"}`,
		testPayload + `{"sub":"other"}`,
		testPayload + `x`,
		`{"sub":"s\ud800","aud":"a","exp":2000000000,"iat":1,"jti":"j","client_id":"c"}`,
	} {
		if _, err := parseJWT(j.sign(t, testHeader, payload), j.keyFor); err == nil {
			t.Errorf("accepted payload %s", payload)
		}
	}
}

// TestParseJWTRefusesNonCanonicalBase64 makes sure a token has one
// spelling: each variant is signed as written and decodes to the same
// header, claims and signature as a good token.
func TestParseJWTRefusesNonCanonicalBase64(t *testing.T) {
	j := newJWTSigner(t)
	enc := base64.RawURLEncoding
	// The lengths leave unused bits in the last character of each segment.
	header := `{"alg":"ES256","typ":"at+jwt","kid":"k1"}`
	payload := `{"sub":"s","aud":"a","exp":2000000000,"iat":1,"jti":"jj","client_id":"c"}`
	h, p := enc.EncodeToString([]byte(header)), enc.EncodeToString([]byte(payload))
	good := j.signSegments(t, h, p)
	if _, err := parseJWT(good, j.keyFor); err != nil {
		t.Fatalf("the canonical token is refused: %v", err)
	}
	goodSig := good[strings.LastIndexByte(good, '.')+1:]
	// A payload whose standard encoding differs from its base64url one.
	std := base64.RawStdEncoding.EncodeToString([]byte(payload[:len(payload)-1] + `,"x":"???"}`))
	if !strings.ContainsAny(std, "+/") {
		t.Fatalf("%q is in the base64url alphabet", std)
	}
	cases := map[string]string{
		"LF in the payload":              j.signSegments(t, h, p[:10]+"\n"+p[10:]),
		"CRLF in the header":             j.signSegments(t, h[:5]+"\r\n"+h[5:], p),
		"trailing bits in the header":    j.signSegments(t, setTrailingBit(t, h), p),
		"trailing bits in the payload":   j.signSegments(t, h, setTrailingBit(t, p)),
		"trailing bits in the signature": h + "." + p + "." + setTrailingBit(t, goodSig),
		"LF in the signature":            h + "." + p + "." + goodSig[:20] + "\n" + goodSig[20:],
		"padded payload":                 j.signSegments(t, h, base64.URLEncoding.EncodeToString([]byte(payload))),
		"standard alphabet":              j.signSegments(t, h, std),
		"empty payload":                  j.signSegments(t, h, ""),
	}
	for name, token := range cases {
		t.Run(name, func(t *testing.T) {
			if token == good {
				t.Fatal("the variant is the good token")
			}
			if _, err := parseJWT(token, j.keyFor); err == nil {
				t.Fatalf("accepted %q", token)
			}
		})
	}
}

// TestParseJWTRefusesHighS checks that (r, n-s), which verifies as well as
// (r, s), is refused: a token has one signature.
func TestParseJWTRefusesHighS(t *testing.T) {
	j := newJWTSigner(t)
	enc := base64.RawURLEncoding
	h, p := enc.EncodeToString([]byte(testHeader)), enc.EncodeToString([]byte(testPayload))
	r, s := j.signRS(t, h, p)
	if _, err := parseJWT(h+"."+p+"."+encodeSig(r, s), j.keyFor); err != nil {
		t.Fatalf("the low-S token is refused: %v", err)
	}
	high := new(big.Int).Sub(elliptic.P256().Params().N, s)
	digest := sha256.Sum256([]byte(h + "." + p))
	if !ecdsa.Verify(&j.priv.PublicKey, digest[:], r, high) {
		t.Fatal("the high-S twin is not a valid ECDSA signature; the test proves nothing")
	}
	if _, err := parseJWT(h+"."+p+"."+encodeSig(r, high), j.keyFor); err == nil {
		t.Fatal("accepted the high-S twin of a valid token")
	}
}

// TestSignedTokensHaveLowS signs many tokens: each must verify, so the
// signer normalises s as the parser requires. Signatures are
// deterministic, so each token has its own jti: about half of them then
// come out of ECDSA with a high s.
func TestSignedTokensHaveLowS(t *testing.T) {
	store := memStore(t)
	ctx := context.Background()
	ring, err := newKeyRing(ctx, store, time.Now, time.Hour, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		token, err := ring.sign(ctx, &accessClaims{Issuer: "i", Subject: "s", Audience: audience{"a"}, Expiry: 1,
			ID: strconv.Itoa(i), ClientID: "c"})
		if err != nil {
			t.Fatal(err)
		}
		sig, err := base64.RawURLEncoding.DecodeString(token[strings.LastIndexByte(token, '.')+1:])
		if err != nil || len(sig) != 64 {
			t.Fatalf("token %d: signature %x, %v", i, sig, err)
		}
		if new(big.Int).SetBytes(sig[32:]).Cmp(p256HalfOrder) > 0 {
			t.Fatalf("token %d has a high s", i)
		}
		if _, err := ring.verify(ctx, token); err != nil {
			t.Fatalf("token %d does not verify: %v", i, err)
		}
	}
}

// TestNegateModOrder holds negateModOrder to math/big's n - s.
func TestNegateModOrder(t *testing.T) {
	n := elliptic.P256().Params().N
	cases := []*big.Int{big.NewInt(1), new(big.Int).Add(p256HalfOrder, big.NewInt(1)), new(big.Int).Sub(n, big.NewInt(1)),
		new(big.Int).Lsh(big.NewInt(1), 64), new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 192), big.NewInt(1))}
	for range 1000 {
		s, err := rand.Int(rand.Reader, new(big.Int).Sub(n, big.NewInt(1)))
		if err != nil {
			t.Fatal(err)
		}
		cases = append(cases, s.Add(s, big.NewInt(1)))
	}
	for _, s := range cases {
		var b [32]byte
		s.FillBytes(b[:])
		negateModOrder(&b)
		if want := new(big.Int).Sub(n, s); new(big.Int).SetBytes(b[:]).Cmp(want) != 0 {
			t.Fatalf("n - %x: got %x, want %x", s, b, want)
		}
	}
}

func TestAccessClaimsDecodeNotBefore(t *testing.T) {
	j := newJWTSigner(t)
	payload := `{"sub":"s","aud":"a","exp":2000000000,"iat":1,"nbf":1700000000,"jti":"j","client_id":"c"}`
	c, err := parseJWT(j.sign(t, testHeader, payload), j.keyFor)
	if err != nil {
		t.Fatal(err)
	}
	if c.NotBefore != 1700000000 {
		t.Fatalf("nbf %d", c.NotBefore)
	}
	if _, ok := c.Extra["nbf"]; ok {
		t.Fatal("nbf kept as an extra claim")
	}
	out, err := c.MarshalJSON()
	if err != nil || !strings.Contains(string(out), `"nbf":1700000000`) {
		t.Fatalf("encoded %s, %v", out, err)
	}
}

func TestKeyRotation(t *testing.T) {
	ts := newTestServer(t, Config{KeyRotation: 24 * time.Hour, AccessTokenTTL: time.Hour})
	id, secret := ts.machineClient("")
	old := ts.clientCredentialsToken(id, secret, "")
	ts.clock = ts.clock.Add(24*time.Hour + time.Minute)
	// The old token expired long ago; issue one just before rotation to
	// check the previous key still verifies.
	ts.clock = fixedNow.Add(24*time.Hour - time.Minute)
	recent := ts.clientCredentialsToken(id, secret, "")
	ts.clock = fixedNow.Add(24*time.Hour + time.Minute)
	fresh := ts.clientCredentialsToken(id, secret, "")
	keys, _ := ts.store.SigningKeys(t.Context())
	if len(keys) != 2 {
		t.Fatalf("%d keys after rotation, want 2", len(keys))
	}
	for name, tok := range map[string]string{"recent": recent, "fresh": fresh} {
		if status, _ := ts.gated("/x", "Bearer "+tok); status != http.StatusTeapot {
			t.Errorf("%s token refused after rotation: %d", name, status)
		}
	}
	// Once every token of the old key expired, the next rotation drops it.
	ts.clock = fixedNow.Add(48*time.Hour + 2*time.Hour)
	ts.clientCredentialsToken(id, secret, "")
	keys, _ = ts.store.SigningKeys(t.Context())
	if len(keys) != 2 {
		t.Fatalf("%d keys after the second rotation, want 2", len(keys))
	}
	_ = old
}

// A handler with short-lived tokens must not delete a retired key that a
// handler with longer-lived ones on the same store still needs.
func TestRetiredKeysOutliveEveryHandlersTokens(t *testing.T) {
	long := newTestServer(t, Config{AccessTokenTTL: 20 * time.Hour, KeyRotation: time.Hour})
	id, secret := long.machineClient("")
	token := long.clientCredentialsToken(id, secret, "")

	clock := long.clock.Add(3 * time.Hour) // key1 retired two hours ago, at the rotation
	short, err := New(t.Context(), long.store, Config{AccessTokenTTL: 5 * time.Minute, KeyRotation: time.Hour,
		Now: func() time.Time { return clock }}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	// Ten minutes after key1 stopped signing, the short-lived handler
	// tidies the keys: its own tokens of key1 are all expired.
	clock = clock.Add(10 * time.Minute)
	if err := short.keys.reload(t.Context(), true); err != nil {
		t.Fatal(err)
	}
	// A fresh handler (a reload) with the long lifetime still verifies
	// the old token, which has 16 hours to live.
	long.clock = clock
	reloaded, err := New(t.Context(), long.store, Config{AccessTokenTTL: 20 * time.Hour, KeyRotation: time.Hour,
		Now: func() time.Time { return clock }}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	long.srv = reloaded
	if status, _ := long.gated("/api", "Bearer "+token); status != http.StatusTeapot {
		t.Fatalf("a token of a key the short-lived handler retired: %d", status)
	}
}

// Claims are decoded once when the token holds only reserved claims; the
// shortcut must never hide an extra claim, however the JSON is written.
func TestOnlyReservedMembers(t *testing.T) {
	for _, tc := range []struct {
		json string
		want bool
	}{
		{`{"iss":"i","sub":"s","aud":["a","b"],"exp":1,"client_id":"c","scope":"r w"}`, true},
		{`{ "sub" : "x,\"email\":\"y", "aud" : [ "a" , "b" ] }`, true},
		{`{"sub":"s","email":"e"}`, false},
		{`{"sub":"s","Email":"e"}`, false},
		{`{"Sub":"s"}`, false},                                // a case variant: decoded the slow way
		{`{"s\u0075b":"s"}`, false},                           // an escaped name
		{`{"cnf":{"email":"e","k":[{"x":1}]},"exp":1}`, true}, // nested names are not claims
		{`{"cnf":{"a":[1,{"b":"}"}]},"groups":"g"}`, false},
	} {
		if got := onlyReservedMembers([]byte(tc.json)); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.json, got, tc.want)
		}
		var c accessClaims
		if err := json.Unmarshal([]byte(tc.json), &c); err != nil {
			t.Fatalf("%s: %v", tc.json, err)
		}
		if tc.want && len(c.Extra) != 0 {
			t.Errorf("%s: extra claims %v behind the shortcut", tc.json, c.Extra)
		}
	}
}

// The claims are written without reflection; what is written must be what
// json.Marshal writes, escapes and member order included.
func TestAppendClaimsAsMarshal(t *testing.T) {
	for _, c := range []accessClaims{
		{Issuer: "https://as.example", Subject: "s", Audience: audience{"https://rs.example"}, Expiry: 2, IssuedAt: 1, ID: "j", ClientID: "c"},
		{Issuer: "i", Subject: "ålice <a&b> \"q\" \\ \n \u2028", Audience: audience{"a", "b"}, Expiry: -1, ID: "j", ClientID: "c",
			Scope: "read write", NotBefore: 5, Family: "f", Grant: "g", Extra: map[string]string{"z": "1", "email": "a@example.com", "\u00e9": "<"}},
		{Issuer: "i", Audience: audience{}, Extra: map[string]string{}},
		{Issuer: "i", Subject: "bad \xff utf-8"},
	} {
		want, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		got, err := appendClaims(nil, &c)
		if err != nil || string(got) != string(want) {
			t.Errorf("appendClaims:\n%s (%v)\njson.Marshal:\n%s", got, err, want)
		}
	}
}

// Claims in the shape this server writes are decoded without
// encoding/json; whatever the shortcut takes, it must read as
// json.Unmarshal does, and anything else it must leave to it.
func TestDecodeOwnClaims(t *testing.T) {
	for _, c := range []accessClaims{
		{Issuer: "https://as.example", Subject: "s", Audience: audience{"https://rs.example"}, Expiry: 2000000000, IssuedAt: 1, ID: "j", ClientID: "c"},
		{Issuer: "i", Subject: "ålice", Audience: audience{"a"}, Expiry: -5, ID: "j", ClientID: "c", Scope: "read write",
			NotBefore: 7, Family: "f", Grant: "g"},
		{Issuer: "i", Audience: audience{"a"}, ID: "j", ClientID: "c", Grant: "g"},
	} {
		b, err := appendClaims(nil, &c)
		if err != nil {
			t.Fatal(err)
		}
		var fast accessClaims
		if !decodeOwnClaims(b, &fast) {
			t.Errorf("%s: not taken by the shortcut", b)
		}
		var slow accessClaims
		if err := json.Unmarshal(b, &slow); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprintf("%#v", fast) != fmt.Sprintf("%#v", slow) {
			t.Errorf("%s:\nshortcut %#v\njson     %#v", b, fast, slow)
		}
	}
	for _, b := range []string{
		`{"iss":"i","sub":"s","aud":["a","b"],"exp":1,"iat":1,"jti":"j","client_id":"c"}`,
		`{"iss":"i","sub":"s\u00e5","aud":"a","exp":1,"iat":1,"jti":"j","client_id":"c"}`,
		`{"iss":"i","sub":"s","aud":"a","exp":1.5,"iat":1,"jti":"j","client_id":"c"}`,
		`{"iss":"i","sub":"s","aud":"a","exp":1e3,"iat":1,"jti":"j","client_id":"c"}`,
		`{"iss":"i","sub":"s","aud":"a","exp":99999999999999999999,"iat":1,"jti":"j","client_id":"c"}`,
		`{"iss":"i","sub":"s","aud":"a","exp":1,"iat":1,"jti":"j","client_id":"c","email":"e"}`,
		`{"iss":"i","sub":"s","aud":"a","exp":1,"iat":1,"jti":"j","client_id":"c","Scope":"x"}`,
		`{"iss":"i","sub":"s","aud":"a","exp":1,"iat":1,"jti":"j","client_id":"c","gid":"g","fam":"f"}`,
		`{ "iss":"i","sub":"s","aud":"a","exp":1,"iat":1,"jti":"j","client_id":"c"}`,
		`{"sub":"s","iss":"i","aud":"a","exp":1,"iat":1,"jti":"j","client_id":"c"}`,
		`{"iss":"i","sub":"s","aud":"a","exp":1,"iat":1,"jti":"j","client_id":"c"} `,
	} {
		var fast accessClaims
		if decodeOwnClaims([]byte(b), &fast) {
			t.Errorf("%s: taken by the shortcut", b)
		}
	}
}

// jwtHeader decodes a JWT's header, unverified.
func jwtHeader(t *testing.T, token string) map[string]string {
	t.Helper()
	h, _, _ := strings.Cut(token, ".")
	b, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// jwksKeys decodes a JWK Set.
func jwksKeys(t *testing.T, b []byte) []map[string]any {
	t.Helper()
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(b, &set); err != nil {
		t.Fatal(err)
	}
	return set.Keys
}

// rsaPublicJWK reads the RSA key of a JWK (RFC 7518 §6.3.1).
func rsaPublicJWK(t *testing.T, k map[string]any) *rsa.PublicKey {
	t.Helper()
	n, err1 := base64.RawURLEncoding.DecodeString(k["n"].(string))
	e, err2 := base64.RawURLEncoding.DecodeString(k["e"].(string))
	if err1 != nil || err2 != nil {
		t.Fatalf("n or e is not base64url: %v", k)
	}
	return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
}

func countKeys(t *testing.T, store storage.Store) (es, rs int) {
	t.Helper()
	keys, err := store.SigningKeys(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		switch k.Algorithm() {
		case jwtAlg:
			es++
		case algRS256:
			rs++
		}
	}
	return es, rs
}

// No RSA key is made (a tenth of a second to a second of work) until
// something is signed with RS256; then it is in the JWKS beside the ES256
// key, and its token verifies with the published n and e.
func TestRSAKeyIsMadeOnFirstUse(t *testing.T) {
	ctx := t.Context()
	store := memStore(t)
	ring, err := newKeyRing(ctx, store, time.Now, time.Hour, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if es, rs := countKeys(t, store); es != 1 || rs != 0 {
		t.Fatalf("%d ES256 and %d RS256 keys before any RS256 signature", es, rs)
	}
	if keys := jwksKeys(t, ring.jwksJSON()); len(keys) != 1 || keys[0]["kty"] != "EC" {
		t.Fatalf("JWKS before any RS256 signature: %v", keys)
	}

	token, err := ring.signAs(ctx, algRS256, []byte(testPayload), false)
	if err != nil {
		t.Fatal(err)
	}
	if es, rs := countKeys(t, store); es != 1 || rs != 1 {
		t.Fatalf("%d ES256 and %d RS256 keys after an RS256 signature", es, rs)
	}
	h := jwtHeader(t, token)
	if h["alg"] != "RS256" || h["typ"] != "at+jwt" || h["kid"] == "" {
		t.Fatalf("header %v", h)
	}
	keys := jwksKeys(t, ring.jwksJSON())
	var rsaJWK map[string]any
	for _, k := range keys {
		if k["kty"] == "RSA" {
			rsaJWK = k
		}
	}
	if len(keys) != 2 || rsaJWK == nil || rsaJWK["alg"] != "RS256" || rsaJWK["use"] != "sig" || rsaJWK["kid"] != h["kid"] {
		t.Fatalf("JWKS %v", keys)
	}
	for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "crv", "x", "y"} {
		if rsaJWK[private] != nil {
			t.Fatalf("the RSA JWK has %s: %v", private, rsaJWK)
		}
	}
	pub := rsaPublicJWK(t, rsaJWK)
	if pub.N.BitLen() != 2048 || pub.E != 65537 {
		t.Fatalf("RSA key of %d bits, e=%d", pub.N.BitLen(), pub.E)
	}
	i := strings.LastIndexByte(token, '.')
	sig, err := base64.RawURLEncoding.DecodeString(token[i+1:])
	if err != nil || len(sig) != 256 {
		t.Fatalf("signature of %d bytes: %v", len(sig), err)
	}
	digest := sha256.Sum256([]byte(token[:i]))
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig); err != nil {
		t.Fatalf("the signature does not verify with the published key: %v", err)
	}
	c, err := ring.verify(ctx, token)
	if err != nil || c.Subject != "s" || c.ClientID != "c" {
		t.Fatalf("verify: %+v %v", c, err)
	}
	// The ES256 key still signs what asks for ES256.
	es, err := ring.signAs(ctx, jwtAlg, []byte(testPayload), false)
	if err != nil || jwtHeader(t, es)["alg"] != "ES256" {
		t.Fatalf("ES256 token %q: %v", es, err)
	}
}

// Instances on one store that sign RS256 for the first time at once make
// one RSA key between them: the first key goes through AddSigningKey like
// a rotation, and the instances that lose load the winner's.
func TestFirstRSAKeyIsShared(t *testing.T) {
	ctx := t.Context()
	store := memStore(t)
	rings := make([]*keyRing, 3)
	for i := range rings {
		var err error
		if rings[i], err = newKeyRing(ctx, store, time.Now, time.Hour, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	tokens := make([]string, len(rings))
	var wg sync.WaitGroup
	for i, ring := range rings {
		wg.Go(func() {
			var err error
			if tokens[i], err = ring.signAs(ctx, algRS256, []byte(testPayload), false); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if _, rs := countKeys(t, store); rs != 1 {
		t.Fatalf("%d RS256 keys stored", rs)
	}
	for i, tok := range tokens {
		if jwtHeader(t, tok)["kid"] != jwtHeader(t, tokens[0])["kid"] {
			t.Fatalf("instance %d signed with another key", i)
		}
		for j, ring := range rings {
			if _, err := ring.verify(ctx, tok); err != nil {
				t.Fatalf("instance %d refuses instance %d's token: %v", j, i, err)
			}
		}
	}
}

// Each algorithm's key rotates after key_rotation of its own signing and
// is deleted once its tokens can all have expired, whatever the other
// algorithm's key does.
func TestKeyRotationPerAlgorithm(t *testing.T) {
	ctx := t.Context()
	store := memStore(t)
	clock := fixedNow
	ring, err := newKeyRing(ctx, store, func() time.Time { return clock }, 24*time.Hour, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	sign := func(alg string) string {
		t.Helper()
		tok, err := ring.signAs(ctx, alg, []byte(testPayload), false)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	kid := func(tok string) string { return jwtHeader(t, tok)["kid"] }
	want := func(es, rs int) {
		t.Helper()
		if gotES, gotRS := countKeys(t, store); gotES != es || gotRS != rs {
			t.Fatalf("at +%s: %d ES256 and %d RS256 keys, want %d and %d", clock.Sub(fixedNow), gotES, gotRS, es, rs)
		}
	}
	es1 := sign(jwtAlg)
	clock = fixedNow.Add(12 * time.Hour)
	rs1 := sign(algRS256) // the first RS256 key, twelve hours after the ES256 one
	want(1, 1)

	clock = fixedNow.Add(25 * time.Hour) // the ES256 key is due, the RS256 key is not
	es2 := sign(jwtAlg)
	if kid(es2) == kid(es1) || kid(sign(algRS256)) != kid(rs1) {
		t.Fatal("the ES256 rotation rotated the wrong key")
	}
	want(2, 1)

	clock = fixedNow.Add(37 * time.Hour) // now the RS256 key is
	rs2 := sign(algRS256)
	if kid(rs2) == kid(rs1) || kid(sign(jwtAlg)) != kid(es2) {
		t.Fatal("the RS256 rotation rotated the wrong key")
	}
	want(2, 2)
	for _, tok := range []string{es1, es2, rs1, rs2} {
		if _, err := ring.verify(ctx, tok); err != nil {
			t.Fatalf("a token of a retired key within its lifetime: %v", err)
		}
	}

	// A day after each first key stopped signing, the next rotation
	// deletes it: no token it signed can still be live.
	clock = fixedNow.Add(63 * time.Hour)
	sign(jwtAlg)
	want(2, 2)
	for _, tok := range []string{es1, rs1} {
		if _, err := ring.verify(ctx, tok); err == nil {
			t.Fatalf("a token of a deleted %s key still verifies", jwtHeader(t, tok)["alg"])
		}
	}
	for _, tok := range []string{es2, rs2} {
		if _, err := ring.verify(ctx, tok); err != nil {
			t.Fatalf("a %s token of the previous key: %v", jwtHeader(t, tok)["alg"], err)
		}
	}
}

// A token verifies only with a key of the algorithm its header names: the
// kid is looked up among that algorithm's keys, so a header that pairs
// RS256 with the ES256 key's kid (or the reverse) finds no key.
func TestTokenVerifiesOnlyWithItsKeysAlgorithm(t *testing.T) {
	ctx := t.Context()
	ring, err := newKeyRing(ctx, memStore(t), time.Now, time.Hour, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ring.signAs(ctx, algRS256, []byte(testPayload), false); err != nil {
		t.Fatal(err)
	}
	esKid, rsaKey := ring.current.id, ring.rsaCurrent
	enc := base64.RawURLEncoding
	signRSA := func(header string) string {
		t.Helper()
		text := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(testPayload))
		digest := sha256.Sum256([]byte(text))
		sig, err := rsa.SignPKCS1v15(nil, rsaKey.priv, crypto.SHA256, digest[:])
		if err != nil {
			t.Fatal(err)
		}
		return text + "." + enc.EncodeToString(sig)
	}
	// Members in another order than the server writes them: the parser
	// reads the header, not the fast path.
	if _, err := ring.verify(ctx, signRSA(`{"typ":"at+jwt","alg":"RS256","kid":"`+rsaKey.id+`"}`)); err != nil {
		t.Fatalf("a well-formed RS256 token: %v", err)
	}
	if _, err := ring.verify(ctx, signRSA(`{"typ":"at+jwt","alg":"RS256","kid":"`+esKid+`"}`)); err == nil {
		t.Fatal("an RS256 token naming the ES256 key verified")
	}
	ec := &jwtSigner{priv: ring.current.priv}
	if _, err := ring.verify(ctx, ec.sign(t, `{"typ":"at+jwt","alg":"ES256","kid":"`+esKid+`"}`, testPayload)); err != nil {
		t.Fatalf("a well-formed ES256 token: %v", err)
	}
	if _, err := ring.verify(ctx, ec.sign(t, `{"typ":"at+jwt","alg":"ES256","kid":"`+rsaKey.id+`"}`, testPayload)); err == nil {
		t.Fatal("an ES256 token naming the RS256 key verified")
	}
	// An RS256 signature cut or padded to another length is refused
	// before RSA sees it.
	good := signRSA(`{"alg":"RS256","kid":"` + rsaKey.id + `","typ":"at+jwt"}`)
	for _, bad := range []string{good[:len(good)-4], good + "AAAA"} {
		if _, err := ring.verify(ctx, bad); err == nil {
			t.Fatal("a signature of the wrong length verified")
		}
	}
}
