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
	prefixAuthCode     = "ac/" // ac/<hex hash of code> -> AuthCode JSON
	prefixGrant        = "g/"  // g/<hex sha256 of user>/<client id> -> Grant JSON
	prefixClientGrants = "gc/" // gc/<client id>/<hex sha256 of user> -> empty, to find a client's grants
)

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
	// Grant is the ID of the grant the code was issued under; the code
	// is good only while that grant stands.
	Grant string `json:"grant,omitempty"`
	// UsedAt is when the code was exchanged (unix seconds), so that a
	// second exchange can be told apart from a late replay.
	UsedAt int64 `json:"used_at,omitempty"`
}

// Grant is a person's consent to a client. Every code and token issued
// under it carries its ID, so that revoking the grant reaches all of them
// with one marker, however many were issued.
type Grant struct {
	// ID is random and new each time a grant is made, so a grant made
	// again after a revocation does not revive what the revocation ended.
	ID       string `json:"id,omitempty"`
	Subject  string `json:"sub"`
	ClientID string `json:"client_id"`
	// ClientName is the client's name when the grant was last made, so
	// that listing grants needs no client lookups (a metadata-document
	// client's would be fetches over the network).
	ClientName string `json:"client_name,omitempty"`
	Scope      string `json:"scope"`
	CreatedAt  int64  `json:"created_at"`
	UpdatedAt  int64  `json:"updated_at"`
	// Families are the token families of grants recorded before grants
	// had an ID; they are revoked with the grant.
	Families []string `json:"families,omitempty"`
}

func authCodeKey(hash []byte) []byte { return []byte(prefixAuthCode + hex.EncodeToString(hash)) }

func subjectKey(subject string) string {
	sum := sha256.Sum256([]byte(subject))
	return hex.EncodeToString(sum[:])
}

func grantPrefix(subject string) string { return prefixGrant + subjectKey(subject) + "/" }

func grantKey(subject, clientID string) []byte { return []byte(grantPrefix(subject) + clientID) }

func clientGrantKey(clientID, subject string) []byte {
	return []byte(prefixClientGrants + clientID + "/" + subjectKey(subject))
}

// grantStands reports whether the grant with id still exists for subject
// and client: a code or refresh token issued under a grant is good only
// while it does. Records made before grants had IDs name none and are not
// checked.
func grantStands(txn *badger.Txn, id, subject, clientID string) (bool, error) {
	if id == "" {
		return true, nil
	}
	var g Grant
	err := getJSON(txn, grantKey(subject, clientID), &g)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil && g.ID == id, err
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

// ConsumeAuthCode marks the code that hashes to hash as used at the unix
// time at and returns it. A code used before is returned with
// ErrTokenReused (and the time of its first use), so the caller can revoke
// what it issued (RFC 6749 §4.1.2). A code whose grant was revoked is
// ErrNotFound.
func (s *Badger) ConsumeAuthCode(ctx context.Context, hash []byte, at int64) (*AuthCode, error) {
	var c AuthCode
	err := s.update(ctx, func(txn *badger.Txn) error {
		c = AuthCode{}
		if err := getJSON(txn, authCodeKey(hash), &c); err != nil {
			return err
		}
		if c.Used {
			return ErrTokenReused
		}
		if ok, err := grantStands(txn, c.Grant, c.Subject, c.ClientID); !ok || err != nil {
			if err == nil {
				err = ErrNotFound
			}
			return err
		}
		used := c
		used.Used, used.UsedAt = true, at
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
		return getJSON(txn, grantKey(subject, clientID), &g)
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
		key := grantKey(subject, clientID)
		g := Grant{Subject: subject, ClientID: clientID}
		if err := getJSON(txn, key, &g); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		if err := update(&g); err != nil {
			return err
		}
		b, err := json.Marshal(&g)
		if err != nil {
			return err
		}
		out = g
		if err := txn.Set(clientGrantKey(clientID, subject), nil); err != nil {
			return err
		}
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

// RevokeGrant removes a person's grant to a client and, in the same
// transaction, everything issued under it: its refresh tokens are deleted
// and its access tokens revoked until the unix time until (when the last
// of them expires). A missing grant is ErrNotFound.
func (s *Badger) RevokeGrant(ctx context.Context, subject, clientID string, until int64) error {
	var g Grant
	err := s.update(ctx, func(txn *badger.Txn) error {
		g = Grant{}
		if err := getJSON(txn, grantKey(subject, clientID), &g); err != nil {
			return err
		}
		if err := deleteGrant(txn, subject, clientID); err != nil {
			return err
		}
		if g.ID != "" {
			if err := deleteByIndex(txn, prefixGrantTokens+g.ID+"/"); err != nil {
				return err
			}
			if err := revoke(txn, prefixRevokedGrant, g.ID, until); err != nil {
				return err
			}
		}
		for _, fam := range g.Families {
			if err := revokeFamily(txn, fam, until); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if g.ID != "" {
		s.revoked.add(prefixRevokedGrant, until, g.ID)
	}
	s.revoked.add(prefixRevokedFamily, until, g.Families...)
	return nil
}

func deleteGrant(txn *badger.Txn, subject, clientID string) error {
	if err := txn.Delete(clientGrantKey(clientID, subject)); err != nil {
		return err
	}
	return txn.Delete(grantKey(subject, clientID))
}

// deleteClientGrants removes every grant made to a client.
func deleteClientGrants(txn *badger.Txn, clientID string) error {
	prefix := prefixClientGrants + clientID + "/"
	keys, err := keysUnder(txn, prefix)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if err := txn.Delete([]byte(prefixGrant + k[len(prefix):] + "/" + clientID)); err != nil {
			return err
		}
		if err := txn.Delete([]byte(k)); err != nil {
			return err
		}
	}
	return nil
}
