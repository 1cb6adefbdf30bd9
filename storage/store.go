// Package storage holds caddy-dcr's records (registered clients and the
// indexes that find them) and the Store interface the HTTP handlers use to
// reach them. Badger is the implementation; handlers never import it.
package storage

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
)

// ErrNotFound is returned when a record does not exist. It wraps
// fs.ErrNotExist, so callers may test either with errors.Is.
var ErrNotFound = fmt.Errorf("record not found: %w", fs.ErrNotExist)

// ErrExists is returned by CreateClient when the client id is already taken.
var ErrExists = errors.New("record already exists")

// Store is the persistence contract of caddy-dcr.
//
// Every method takes the request's context first and gives up when it is
// cancelled. Methods are safe for concurrent use. Reads return ErrNotFound
// (never a nil record with a nil error) when nothing matches, so a read
// failure is never mistaken for "no such client". Each write is atomic: it
// is applied whole or not at all, and a conflicting concurrent write is
// retried internally while ctx is live.
type Store interface {
	// CreateClient stores a new client and indexes its registration
	// access token hash. It returns ErrExists if the id is taken.
	CreateClient(ctx context.Context, c *Client) error

	// Client returns the client with the given id.
	Client(ctx context.Context, id string) (*Client, error)

	// ClientByRegistrationToken returns the client whose registration
	// access token hashes to hash (see HashSecret).
	ClientByRegistrationToken(ctx context.Context, hash []byte) (*Client, error)

	// UpdateClient reads the client with the given id, passes a copy to
	// update and stores what update leaves in it, re-indexing the
	// registration access token if its hash changed, all in one
	// transaction. If update returns an error nothing is written and that
	// error is returned. update may run more than once when a concurrent
	// write conflicts, so it must not have side effects beyond the client.
	UpdateClient(ctx context.Context, id string, update func(*Client) error) (*Client, error)

	// DeleteClient removes the client and everything that hangs on it:
	// its refresh tokens and the grants people made to it are deleted,
	// and its access tokens revoked until the unix time until (when the
	// last of them expires; the revocation is forgotten after that).
	// Deleting a client that does not exist returns ErrNotFound.
	DeleteClient(ctx context.Context, id string, until int64) error

	// Clients lists up to limit clients in id order, starting after the
	// id given as cursor ("" for the start). It returns the cursor for
	// the next page, "" when there is none.
	Clients(ctx context.Context, cursor string, limit int) (clients []*Client, next string, err error)

	// SigningKeys returns the access token signing keys, oldest first.
	SigningKeys(ctx context.Context) ([]*SigningKey, error)
	// PutSigningKey stores a signing key.
	PutSigningKey(ctx context.Context, k *SigningKey) error
	// ServerSecret returns a random secret kept under name, made the
	// first time it is asked for.
	ServerSecret(ctx context.Context, name string) ([]byte, error)
	// DeleteSigningKey removes a signing key; a missing one is no error.
	DeleteSigningKey(ctx context.Context, id string) error

	// CreateRefreshToken stores a refresh token under the hash of its
	// value.
	CreateRefreshToken(ctx context.Context, hash []byte, t *RefreshToken) error
	// RefreshToken returns the refresh token whose value hashes to hash.
	RefreshToken(ctx context.Context, hash []byte) (*RefreshToken, error)
	// RotateRefreshToken lets next mark the token that hashes to hash as
	// used and stores that with the one next returns, atomically; when
	// next answers ErrTokenReused the stored token comes back with it.
	// A token whose grant was revoked is ErrNotFound. See Badger's method.
	RotateRefreshToken(ctx context.Context, hash []byte,
		next func(old *RefreshToken) (newHash []byte, t *RefreshToken, err error)) (*RefreshToken, error)
	// RevokeFamily deletes a family's refresh tokens and revokes the
	// access tokens issued from them until the unix time until.
	RevokeFamily(ctx context.Context, family string, until int64) error
	// RevokeAccessToken revokes one access token until it expires (exp).
	RevokeAccessToken(ctx context.Context, jti string, exp int64) error

	// CreateAuthCode stores an authorization code under the hash of its
	// value.
	CreateAuthCode(ctx context.Context, hash []byte, c *AuthCode) error
	// ConsumeAuthCode marks a code used at the unix time at and returns
	// it; a code used before comes back with ErrTokenReused. A code whose
	// grant was revoked is ErrNotFound.
	ConsumeAuthCode(ctx context.Context, hash []byte, at int64) (*AuthCode, error)

	// Grant returns a person's grant to a client.
	Grant(ctx context.Context, subject, clientID string) (*Grant, error)
	// UpdateGrant changes (or creates) a person's grant to a client in
	// one transaction.
	UpdateGrant(ctx context.Context, subject, clientID string, update func(*Grant) error) (*Grant, error)
	// Grants lists a person's grants.
	Grants(ctx context.Context, subject string) ([]*Grant, error)
	// RevokeGrant removes a person's grant and, atomically, everything
	// issued under it: refresh tokens deleted, access tokens revoked
	// until the unix time until. A missing grant is ErrNotFound.
	RevokeGrant(ctx context.Context, subject, clientID string, until int64) error

	Revocations
}
