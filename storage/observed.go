package storage

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/caddy-dcr/caddy-dcr/internal/metrics"
)

// The operations whose latency Observe records, by their metric label.
const (
	opCreateClient = iota
	opClient
	opClientByRegistrationToken
	opReplaceClient
	opDeleteClient
	opClients
	opSigningKeys
	opAddSigningKey
	opDeleteSigningKey
	opServerSecret
	opCreateRefreshToken
	opRefreshToken
	opRotateRefreshToken
	opRevokeFamily
	opRevokeAccessToken
	opCreateAuthCode
	opConsumeAuthCode
	opGrant
	opRecordGrant
	opGrants
	opRevokeGrant
	opRevoked
	opRevocations
	opCreateClientWithInitialAccessToken
	opSetClientSettings
	opTouchClient
	opCreateInitialAccessToken
	opInitialAccessTokens
	opDeleteInitialAccessToken
	numOps
)

var opNames = [numOps]string{
	"create_client", "client", "client_by_registration_token", "replace_client", "delete_client", "clients",
	"signing_keys", "add_signing_key", "delete_signing_key", "server_secret",
	"create_refresh_token", "refresh_token", "rotate_refresh_token", "revoke_family", "revoke_access_token",
	"create_auth_code", "consume_auth_code",
	"grant", "record_grant", "grants", "revoke_grant", "revoked", "revocations",
	"create_client_with_initial_access_token", "set_client_settings", "touch_client",
	"create_initial_access_token", "initial_access_tokens", "delete_initial_access_token",
}

// opObservers are the histogram children of each operation, [op][0] for
// success and [op][1] for failure, resolved once so that timing a call
// allocates nothing.
var opObservers = func() (o [numOps][2]prometheus.Observer) {
	for i, name := range opNames {
		o[i][0] = metrics.StoreLatency(name, "ok")
		o[i][1] = metrics.StoreLatency(name, "error")
	}
	return o
}()

// Observe returns s with the latency of each of its operations recorded
// in caddy_dcr_store_operation_duration_seconds. An answer the contract
// foresees (ErrNotFound, ErrExists, ErrConflict, a reused or revoked
// token) is a success; only a failure of the backend counts as an error.
// A backend that follows revocations (RevocationWatcher) still does.
// Operations added to Store later pass through untimed until listed here.
func Observe(s Store) Store {
	o := observed{s}
	if w, ok := s.(RevocationWatcher); ok {
		return observedWatcher{o, w}
	}
	return o
}

type observed struct{ Store }

type observedWatcher struct {
	observed
	RevocationWatcher
}

// WatchRevocations implements RevocationWatcher; a watch lasts as long as
// its connection, so it is not timed.
func (o observedWatcher) WatchRevocations(ctx context.Context, fn func(Revocation), resync func()) error {
	return o.RevocationWatcher.WatchRevocations(ctx, fn, resync)
}

func done(op int, start time.Time, err error) {
	outcome := 0
	if err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrExists) && !errors.Is(err, ErrConflict) &&
		!errors.Is(err, ErrTokenReused) && !errors.Is(err, ErrTooManyReuses) && !errors.Is(err, ErrRevoked) {
		outcome = 1
	}
	opObservers[op][outcome].Observe(time.Since(start).Seconds())
}

// CreateClient implements Store, timed.
func (o observed) CreateClient(ctx context.Context, c *Client) error {
	start := time.Now()
	err := o.Store.CreateClient(ctx, c)
	done(opCreateClient, start, err)
	return err
}

// Client implements Store, timed.
func (o observed) Client(ctx context.Context, id string) (*Client, error) {
	start := time.Now()
	v, err := o.Store.Client(ctx, id)
	done(opClient, start, err)
	return v, err
}

