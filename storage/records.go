package storage

import (
	"slices"
	"strings"
	"time"
)

// UsedCodeRetention is how long a backend keeps an authorization code after
// it expired, so that a late replay is still recognised as one.
const UsedCodeRetention = time.Hour

// SigningKey is a private key that signs access tokens and ID tokens.
type SigningKey struct {
	ID string `json:"kid"`
	// Private is the private key in the form its algorithm's signer
	// reads: for ES256 the raw P-256 scalar (crypto/ecdsa's
	// PrivateKey.Bytes), for RS256 PKCS #8, DER.
	Private   []byte `json:"private"`
	CreatedAt int64  `json:"created_at"`
	// Alg is the JWS algorithm the key signs with (RFC 7518 §3.1); ""
	// is ES256, the only one before there were others (see Algorithm).
	// Each algorithm's keys rotate on their own (AddSigningKey).
	Alg string `json:"alg,omitempty"`
}

// DefaultSigningAlg is the algorithm of a SigningKey with no Alg: the keys
// stored before keys had one.
const DefaultSigningAlg = "ES256"

// Algorithm returns k's JWS algorithm, DefaultSigningAlg when Alg is "".
func (k *SigningKey) Algorithm() string {
	if k.Alg == "" {
		return DefaultSigningAlg
	}
	return k.Alg
}

// RefreshToken is an issued refresh token, stored under the hash of its
// value. Tokens rotated from one another share a Family.
type RefreshToken struct {
	ClientID  string `json:"client_id"`
	Subject   string `json:"sub"`
	Scope     string `json:"scope,omitempty"`
	Audience  string `json:"aud,omitempty"`
	IssuedAt  int64  `json:"iat"`
	ExpiresAt int64  `json:"exp"`
	Family    string `json:"family"`
	// Grant is the ID of the grant the token was issued under ("" for
	// tokens from before grants had IDs); the token is good only while
	// that grant stands.
	Grant string `json:"grant,omitempty"`
	// Used marks a token that was rotated; presenting it again is a
	// replay (OAuth 2.1 §4.3.1), unless the rotation allows a short reuse
	// window. UsedAt is when it was first rotated (unix seconds) and
	// Reuses how often it was presented again within the window.
	Used   bool  `json:"used,omitempty"`
	UsedAt int64 `json:"used_at,omitempty"`
	Reuses int   `json:"reuses,omitempty"`
	// Claims are extra claims carried into the access tokens.
	Claims map[string]string `json:"claims,omitempty"`
	// AuthTime is when the person authenticated (unix seconds; 0 when
	// unknown), carried from the code so that the ID tokens of a refresh
	// keep it (OpenID Connect Core §12.2).
	AuthTime int64 `json:"auth_time,omitempty"`
}

// Rotation is one use of a refresh token at the token endpoint.
type Rotation struct {
	// ClientID is the client presenting the token.
	ClientID string
	// At is the time of the use, unix seconds.
	At int64
	// ReuseWindow (seconds; 0: none) and MaxReuses let the token's own
	// client present it again shortly after its first use, as clients
	// that refresh in parallel do, without it counting as a replay.
	ReuseWindow int64
	MaxReuses   int
	// NextHash and Next are the successor to store.
	NextHash []byte
	Next     *RefreshToken
}

// Apply is the rule of a rotation, which every backend applies to the
// token as stored, under its write lock: it marks t used (or counts a
// reuse within the window) and reports nil, or reports ErrTokenReused (a
// replay, t unchanged), ErrTooManyReuses, or ErrNotFound (expired, or
// another client's token, which must neither work nor revoke anything).
func (r *Rotation) Apply(t *RefreshToken) error {
	if t.ClientID != r.ClientID || r.At >= t.ExpiresAt {
		return ErrNotFound
	}
	switch {
	case !t.Used:
		t.Used, t.UsedAt = true, r.At
	case !WithinReuseWindow(t.UsedAt, r.At, r.ReuseWindow):
		return ErrTokenReused
	case t.Reuses >= r.MaxReuses:
		// Within the window: the client racing itself, not a thief.
		return ErrTooManyReuses
	default:
		t.Reuses++
	}
	return nil
}

