package storage

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
)

// Token endpoint authentication methods (RFC 7591 §2).
const (
	AuthMethodBasic = "client_secret_basic"
	AuthMethodPost  = "client_secret_post"
	AuthMethodNone  = "none"
)

// Client.Origin values: how a client came to be.
const (
	// OriginDynamic is open RFC 7591 registration, and every client
	// stored before clients had an origin.
	OriginDynamic = ""
	// OriginInitialAccessToken is RFC 7591 registration that presented
	// an initial access token.
	OriginInitialAccessToken = "initial_access_token"
	// OriginOperator is a client the operator created (admin API).
	OriginOperator = "operator"
)

// Client is a registered OAuth client as the store keeps it. Secrets are
// present only as hashes: the plaintext is shown once, in the response that
// created or rotated it.
//
// A client has three writers: its registration (secret, registration
// token, metadata; ReplaceClient), its use (LastUsedAt; TouchClient) and
// the operator (Settings; SetClientSettings). Each writes only its own
// fields, so none undoes another's concurrent change.
type Client struct {
	ID                    string   `json:"id"`
	IssuedAt              int64    `json:"issued_at"`
	SecretHash            []byte   `json:"secret_hash,omitempty"`
	SecretExpiresAt       int64    `json:"secret_expires_at,omitempty"`
	RegistrationTokenHash []byte   `json:"registration_token_hash"`
	Metadata              Metadata `json:"metadata"`

	// Origin says how the client came to be (the Origin* values).
	Origin string `json:"origin,omitempty"`
	// LastUsedAt is the unix time of the last token issued to the
	// client, 0 if none ever was. Callers may record it coarsely (see
	// TouchClient), so it can lag behind by their granularity.
	LastUsedAt int64 `json:"last_used_at,omitempty"`
	// Settings are what only the operator may set.
	Settings ClientSettings `json:"settings"`
}

// Public reports whether the client has no secret (token endpoint auth
// method "none").
func (c *Client) Public() bool { return c.Metadata.TokenEndpointAuthMethod == AuthMethodNone }

// Reapable reports whether the client may be removed for disuse: as its
// settings say, else when it registered itself openly. Clients made by the
// operator or registered with an initial access token are kept unless the
// operator says otherwise.
func (c *Client) Reapable() bool {
	if c.Settings.Keep != nil {
		return !*c.Settings.Keep
	}
	return c.Origin == OriginDynamic
}

// ClientSettings are the settings of a client that only the operator may
// set. Zero values mean the server's own.
type ClientSettings struct {
	// Disabled clients are refused everywhere, their tokens included.
	Disabled bool `json:"disabled,omitempty"`
	// AccessTokenTTL and RefreshTokenTTL, in seconds, shorten the
	// lifetime of the tokens issued to the client (never beyond the
	// server's maximums); 0 is the server's.
	AccessTokenTTL  int64 `json:"access_token_ttl,omitempty"`
	RefreshTokenTTL int64 `json:"refresh_token_ttl,omitempty"`
	// Scope lists, space-separated, the only scopes the client may be
	// given; "" is what the server allows.
	Scope string `json:"scope,omitempty"`
	// Keep overrides Reapable: true keeps the client however long it is
	// unused, false lets it be reaped; nil decides by Origin.
	Keep *bool `json:"keep,omitempty"`
}

// Equal reports whether s and o are the same settings (Keep compared by
// value).
func (s ClientSettings) Equal(o ClientSettings) bool {
	keep := func(k *bool) int {
		switch {
		case k == nil:
			return 0
		case *k:
			return 1
		}
		return 2
	}
	return s.Disabled == o.Disabled && s.AccessTokenTTL == o.AccessTokenTTL &&
		s.RefreshTokenTTL == o.RefreshTokenTTL && s.Scope == o.Scope && keep(s.Keep) == keep(o.Keep)
}

// Metadata is the client metadata of RFC 7591 §2 as registered, after the
// server applied its defaults. Extra holds the extension members that the
// registration handler keeps (those it understands); a client registered
// when every member was kept still holds whatever it sent. The store keeps
// Extra as it is given and echoes it back.
type Metadata struct {
	RedirectURIs            []string        `json:"redirect_uris"`
	TokenEndpointAuthMethod string          `json:"token_endpoint_auth_method"`
	GrantTypes              []string        `json:"grant_types"`
	ResponseTypes           []string        `json:"response_types"`
	ClientName              string          `json:"client_name,omitempty"`
	ClientURI               string          `json:"client_uri,omitempty"`
	LogoURI                 string          `json:"logo_uri,omitempty"`
	Scope                   string          `json:"scope,omitempty"`
	Contacts                []string        `json:"contacts,omitempty"`
	TOSURI                  string          `json:"tos_uri,omitempty"`
	PolicyURI               string          `json:"policy_uri,omitempty"`
	JWKSURI                 string          `json:"jwks_uri,omitempty"`
	JWKS                    json.RawMessage `json:"jwks,omitempty"`
	SoftwareID              string          `json:"software_id,omitempty"`
	SoftwareVersion         string          `json:"software_version,omitempty"`

	// Extra holds extension members by name, as raw JSON values.
	Extra map[string]json.RawMessage `json:"-"`
}

// metadataFields is Metadata without its methods, so encoding/json can
// handle the known members without recursing into MarshalJSON.
type metadataFields Metadata

// MarshalJSON encodes the known members, never as null (arrays are at least
// []), followed by the extension members.
func (m Metadata) MarshalJSON() ([]byte, error) {
	f := metadataFields(m)
	for _, s := range []*[]string{&f.RedirectURIs, &f.GrantTypes, &f.ResponseTypes} {
		if *s == nil {
			*s = []string{}
		}
	}
	known, err := json.Marshal(f)
	if err != nil {
		return nil, err
	}
	if len(m.Extra) == 0 {
		return known, nil
	}
	extra, err := json.Marshal(m.Extra)
	if err != nil {
		return nil, err
	}
	return JoinObjects(known, extra), nil
}

// UnmarshalJSON decodes the known members and keeps every other member in
// Extra. It is the store's decoder and trusts its input; requests are
// parsed and validated by the registration handler.
func (m *Metadata) UnmarshalJSON(b []byte) error {
	var f metadataFields
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(b, &all); err != nil {
		return err
	}
	for _, name := range KnownMetadata {
		delete(all, name)
	}
	f.Extra = nil
	if len(all) > 0 {
		f.Extra = all
	}
	*m = Metadata(f)
	return nil
}

// KnownMetadata lists the JSON names of Metadata's own fields.
var KnownMetadata = []string{
	"redirect_uris", "token_endpoint_auth_method", "grant_types", "response_types",
	"client_name", "client_uri", "logo_uri", "scope", "contacts", "tos_uri",
	"policy_uri", "jwks_uri", "jwks", "software_id", "software_version",
}

// JoinObjects merges two encoded JSON objects into one. Neither may repeat a
// member of the other.
func JoinObjects(a, b []byte) []byte {
	a, b = bytes.TrimSpace(a), bytes.TrimSpace(b)
	switch {
	case len(a) <= 2:
		return b
	case len(b) <= 2:
		return a
	}
	out := make([]byte, 0, len(a)+len(b))
	out = append(out, a[:len(a)-1]...)
	out = append(out, ',')
	return append(out, b[1:]...)
}

// HashSecret returns the digest under which a secret (client secret,
// registration access token) is stored and indexed. The secrets are 256-bit
// random values, so a plain SHA-256 is as strong as a slow hash here and
// keeps every request cheap.
func HashSecret(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}
