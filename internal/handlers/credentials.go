package handlers

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
)

// newSecret returns 256 random bits as unpadded base64url: 43 characters,
// all of them unreserved (RFC 3986 §2.3), so the value needs no escaping in
// a URL, a form or HTTP Basic, where client libraries disagree on escaping.
func newSecret() string { return randomString(32) }

// newClientID returns a random client identifier of 128 bits, in the same
// unreserved alphabet as newSecret, that starts with a letter or a digit:
// an id starting with "-" reads as an option on a command line (caddy dcr
// delete -F39…), and one starting with "_" trips other tools. Drawing
// again costs nothing measurable: the first character is one of 62 of
// 64, and the other 20 characters keep their 120 random bits.
func newClientID() string {
	for {
		if id := randomString(16); id[0] != '-' && id[0] != '_' {
			return id
		}
	}
}

// randomString returns n random bytes as unpadded base64url.
func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (it crashes the program instead)
	if n > 32 {
		return base64.RawURLEncoding.EncodeToString(b)
	}
	// Encoded on the stack: the string is the only other allocation
	// (EncodeToString makes two), and every token's jti comes here.
	var out [43]byte
	enc := out[:base64.RawURLEncoding.EncodedLen(n)]
	base64.RawURLEncoding.Encode(enc, b)
	return string(enc)
}

// bearerToken extracts the token of an "Authorization: Bearer <token>"
// header (RFC 6750 §2.1). The scheme is case-insensitive; the token must be
// a b64token. It reports false when the header is missing, repeated, of
// another scheme or malformed.
func bearerToken(r *http.Request) (string, bool) {
	token, ok := bearerTokenUnchecked(r)
	return checkedB64Token(token, ok)
}

// bearerTokenUnchecked is bearerToken without the b64token check, for the
// gate's hot path, which checks the syntax only for a token it has not
// verified before. It reads the header map directly: "Authorization" is
// already canonical.
func bearerTokenUnchecked(r *http.Request) (string, bool) {
	values := r.Header["Authorization"]
	if len(values) != 1 {
		return "", false
	}
	return cutBearer(values[0])
}

// parseBearer parses the value of an Authorization header holding a bearer
// token.
func parseBearer(v string) (string, bool) {
	return checkedB64Token(cutBearer(v))
}

// checkedB64Token passes on a token that is a b64token, and "" otherwise.
func checkedB64Token(token string, ok bool) (string, bool) {
	if !ok || !isB64Token(token) {
		return "", false
	}
	return token, true
}

// cutBearer takes the token out of "Bearer <token>" without checking its
// syntax.
func cutBearer(v string) (string, bool) {
	if len(v) < 7 || !strings.EqualFold(v[:7], "Bearer ") {
		return "", false
	}
	token := strings.TrimLeft(v[7:], " ")
	return token, token != ""
}

// isB64Token reports whether s matches RFC 6750's
// b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isB64Token(s string) bool {
	if s == "" {
		return false
	}
	i := 0
	for ; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/') {
			break
		}
	}
	if i == 0 {
		return false
	}
	for ; i < len(s); i++ {
		if s[i] != '=' {
			return false
		}
	}
	return true
}

// parseBasic decodes the credentials of an "Authorization: Basic" header.
// RFC 6749 §2.3.1: the id and secret are each form-urlencoded before they
// are joined, so both halves are decoded (a value with no escapes decodes
// to itself).
func parseBasic(v string) (id, secret string, ok bool) {
	scheme, payload, found := strings.Cut(v, " ")
	if !found || !strings.EqualFold(scheme, "Basic") {
		return "", "", false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(payload))
	if err != nil {
		return "", "", false
	}
	encID, encSecret, found := strings.Cut(string(raw), ":")
	if !found {
		return "", "", false
	}
	id, err1 := url.QueryUnescape(encID)
	secret, err2 := url.QueryUnescape(encSecret)
	if err1 != nil || err2 != nil || id == "" {
		return "", "", false
	}
	return id, secret, true
}