// WithinReuseWindow reports whether a token or code first used at the unix
// time usedAt may be presented again at the unix time at without counting
// as a replay, given a window in seconds (0: never). The times are whole
// seconds, so the window is taken short rather than long: at most window
// seconds, at least window-1.
func WithinReuseWindow(usedAt, at, window int64) bool {
	return window > 0 && at-usedAt < window
}

// AuthCode is an issued authorization code (RFC 6749 §4.1.2), stored under
// the hash of its value and bound to everything the request named.
type AuthCode struct {
	ClientID    string            `json:"client_id"`
	RedirectURI string            `json:"redirect_uri"`
	Challenge   string            `json:"code_challenge"`
	Scope       string            `json:"scope,omitempty"`
	Audience    string            `json:"aud"`
	Subject     string            `json:"sub"`
	ExpiresAt   int64             `json:"exp"`
	Family      string            `json:"family"`
	Claims      map[string]string `json:"claims,omitempty"`
	// Grant is the ID of the grant the code was issued under; the code
	// is good only while that grant stands.
	Grant string `json:"grant,omitempty"`
	// Used and UsedAt (unix seconds) record the exchange, so that a
	// second exchange can be told apart from a late replay.
	Used   bool  `json:"used,omitempty"`
	UsedAt int64 `json:"used_at,omitempty"`
	// Nonce is the OpenID Connect nonce of the authorization request,
	// returned in the ID token of the exchange ("" when none was sent).
	Nonce string `json:"nonce,omitempty"`
	// AuthTime is when the person authenticated (unix seconds; 0 when
	// unknown), the ID token's auth_time.
	AuthTime int64 `json:"auth_time,omitempty"`
	// RedirectURIOmitted marks a code whose authorization request left
	// redirect_uri out (RedirectURI is then the client's one registered
	// URI): the token request need not send it (RFC 6749 §4.1.3). False,
	// the value of codes from before, requires it.
	RedirectURIOmitted bool `json:"redirect_uri_omitted,omitempty"`
}

// Grant is a person's consent to a client. Every code and token issued
// under it carries its ID, so that revoking the grant reaches all of them
// with one revocation, however many were issued.
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

// Merge is the rule of RecordGrant when the person already granted the
// client: g, as stored, gains update's scopes, client name and UpdatedAt,
// and keeps its ID and CreatedAt.
func (g *Grant) Merge(update *Grant) {
	scopes := strings.Fields(g.Scope)
	for _, sc := range strings.Fields(update.Scope) {
		if !slices.Contains(scopes, sc) {
			scopes = append(scopes, sc)
		}
	}
	g.Scope = strings.Join(scopes, " ")
	g.ClientName = update.ClientName
	g.UpdatedAt = update.UpdatedAt
	if g.ID == "" {
		g.ID = update.ID // a grant from before grants had IDs
	}
}

// RevocationKind says what a Revocation names.
type RevocationKind string

// Revocation kinds.
const (
	RevokedToken  RevocationKind = "jti"    // one access token, by jti
	RevokedFamily RevocationKind = "family" // a refresh token family
	RevokedGrant  RevocationKind = "grant"  // a person's grant, by id
	RevokedClient RevocationKind = "client" // a deleted client

	// ClientDisabled is news rather than a revocation, carried with
	// them to the processes that follow a shared backend's revocations
	// (RevocationWatcher): the operator disabled (Until 1) or enabled
	// (Until 0) the client Key. Revocations never returns it: the
	// disabled clients are DisabledClients.
	ClientDisabled RevocationKind = "disabled"
)

// Revocation is one revocation record: what it names, and the unix time
// until which it must be remembered (when the last token it covers has
// expired).
type Revocation struct {
	Kind  RevocationKind
	Key   string
	Until int64
}