// ClientByRegistrationToken implements Store, timed.
func (o observed) ClientByRegistrationToken(ctx context.Context, hash []byte) (*Client, error) {
	start := time.Now()
	v, err := o.Store.ClientByRegistrationToken(ctx, hash)
	done(opClientByRegistrationToken, start, err)
	return v, err
}

// ReplaceClient implements Store, timed.
func (o observed) ReplaceClient(ctx context.Context, c *Client, tokenHash []byte) error {
	start := time.Now()
	err := o.Store.ReplaceClient(ctx, c, tokenHash)
	done(opReplaceClient, start, err)
	return err
}

// DeleteClient implements Store, timed.
func (o observed) DeleteClient(ctx context.Context, id string, until int64) error {
	start := time.Now()
	err := o.Store.DeleteClient(ctx, id, until)
	done(opDeleteClient, start, err)
	return err
}

// Clients implements Store, timed.
func (o observed) Clients(ctx context.Context, cursor string, limit int) ([]*Client, string, error) {
	start := time.Now()
	v, next, err := o.Store.Clients(ctx, cursor, limit)
	done(opClients, start, err)
	return v, next, err
}

// SigningKeys implements Store, timed.
func (o observed) SigningKeys(ctx context.Context) ([]*SigningKey, error) {
	start := time.Now()
	v, err := o.Store.SigningKeys(ctx)
	done(opSigningKeys, start, err)
	return v, err
}

// AddSigningKey implements Store, timed.
func (o observed) AddSigningKey(ctx context.Context, k *SigningKey, newerThan int64) (bool, error) {
	start := time.Now()
	v, err := o.Store.AddSigningKey(ctx, k, newerThan)
	done(opAddSigningKey, start, err)
	return v, err
}

// DeleteSigningKey implements Store, timed.
func (o observed) DeleteSigningKey(ctx context.Context, id string) error {
	start := time.Now()
	err := o.Store.DeleteSigningKey(ctx, id)
	done(opDeleteSigningKey, start, err)
	return err
}

// ServerSecret implements Store, timed.
func (o observed) ServerSecret(ctx context.Context, name string) ([]byte, error) {
	start := time.Now()
	v, err := o.Store.ServerSecret(ctx, name)
	done(opServerSecret, start, err)
	return v, err
}

// CreateRefreshToken implements Store, timed.
func (o observed) CreateRefreshToken(ctx context.Context, hash []byte, t *RefreshToken) error {
	start := time.Now()
	err := o.Store.CreateRefreshToken(ctx, hash, t)
	done(opCreateRefreshToken, start, err)
	return err
}

// RefreshToken implements Store, timed.
func (o observed) RefreshToken(ctx context.Context, hash []byte) (*RefreshToken, error) {
	start := time.Now()
	v, err := o.Store.RefreshToken(ctx, hash)
	done(opRefreshToken, start, err)
	return v, err
}

// RotateRefreshToken implements Store, timed.
func (o observed) RotateRefreshToken(ctx context.Context, hash []byte, r Rotation) (*RefreshToken, error) {
	start := time.Now()
	v, err := o.Store.RotateRefreshToken(ctx, hash, r)
	done(opRotateRefreshToken, start, err)
	return v, err
}

// RevokeFamily implements Store, timed.
func (o observed) RevokeFamily(ctx context.Context, family string, until int64) error {
	start := time.Now()
	err := o.Store.RevokeFamily(ctx, family, until)
	done(opRevokeFamily, start, err)
	return err
}

// RevokeAccessToken implements Store, timed.
func (o observed) RevokeAccessToken(ctx context.Context, jti string, until int64) error {
	start := time.Now()
	err := o.Store.RevokeAccessToken(ctx, jti, until)
	done(opRevokeAccessToken, start, err)
	return err
}

// CreateAuthCode implements Store, timed.
func (o observed) CreateAuthCode(ctx context.Context, hash []byte, c *AuthCode) error {
	start := time.Now()
	err := o.Store.CreateAuthCode(ctx, hash, c)
	done(opCreateAuthCode, start, err)
	return err
}

