// Package storage holds caddy-dcr's records and the Store contract that
// every backend implements (storage/badger, storage/postgres) and the HTTP
// handlers use. Handlers see records, never a backend's encoding.
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

// ErrConflict is returned by a compare-and-swap write whose condition no
// longer holds: the record changed since the caller read it.
var ErrConflict = errors.New("record changed concurrently")

// ErrTokenReused is returned by RotateRefreshToken for a refresh token that
// was already rotated (and may not be presented again) and by
// ConsumeAuthCode for a code already exchanged: a replay, after which the
// caller may revoke the family.
var ErrTokenReused = errors.New("token already used")

// ErrTooManyReuses is returned by RotateRefreshToken for a token presented
// again within its reuse window more often than the rotation allows: not a
// replay (nothing is revoked), but no more siblings.
var ErrTooManyReuses = errors.New("token presented again too often")

// ErrRevoked is returned by CreateRefreshToken for a token whose family,
// grant or client was revoked meanwhile (a code exchange racing a
// revocation): it is not stored.
var ErrRevoked = errors.New("revoked")

// ErrUnavailable marks a failure of the backend itself (a database that is
// down or too slow), as opposed to an answer about the records; callers
// answer 503 and may retry.
var ErrUnavailable = errors.New("storage unavailable")

