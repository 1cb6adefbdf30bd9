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

// Client is a registered OAuth client as the store keeps it. Secrets are
// present only as hashes: the plaintext is shown once, in the response that
// created or rotated it.
type Client struct {
	ID                    string   `json:"id"`
	IssuedAt              int64    `json:"issued_at"`
	SecretHash            []byte   `json:"secret_hash,omitempty"`
	SecretExpiresAt       int64    `json:"secret_expires_at,omitempty"`
	RegistrationTokenHash []byte   `json:"registration_token_hash"`
	Metadata              Metadata `json:"metadata"`
}

// Public reports whether the client has no secret (token endpoint auth
// method "none").
func (c *Client) Public() bool { return c.Metadata.TokenEndpointAuthMethod == AuthMethodNone }

// Metadata is the client metadata of RFC 7591 §2 as registered, after the
// server applied its defaults. Fields the server does not know are kept in
// Extra and echoed back, as RFC 7591 §3.2.1 expects of extensions.
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
