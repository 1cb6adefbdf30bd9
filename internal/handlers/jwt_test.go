package handlers

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
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