// ConsumeAuthCode implements Store, timed.
func (o observed) ConsumeAuthCode(ctx context.Context, hash []byte, at int64) (*AuthCode, error) {
	start := time.Now()
	v, err := o.Store.ConsumeAuthCode(ctx, hash, at)
	done(opConsumeAuthCode, start, err)
	return v, err
}

// Grant implements Store, timed.
func (o observed) Grant(ctx context.Context, subject, clientID string) (*Grant, error) {
	start := time.Now()
	v, err := o.Store.Grant(ctx, subject, clientID)
	done(opGrant, start, err)
	return v, err
}

// RecordGrant implements Store, timed.
func (o observed) RecordGrant(ctx context.Context, g *Grant) (*Grant, error) {
	start := time.Now()
	v, err := o.Store.RecordGrant(ctx, g)
	done(opRecordGrant, start, err)
	return v, err
}

// Grants implements Store, timed.
func (o observed) Grants(ctx context.Context, subject string) ([]*Grant, error) {
	start := time.Now()
	v, err := o.Store.Grants(ctx, subject)
	done(opGrants, start, err)
	return v, err
}

// RevokeGrant implements Store, timed.
func (o observed) RevokeGrant(ctx context.Context, subject, clientID string, until int64) (*Grant, error) {
	start := time.Now()
	v, err := o.Store.RevokeGrant(ctx, subject, clientID, until)
	done(opRevokeGrant, start, err)
	return v, err
}

// Revoked implements Store, timed.
func (o observed) Revoked(ctx context.Context, jti, clientID, family, grant string) (bool, error) {
	start := time.Now()
	v, err := o.Store.Revoked(ctx, jti, clientID, family, grant)
	done(opRevoked, start, err)
	return v, err
}

// Revocations implements Store, timed.
func (o observed) Revocations(ctx context.Context) ([]Revocation, error) {
	start := time.Now()
	v, err := o.Store.Revocations(ctx)
	done(opRevocations, start, err)
	return v, err
}

// CreateClientWithInitialAccessToken implements Store, timed.
func (o observed) CreateClientWithInitialAccessToken(ctx context.Context, c *Client, hash []byte, at int64) error {
	start := time.Now()
	err := o.Store.CreateClientWithInitialAccessToken(ctx, c, hash, at)
	done(opCreateClientWithInitialAccessToken, start, err)
	return err
}

// SetClientSettings implements Store, timed.
func (o observed) SetClientSettings(ctx context.Context, id string, old, cs ClientSettings) (*Client, error) {
	start := time.Now()
	v, err := o.Store.SetClientSettings(ctx, id, old, cs)
	done(opSetClientSettings, start, err)
	return v, err
}

// TouchClient implements Store, timed.
func (o observed) TouchClient(ctx context.Context, id string, at int64) error {
	start := time.Now()
	err := o.Store.TouchClient(ctx, id, at)
	done(opTouchClient, start, err)
	return err
}

// CreateInitialAccessToken implements Store, timed.
func (o observed) CreateInitialAccessToken(ctx context.Context, t *InitialAccessToken) error {
	start := time.Now()
	err := o.Store.CreateInitialAccessToken(ctx, t)
	done(opCreateInitialAccessToken, start, err)
	return err
}

// InitialAccessTokens implements Store, timed.
func (o observed) InitialAccessTokens(ctx context.Context) ([]*InitialAccessToken, error) {
	start := time.Now()
	v, err := o.Store.InitialAccessTokens(ctx)
	done(opInitialAccessTokens, start, err)
	return v, err
}

// DeleteInitialAccessToken implements Store, timed.
func (o observed) DeleteInitialAccessToken(ctx context.Context, id string) error {
	start := time.Now()
	err := o.Store.DeleteInitialAccessToken(ctx, id)
	done(opDeleteInitialAccessToken, start, err)
	return err
}
