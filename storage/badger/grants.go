package badger

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"

	bdb "github.com/dgraph-io/badger/v4"

	"github.com/caddy-dcr/caddy-dcr/storage"
)

// Key prefixes for the authorization code flow.
const (
	prefixAuthCode     = "ac/" // ac/<hex hash of code> -> AuthCode JSON
	prefixGrant        = "g/"  // g/<hex sha256 of user>/<client id> -> storage.Grant JSON
	prefixClientGrants = "gc/" // gc/<client id>/<hex sha256 of user> -> empty, to find a client's grants
)

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

// requireGrant is ErrNotFound unless the grant with id still exists for
// subject and client: a code or refresh token issued under a grant is good
// only while it does. Records made before grants had IDs name none and are
// not checked.
func requireGrant(txn *bdb.Txn, id, subject, clientID string) error {
	if id == "" {
		return nil
	}
	var g storage.Grant
	if err := getJSON(txn, grantKey(subject, clientID), &g); err != nil {
		return err
	}
	if g.ID != id {
		return storage.ErrNotFound
	}
	return nil
}

// CreateAuthCode implements storage.Store. Badger keeps the code for
// storage.UsedCodeRetention after it expires, so a late replay is known.
func (s *Store) CreateAuthCode(ctx context.Context, hash []byte, c *storage.AuthCode) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return s.update(ctx, func(txn *bdb.Txn) error {
		return setUntil(txn, authCodeKey(hash), b, codeRetainedUntil(c))
	})
}

func codeRetainedUntil(c *storage.AuthCode) int64 {
	return c.ExpiresAt + int64(storage.UsedCodeRetention/time.Second)
}

// ConsumeAuthCode implements storage.Store.
func (s *Store) ConsumeAuthCode(ctx context.Context, hash []byte, at int64) (*storage.AuthCode, error) {
	var c storage.AuthCode
	err := s.update(ctx, func(txn *bdb.Txn) error {
		c = storage.AuthCode{}
		if err := getJSON(txn, authCodeKey(hash), &c); err != nil {
			return err
		}
		if c.Used {
			return storage.ErrTokenReused
		}
		if at >= c.ExpiresAt {
			return storage.ErrNotFound
		}
		if err := requireGrant(txn, c.Grant, c.Subject, c.ClientID); err != nil {
			return err
		}
		used := c
		used.Used, used.UsedAt = true, at
		b, err := json.Marshal(&used)
		if err != nil {
			return err
		}
		return setUntil(txn, authCodeKey(hash), b, codeRetainedUntil(&c))
	})
	if err != nil && !errors.Is(err, storage.ErrTokenReused) {
		return nil, err
	}
	return &c, err
}

// Grant implements storage.Store.
func (s *Store) Grant(ctx context.Context, subject, clientID string) (*storage.Grant, error) {
	var g storage.Grant
	err := s.view(ctx, func(txn *bdb.Txn) error {
		return getJSON(txn, grantKey(subject, clientID), &g)
	})
	if err != nil {
		return nil, err
	}
	return &g, nil
}

// RecordGrant implements storage.Store.
func (s *Store) RecordGrant(ctx context.Context, g *storage.Grant) (*storage.Grant, error) {
	var out storage.Grant
	err := s.update(ctx, func(txn *bdb.Txn) error {
		key := grantKey(g.Subject, g.ClientID)
		out = *g
		var stored storage.Grant
		switch err := getJSON(txn, key, &stored); {
		case err == nil:
			stored.Merge(g)
			out = stored
		case !errors.Is(err, storage.ErrNotFound):
			return err
		}
		b, err := json.Marshal(&out)
		if err != nil {
			return err
		}
		if err := txn.Set(clientGrantKey(g.ClientID, g.Subject), nil); err != nil {
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
func (s *Store) Grants(ctx context.Context, subject string) ([]*storage.Grant, error) {
	return scanJSON[storage.Grant](ctx, s, grantPrefix(subject))
}

// RevokeGrant implements storage.Store: the grant's deletion and its
// revocation are one transaction, which kills every code and token issued
// under it; the refresh tokens' records are deleted afterwards, in
// batches.
func (s *Store) RevokeGrant(ctx context.Context, subject, clientID string, until int64) (*storage.Grant, error) {
	var g storage.Grant
	err := s.update(ctx, func(txn *bdb.Txn) error {
		g = storage.Grant{}
		if err := getJSON(txn, grantKey(subject, clientID), &g); err != nil {
			return err
		}
		if err := deleteGrant(txn, subject, clientID); err != nil {
			return err
		}
		if g.ID != "" {
			if err := revoke(txn, prefixRevokedGrant, g.ID, until); err != nil {
				return err
			}
		}
		for _, fam := range g.Families {
			if err := revoke(txn, prefixRevokedFamily, fam, until); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Revoked from here on: a token under a grant that is gone is dead.
	// Deleting the tokens is cleanup.
	prefixes := []string{prefixGrantTokens + g.ID + "/"}
	for _, fam := range g.Families {
		prefixes = append(prefixes, prefixFamilyTokens+fam+"/")
	}
	s.purge(ctx, prefixes...)
	return &g, nil
}

func deleteGrant(txn *bdb.Txn, subject, clientID string) error {
	if err := txn.Delete(clientGrantKey(clientID, subject)); err != nil {
		return err
	}
	return txn.Delete(grantKey(subject, clientID))
}

// deleteClientGrants removes the grants listed under a client grant index
// entry keys.
func deleteClientGrants(txn *bdb.Txn, clientID string, keys []string) error {
	prefix := prefixClientGrants + clientID + "/"
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
