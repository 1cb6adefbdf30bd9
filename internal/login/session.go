package login

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
)

// Session is a signed-in person, carried in a cookie sealed with a key
// from the store, so that every instance and every reload reads it.
type Session struct {
	// ID is new at every sign-in; logging out revokes it.
	ID       string            `json:"sid"`
	Login    string            `json:"login"`
	Subject  string            `json:"sub"`
	Claims   map[string]string `json:"claims,omitempty"`
	AuthTime int64             `json:"auth_time"`
	Expires  int64             `json:"exp"`
}

// sessionAAD binds a sealed value to its purpose and format version: a
// value sealed for something else with the same key does not open.
var sessionAAD = []byte("caddy-dcr session v1")

// MaxCookieLen bounds a session cookie; a person whose claims do not fit
// cannot sign in (browsers drop cookies over about 4 KiB anyway).
const MaxCookieLen = 3800

var errBadCookie = errors.New("session cookie is not valid")

// Seal encrypts and authenticates s with key (AES-256-GCM): the browser
// can neither read the person's claims nor change them.
func Seal(key []byte, s *Session) (string, error) {
	aead, err := newAEAD(key)
	if err != nil {
		return "", err
	}
	plain, err := json.Marshal(s)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, aead.NonceSize())
	_, _ = rand.Read(nonce)
	v := base64.RawURLEncoding.EncodeToString(aead.Seal(nonce, nonce, plain, sessionAAD))
	if len(v) > MaxCookieLen {
		return "", errors.New("the session does not fit in a cookie; the upstream sent too many claims")
	}
	return v, nil
}

// Open decrypts a sealed session. A forged, tampered or truncated value is
// an error; the caller checks Expires with its clock.
func Open(key []byte, v string) (*Session, error) {
	if len(v) > MaxCookieLen {
		return nil, errBadCookie
	}
	raw, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil {
		return nil, errBadCookie
	}
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	if len(raw) < aead.NonceSize()+aead.Overhead() {
		return nil, errBadCookie
	}
	plain, err := aead.Open(nil, raw[:aead.NonceSize()], raw[aead.NonceSize():], sessionAAD)
	if err != nil {
		return nil, errBadCookie
	}
	var s Session
	if err := json.Unmarshal(plain, &s); err != nil || s.Subject == "" || s.ID == "" {
		return nil, errBadCookie
	}
	return &s, nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