// Store is the persistence contract of caddy-dcr.
//
// Every method takes the request's context first and gives up when it is
// cancelled. Methods are safe for concurrent use. Reads return ErrNotFound
// (never a nil record with a nil error) when nothing matches, so a read
// failure is never mistaken for "no such client". Each write is atomic:
// applied whole or not at all. No caller code runs inside a backend's
// transaction: conditional writes take their condition as data
// (compare-and-swap), so a SQL backend does each in one statement or one
// short transaction. Records carry their expiry as data (ExpiresAt,
// Until); a backend stops returning a record once it has expired and
// removes it in its own time.
type Store interface {
	// CreateClient stores a new client and indexes its registration
	// access token hash. It returns ErrExists if the id is taken.
	CreateClient(ctx context.Context, c *Client) error
	// Client returns the client with the given id. A miss costs about
	// what a hit costs (a timing defense of client authentication).
	Client(ctx context.Context, id string) (*Client, error)
	// ClientByRegistrationToken returns the client whose registration
	// access token hashes to hash (see HashSecret).
	ClientByRegistrationToken(ctx context.Context, hash []byte) (*Client, error)
	// CreateClientWithInitialAccessToken stores c as CreateClient does
	// and, in the same atomic write, counts one use of the initial access
	// token whose value hashes to hash, at the unix time at. A token that
	// is missing, expired or used up is ErrNotFound, and nothing is
	// stored.
	CreateClientWithInitialAccessToken(ctx context.Context, c *Client, hash []byte, at int64) error
	// ReplaceClient stores c's registration (secret, registration token,
	// metadata) in place of the client with c's id, if that client's
	// registration token hash is still tokenHash (ErrConflict otherwise:
	// it was rotated concurrently), re-indexing the registration token
	// when c's differs. It keeps the stored Origin, LastUsedAt and
	// Settings, which have writers of their own. A missing client is
	// ErrNotFound.
	ReplaceClient(ctx context.Context, c *Client, tokenHash []byte) error
	// SetClientSettings replaces a client's operator settings with s, if
	// they are still old (ErrConflict otherwise, and nothing changes: a
	// concurrent write came first; read the client again and retry), and
	// returns the client as stored. A missing client is ErrNotFound.
	SetClientSettings(ctx context.Context, id string, old, s ClientSettings) (*Client, error)
	// TouchClient records that a token was issued to the client at the
	// unix time at. LastUsedAt only moves forward. A missing client is
	// ErrNotFound.
	TouchClient(ctx context.Context, id string, at int64) error
	// DeleteClient removes the client and everything that hangs on it:
	// its refresh tokens and the grants people made to it are deleted,
	// and its access tokens revoked until the unix time until (when the
	// last of them expires). A missing client is ErrNotFound.
	DeleteClient(ctx context.Context, id string, until int64) error
	// Clients lists up to limit clients in id order, starting after the
	// id given as cursor ("" for the start). It returns the cursor for
	// the next page, "" when there is none.
	Clients(ctx context.Context, cursor string, limit int) (clients []*Client, next string, err error)
	// CountClients returns how many clients are stored. It is cheap (no
	// scan of the clients): registration asks it when max_clients is
	// set.
	CountClients(ctx context.Context) (int, error)
	// ReapClients removes up to p.Limit clients that p selects (see
	// ReapPolicy) from those after p.After, oldest first, and returns
	// their positions in that order. Each is removed
	// as DeleteClient removes one, atomically with the check that
	// selected it, so a client used meanwhile stays. Processes sharing
	// the store may reap at the same time: each client is removed once,
	// and a process may find nothing to do while another reaps.
	ReapClients(ctx context.Context, p ReapPolicy) ([]ClientPosition, error)
	// DisabledClients returns the ids of the clients whose settings
	// disable them, for an in-memory view to load: the token gate
	// refuses their tokens (see Cached).
	DisabledClients(ctx context.Context) ([]string, error)

	// CreateInitialAccessToken stores t; ErrExists if its id is taken.
	CreateInitialAccessToken(ctx context.Context, t *InitialAccessToken) error
	// InitialAccessTokens lists the initial access tokens that have not
	// expired, oldest first (used-up ones included).
	InitialAccessTokens(ctx context.Context) ([]*InitialAccessToken, error)
	// DeleteInitialAccessToken removes one; a missing one is ErrNotFound.
	DeleteInitialAccessToken(ctx context.Context, id string) error

	// SigningKeys returns the token signing keys of every algorithm,
	// oldest first.
	SigningKeys(ctx context.Context) ([]*SigningKey, error)
	// AddSigningKey stores k unless a key of k's algorithm (Algorithm)
	// created at or after the unix time newerThan exists already (another
	// instance rotated first), and reports whether it stored k. Several
	// instances racing to rotate one algorithm's key store exactly one;
	// the keys of other algorithms do not count.
	AddSigningKey(ctx context.Context, k *SigningKey, newerThan int64) (bool, error)
	// DeleteSigningKey removes a signing key; a missing one is no error.
	DeleteSigningKey(ctx context.Context, id string) error
	// ServerSecret returns a random 32-byte secret kept under name, made
	// the first time it is asked for; every caller gets the same one.
	ServerSecret(ctx context.Context, name string) ([]byte, error)

	// CreateRefreshToken stores a refresh token under the hash of its
	// value, unless its family, grant or client was revoked (ErrRevoked):
	// a revocation and a creation racing each other never leave a live
	// token behind.
	CreateRefreshToken(ctx context.Context, hash []byte, t *RefreshToken) error
	// RefreshToken returns the refresh token whose value hashes to hash,
	// used or not (callers check ExpiresAt with their clock). A token that
	// a revocation of its grant, its family or its client covers is
	// ErrNotFound at once, however many tokens that revocation covers.
	RefreshToken(ctx context.Context, hash []byte) (*RefreshToken, error)
	// RotateRefreshToken applies a rotation (see Rotation) to the refresh
	// token that hashes to hash and stores its successor, atomically, and
	// returns the token as it was. A token that may not be presented again
	// comes back, unchanged, with ErrTokenReused (a replay) or
	// ErrTooManyReuses. A token that is missing, expired, of another
	// client, or revoked (as for RefreshToken) is ErrNotFound.
	RotateRefreshToken(ctx context.Context, hash []byte, r Rotation) (*RefreshToken, error)
	// RevokeFamily deletes a family's refresh tokens and revokes the
	// access tokens issued from them until the unix time until.
	RevokeFamily(ctx context.Context, family string, until int64) error
	// RevokeAccessToken revokes one access token until it expires
	// (until).
	RevokeAccessToken(ctx context.Context, jti string, until int64) error

	// CreateAuthCode stores an authorization code under the hash of its
	// value.
	CreateAuthCode(ctx context.Context, hash []byte, c *AuthCode) error
	// ConsumeAuthCode marks an unused code used at the unix time at and
	// returns it. A code used before comes back with ErrTokenReused (and
	// the time of its first use). A code that is missing, expired or
	// whose grant was revoked is ErrNotFound.
	ConsumeAuthCode(ctx context.Context, hash []byte, at int64) (*AuthCode, error)

	// Grant returns a person's grant to a client.
	Grant(ctx context.Context, subject, clientID string) (*Grant, error)
	// RecordGrant creates g, or, when the person already granted the
	// client, adds g's scopes to the stored grant and takes g's client
	// name and UpdatedAt, keeping its ID and CreatedAt. It returns the
	// grant as stored.
	RecordGrant(ctx context.Context, g *Grant) (*Grant, error)
	// Grants lists a person's grants.
	Grants(ctx context.Context, subject string) ([]*Grant, error)
	// RevokeGrant removes a person's grant and, atomically, everything
	// issued under it: refresh tokens deleted, codes and access tokens
	// revoked until the unix time until. It returns the grant it removed.
	// A missing grant is ErrNotFound.
	RevokeGrant(ctx context.Context, subject, clientID string, until int64) (*Grant, error)

	// Revoked reports whether an access token with this jti, client,
	// family and grant ("" for none) was revoked: directly, through its
	// family, through its grant, or through its client (deleted). See
	// Cached for the in-memory answer the token gate uses.
	Revoked(ctx context.Context, jti, clientID, family, grant string) (bool, error)
	// Revocations returns every revocation that has not expired, for an
	// in-memory view to load.
	Revocations(ctx context.Context) ([]Revocation, error)

	// Close releases the backend.
	Close() error
}

// RevocationWatcher is implemented by backends shared by several
// processes: WatchRevocations calls fn with each revocation any process
// records, as soon as it is committed, until ctx is done. It calls resync
// whenever it may have missed some (at start and after a lost
// connection), so that the caller reloads them all.
type RevocationWatcher interface {
	WatchRevocations(ctx context.Context, fn func(Revocation), resync func()) error
}
