package storage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"

	"github.com/dgraph-io/badger/v4"
)

// Key prefixes for the authorization code flow.
const (
	prefixAuthCode = "ac/" // ac/<hex hash of code> -> AuthCode JSON
	prefixGrant    = "g/"  // g/<hex sha256 of user>/<client id> -> Grant JSON
)

// maxGrantFamilies bounds the token families remembered per grant; the
// oldest are forgotten (their refresh tokens expire on their own).
const maxGrantFamilies = 64

// AuthCode is an issued authorization code (RFC 6749 §4.1.2), stored under
// the hash of its value and bound to everything the request named.
type AuthCode struct {
	ClientID      string            `json:"client_id"`
	RedirectURI   string            `json:"redirect_uri"`
	Challenge     string            `json:"code_challenge"`
	Scope         string            `json:"scope,omitempty"`
	Audience      string            `json:"aud"`
	Subject       string            `json:"sub"`
	ExpiresAt     int64             `json:"exp"`
	Family        string            `json:"family"`
	Claims        map[string]string `json:"claims,omitempty"`
	Used          bool              `json:"used,omitempty"`
	RetainedUntil int64             `json:"retained_until"`
}

// Grant is a person's consent to a client: the scopes approved and the
// token families issued under it, so that revoking the grant revokes them.
type Grant struct {
	Subject  string `json:"sub"`
	ClientID string `json:"client_id"`
	// ClientName is the client's name when the grant was last made, so
	// that listing grants needs no client lookups (a metadata-document
	// client's would be fetches over the network).
	ClientName string   `json:"client_name,omitempty"`
	Scope      string   `json:"scope"`
	CreatedAt  int64    `json:"created_at"`
	UpdatedAt  int64    `json:"updated_at"`
	Families   []string `json:"families,omitempty"`
}

func authCodeKey(hash []byte) []byte { return []byte(prefixAuthCode + hex.EncodeToString(hash)) }

func grantPrefix(subject string) string {
	sum := sha256.Sum256([]byte(subject))
	return prefixGrant + hex.EncodeToString(sum[:]) + "/"
}

// CreateAuthCode stores a new authorization code under the hash of its
// value; Badger may drop it after RetainedUntil.
func (s *Badger) CreateAuthCode(ctx context.Context, hash []byte, c *AuthCode) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return s.update(ctx, func(txn *badger.Txn) error {
		return setUntil(txn, authCodeKey(hash), b, c.RetainedUntil)
	})
}

// ConsumeAuthCode marks the code that hashes to hash as used and returns
// it. A code used before is returned with ErrTokenReused, so the caller can
// revoke what it issued (RFC 6749 §4.1.2).
func (s *Badger) ConsumeAuthCode(ctx context.Context, hash []byte) (*AuthCode, error) {
	var c AuthCode
	err := s.update(ctx, func(txn *badger.Txn) error {
		c = AuthCode{}
		if err := getJSON(txn, authCodeKey(hash), &c); err != nil {
			return err
		}
		if c.Used {
			return ErrTokenReused
		}
		used := c
		used.Used = true
		b, err := json.Marshal(&used)
		if err != nil {
			return err
		}
		return setUntil(txn, authCodeKey(hash), b, c.RetainedUntil)
	})
	if err != nil && !errors.Is(err, ErrTokenReused) {
		return nil, err
	}
	return &c, err
}

// Grant returns the person's grant to a client.
func (s *Badger) Grant(ctx context.Context, subject, clientID string) (*Grant, error) {
	var g Grant
	err := s.view(ctx, func(txn *badger.Txn) error {
		return getJSON(txn, []byte(grantPrefix(subject)+clientID), &g)
	})
	if err != nil {
		return nil, err
	}
	return &g, nil
}

// UpdateGrant reads the person's grant to a client (a zero Grant with
// Subject and ClientID set if there is none), lets update change it, and
// stores it, in one transaction.
func (s *Badger) UpdateGrant(ctx context.Context, subject, clientID string, update func(*Grant) error) (*Grant, error) {
	var out Grant
	err := s.update(ctx, func(txn *badger.Txn) error {
		key := []byte(grantPrefix(subject) + clientID)
		g := Grant{Subject: subject, ClientID: clientID}
		if err := getJSON(txn, key, &g); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		if err := update(&g); err != nil {
			return err
		}
		if n := len(g.Families); n > maxGrantFamilies {
			g.Families = g.Families[n-maxGrantFamilies:]
		}
		b, err := json.Marshal(&g)
		if err != nil {
			return err
		}
		out = g
		return txn.Set(key, b)
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// Grants lists a person's grants.
func (s *Badger) Grants(ctx context.Context, subject string) ([]*Grant, error) {
	return scanJSON[Grant](ctx, s, grantPrefix(subject))
}

// DeleteGrant removes a person's grant to a client and returns it, so the
// caller can revoke its token families. A missing grant is ErrNotFound.
func (s *Badger) DeleteGrant(ctx context.Context, subject, clientID string) (*Grant, error) {
	var g Grant
	err := s.update(ctx, func(txn *badger.Txn) error {
		key := []byte(grantPrefix(subject) + clientID)
		if err := getJSON(txn, key, &g); err != nil {
			return err
		}
		return txn.Delete(key)
	})
	if err != nil {
		return nil, err
	}
	return &g, nil
}
