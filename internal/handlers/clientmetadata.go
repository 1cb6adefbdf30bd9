package handlers

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/caddy-dcr/caddy-dcr/storage"
)

// Grant and response types (RFC 6749, RFC 7591 §2).
const (
	grantAuthorizationCode = "authorization_code"
	grantClientCredentials = "client_credentials"
	grantRefreshToken      = "refresh_token"
	responseCode           = "code"
)

var (
	supportedGrantTypes    = []string{grantAuthorizationCode, grantClientCredentials, grantRefreshToken}
	supportedResponseTypes = []string{responseCode}
	supportedAuthMethods   = []string{storage.AuthMethodBasic, storage.AuthMethodPost, storage.AuthMethodNone}
)

// extensionMembers are the registration members beyond those of RFC 7591
// §2 (storage.KnownMetadata) that this server understands and acts on,
// each with the string values it can honour. They are kept in
// Metadata.Extra and echoed back; every other member is dropped, as RFC
// 7591 §2 asks of metadata a server does not understand, so that the
// answer never shows as registered what is not honoured. A value outside
// the list is invalid_client_metadata.
var extensionMembers = map[string][]string{
	// OpenID Connect Dynamic Client Registration 1.0 §2: ID tokens are
	// signed with one of idTokenAlgs, which discovery advertises in
	// id_token_signing_alg_values_supported (see idTokenAlg).
	memberIDTokenAlg: idTokenAlgs,
	// Subjects are the same for every client (subject_types_supported).
	"subject_type": {"public"},
}

// honouredExtensions is the part of stored extension members that
// registration would accept today (extensionMembers). A client registered
// before registration dropped the others, or checked their values, keeps
// them in the store; its client information shows only what is honoured,
// so that reading it and sending it back as an update (RFC 7592) works.
func honouredExtensions(extra map[string]json.RawMessage) map[string]json.RawMessage {
	var out map[string]json.RawMessage
	for name, raw := range extra {
		if _, ok := honouredExtension(extra, name); !ok {
			continue
		}
		if out == nil {
			out = make(map[string]json.RawMessage)
		}
		out[name] = raw
	}
	return out
}

// honouredExtension returns the stored extension member name when it is
// one registration would accept today (extensionMembers).
func honouredExtension(extra map[string]json.RawMessage, name string) (string, bool) {
	var v string
	raw, ok := extra[name]
	if !ok || json.Unmarshal(raw, &v) != nil || !slices.Contains(extensionMembers[name], v) {
		return "", false
	}
	return v, true
}

// metadataRequest is a parsed registration or update request body.
type metadataRequest struct {
	meta storage.Metadata
	// clientID and clientSecret are the request's client_id and
	// client_secret members, for RFC 7592 §2.2; "" when absent.
	clientID     string
	clientSecret string
	// softwareStatement is the software_statement member (RFC 7591 §2.3).
	softwareStatement string
}

// parseMetadata decodes a registration request body (RFC 7591 §2, §3.1).
// A JSON null or an empty string for an optional member means it was not
// sent. It checks types and the I-JSON profile only; validateMetadata
// applies the rules.
func parseMetadata(body []byte) (*metadataRequest, *Error) {
	// RFC 7493 I-JSON: refuse what parsers read differently (repeated
	// members, broken Unicode) before anyone reads it, and shapes no
	// registration needs.
	if err := checkIJSON(body); err != nil {
		return nil, ErrInvalidClientMetadata.WithDescription(err.Error())
	}
	// checkIJSON has made sure the body is one JSON value.
	var members map[string]json.RawMessage
	if err := json.Unmarshal(body, &members); err != nil || members == nil {
		return nil, ErrInvalidClientMetadata.WithDescription("the body is not a JSON object")
	}
	p := memberParser{members: members}
	req := &metadataRequest{
		meta: storage.Metadata{
			RedirectURIs:            p.strings("redirect_uris"),
			TokenEndpointAuthMethod: p.string("token_endpoint_auth_method"),
			GrantTypes:              p.strings("grant_types"),
			ResponseTypes:           p.strings("response_types"),
			ClientName:              p.string("client_name"),
			ClientURI:               p.string("client_uri"),
			LogoURI:                 p.string("logo_uri"),
			Scope:                   p.string("scope"),
			Contacts:                p.strings("contacts"),
			TOSURI:                  p.string("tos_uri"),
			PolicyURI:               p.string("policy_uri"),
			JWKSURI:                 p.string("jwks_uri"),
			JWKS:                    p.object("jwks"),
			SoftwareID:              p.string("software_id"),
			SoftwareVersion:         p.string("software_version"),
		},
		clientID:          p.string("client_id"),
		clientSecret:      p.string("client_secret"),
		softwareStatement: p.string("software_statement"),
	}
	if p.err != nil {
		return nil, p.err
	}
	for _, name := range slices.Sorted(maps.Keys(extensionMembers)) {
		v := p.string(name)
		if p.err != nil {
			return nil, p.err
		}
		if v == "" {
			continue
		}
		if !slices.Contains(extensionMembers[name], v) {
			return nil, ErrInvalidClientMetadata.WithDescription(fmt.Sprintf(
				"%s %q is not supported; use %s", name, v, strings.Join(extensionMembers[name], ", ")))
		}
		if req.meta.Extra == nil {
			req.meta.Extra = make(map[string]json.RawMessage)
		}
		req.meta.Extra[name], _ = json.Marshal(v)
	}
	return req, nil
}

// memberParser reads typed members out of a decoded object, remembering the
// first type error.
type memberParser struct {
	members map[string]json.RawMessage
	err     *Error
}

func (p *memberParser) fail(name, want string) {
	if p.err == nil {
		p.err = ErrInvalidClientMetadata.WithDescription(fmt.Sprintf("%s must be %s", name, want))
	}
}

func (p *memberParser) string(name string) string {
	raw, ok := p.members[name]
	if !ok || isNull(raw) {
		return ""
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		p.fail(name, "a string")
		return ""
	}
	return s
}

func (p *memberParser) strings(name string) []string {
	raw, ok := p.members[name]
	if !ok || isNull(raw) {
		return nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil {
		p.fail(name, "an array of strings")
		return nil
	}
	if list == nil {
		list = []string{}
	}
	return list
}

func (p *memberParser) object(name string) json.RawMessage {
	raw, ok := p.members[name]
	if !ok || isNull(raw) {
		return nil
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		p.fail(name, "a JSON object")
		return nil
	}
	return compactJSON(raw)
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

func compactJSON(raw json.RawMessage) json.RawMessage {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return raw
	}
	return b.Bytes()
}

// metadataPolicy is what the operator allows clients to register.
type metadataPolicy struct {
	// scopes is the operator's scopes_supported, the default scope of a
	// client that registers none; nil allows any. supportedScopes adds
	// openid.
	scopes []string
	// grantTypes, redirectSchemes, redirectHosts and noPublicClients
	// are the operator's registration policy (see Limits and
	// checkOperatorPolicy); nil allows any.
	grantTypes, redirectSchemes, redirectHosts []string
	noPublicClients                            bool
}

// validateMetadata applies the server's defaults to m and checks it against
// RFC 7591 §2 and the operator's policy. On error m may be half-defaulted
// and must be discarded.
func (pol metadataPolicy) validateMetadata(m *storage.Metadata) *Error {
	if m.TokenEndpointAuthMethod == "" {
		m.TokenEndpointAuthMethod = storage.AuthMethodBasic
	}
	if !slices.Contains(supportedAuthMethods, m.TokenEndpointAuthMethod) {
		return ErrInvalidClientMetadata.WithDescription(fmt.Sprintf(
			"token_endpoint_auth_method %q is not supported; use one of %s",
			m.TokenEndpointAuthMethod, strings.Join(supportedAuthMethods, ", ")))
	}

	// RFC 7591 §2: grant_types defaults to authorization_code and
	// response_types to code. A client that names only grants without a
	// redirect (client_credentials) gets no response types, since "code"
	// would contradict its grants.
	switch {
	case m.GrantTypes == nil && m.ResponseTypes == nil:
		m.GrantTypes = []string{grantAuthorizationCode}
		m.ResponseTypes = []string{responseCode}
	case m.GrantTypes == nil:
		m.GrantTypes = []string{grantAuthorizationCode}
	case m.ResponseTypes == nil:
		m.ResponseTypes = []string{}
		if slices.Contains(m.GrantTypes, grantAuthorizationCode) {
			m.ResponseTypes = []string{responseCode}
		}
	}
	m.GrantTypes = dedupe(m.GrantTypes)
	m.ResponseTypes = dedupe(m.ResponseTypes)
	for _, g := range m.GrantTypes {
		if !slices.Contains(supportedGrantTypes, g) {
			return ErrInvalidClientMetadata.WithDescription(fmt.Sprintf(
				"grant type %q is not supported; use %s", g, strings.Join(supportedGrantTypes, ", ")))
		}
	}
	for _, rt := range m.ResponseTypes {
		if !slices.Contains(supportedResponseTypes, rt) {
			return ErrInvalidClientMetadata.WithDescription(fmt.Sprintf("response type %q is not supported; use code", rt))
		}
	}
	if len(m.GrantTypes) == 0 {
		return ErrInvalidClientMetadata.WithDescription("grant_types must not be empty")
	}
	// RFC 7591 §2.1: the authorization_code grant goes with the code
	// response type and each needs the other.
	if slices.Contains(m.GrantTypes, grantAuthorizationCode) != slices.Contains(m.ResponseTypes, responseCode) {
		return ErrInvalidClientMetadata.WithDescription(
			"grant_types and response_types contradict each other: authorization_code and code go together")
	}
	if m.TokenEndpointAuthMethod == storage.AuthMethodNone && slices.Contains(m.GrantTypes, grantClientCredentials) {
		return ErrInvalidClientMetadata.WithDescription(
			"client_credentials needs a client that authenticates; token_endpoint_auth_method none cannot use it")
	}

	if m.RedirectURIs == nil {
		m.RedirectURIs = []string{}
	}
	m.RedirectURIs = dedupe(m.RedirectURIs)
	for _, u := range m.RedirectURIs {
		if err := checkRedirectURI(u); err != nil {
			return ErrInvalidRedirectURI.WithDescription(fmt.Sprintf("redirect URI %q: %v", u, err))
		}
	}
	if slices.Contains(m.ResponseTypes, responseCode) && len(m.RedirectURIs) == 0 {
		return ErrInvalidClientMetadata.WithDescription("redirect_uris is required for the authorization_code grant")
	}

	for _, f := range []struct{ name, value string }{
		{"client_uri", m.ClientURI}, {"logo_uri", m.LogoURI}, {"tos_uri", m.TOSURI},
		{"policy_uri", m.PolicyURI}, {"jwks_uri", m.JWKSURI},
	} {
		if f.value == "" {
			continue
		}
		if err := checkWebURL(f.value); err != nil {
			return ErrInvalidClientMetadata.WithDescription(fmt.Sprintf("%s: %v", f.name, err))
		}
	}
	if m.JWKSURI != "" && m.JWKS != nil {
		return ErrInvalidClientMetadata.WithDescription("jwks and jwks_uri must not both be present")
	}
	if m.JWKS != nil {
		var set struct {
			Keys []json.RawMessage `json:"keys"`
		}
		if err := json.Unmarshal(m.JWKS, &set); err != nil || set.Keys == nil {
			return ErrInvalidClientMetadata.WithDescription(`jwks must be a JWK Set: an object with a "keys" array`)
		}
	}
	for _, c := range m.Contacts {
		if strings.TrimSpace(c) == "" {
			return ErrInvalidClientMetadata.WithDescription("contacts must not hold empty strings")
		}
	}

	scope, err := pol.checkScope(m.Scope)
	if err != nil {
		return err
	}
	m.Scope = scope
	return pol.checkOperatorPolicy(m)
}

// supportedScopes are the scopes this server accepts: nil (any) when the
// operator listed none, else the operator's list with openid added. Every
// /.well-known/openid-configuration claims OpenID Connect, which must
// accept openid (OpenID Connect Discovery 1.0 §3), so an operator's list
// cannot leave it out; the claim-releasing scopes (profile, email, ...)
// stay the operator's choice. openid is accepted, never a default: a
// client that registers no scope gets only the operator's list.
func (pol metadataPolicy) supportedScopes() []string {
	if pol.scopes == nil || slices.Contains(pol.scopes, scopeOpenID) {
		return pol.scopes
	}
	return append([]string{scopeOpenID}, pol.scopes...)
}

// checkScope validates a space-delimited scope (RFC 6749 §3.3), drops
// duplicates and checks each scope against supportedScopes. An empty
// scope defaults to the operator's list when there is one.
func (pol metadataPolicy) checkScope(scope string) (string, *Error) {
	tokens := dedupe(strings.Fields(scope))
	if len(tokens) == 0 && pol.scopes != nil {
		return strings.Join(pol.scopes, " "), nil
	}
	supported := pol.supportedScopes()
	for _, t := range tokens {
		if !isScopeToken(t) {
			return "", ErrInvalidClientMetadata.WithDescription(fmt.Sprintf("scope %q has characters RFC 6749 §3.3 does not allow", t))
		}
		if supported != nil && !slices.Contains(supported, t) {
			return "", ErrInvalidClientMetadata.WithDescription(fmt.Sprintf(
				"scope %q is not supported; this server supports: %s", t, strings.Join(supported, " ")))
		}
	}
	return strings.Join(tokens, " "), nil
}

// isScopeToken reports whether s is a scope-token of RFC 6749 §3.3:
// 1*( %x21 / %x23-5B / %x5D-7E ).
func isScopeToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// checkRedirectURI applies RFC 6749 §3.1.2 and RFC 8252 to a redirect
// URI: absolute, with no fragment, no credentials, no whitespace or control
// characters, and one of three kinds. https with a host, for web clients;
// plain http to a loopback host, any port (RFC 8252 §7.3); or a private-use
// scheme in reverse-domain form (RFC 8252 §7.1), for native apps. Every
// other scheme is refused: the browser itself handles them (javascript:,
// data:, view-source:, microsoft-edge:, jar:) or they are not web
// redirects at all (ws:, ftp:, mailto:). The scheme is compared without
// case; the URI is kept as sent.
func checkRedirectURI(raw string) error {
	if i := strings.IndexFunc(raw, func(r rune) bool {
		return r == utf8.RuneError || unicode.IsSpace(r) || unicode.IsControl(r)
	}); i >= 0 {
		return fmt.Errorf("holds whitespace, a control character or invalid UTF-8 at byte %d", i)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("not a URI")
	}
	if !u.IsAbs() {
		return fmt.Errorf("not an absolute URI")
	}
	if strings.Contains(raw, "#") {
		return fmt.Errorf("must not have a fragment")
	}
	if u.User != nil {
		return fmt.Errorf("must not carry credentials")
	}
	switch scheme := strings.ToLower(u.Scheme); scheme {
	case "https":
		if u.Hostname() == "" {
			return fmt.Errorf("has no host")
		}
		return checkPort(u)
	case "http":
		if !isLoopbackHost(u.Hostname()) {
			return fmt.Errorf("plain http is allowed only for a loopback host (127.0.0.1, [::1] or localhost)")
		}
		return checkPort(u)
	default:
		if !isReverseDomain(scheme) {
			return fmt.Errorf("the %s scheme is not allowed; use https, http to a loopback host, "+
				"or a private-use scheme in reverse-domain form such as com.example.app", scheme)
		}
		if u.Opaque == "" && u.Path == "" && u.Host == "" {
			return fmt.Errorf("is only a scheme")
		}
	}
	return nil
}

// checkPort refuses an http or https URI whose port is present but not a
// number from 1 to 65535.
func checkPort(u *url.URL) error {
	if strings.HasSuffix(u.Host, ":") {
		return fmt.Errorf("has an empty port")
	}
	p := u.Port()
	if p == "" {
		return nil
	}
	if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %s is not between 1 and 65535", p)
	}
	return nil
}

// isReverseDomain reports whether scheme looks like a reversed domain name
// (RFC 8252 §7.1: com.example.app): two or more non-empty dot-separated
// labels. The URI parser has already limited it to letters, digits, "+",
// "-" and ".".
func isReverseDomain(scheme string) bool {
	labels := strings.Split(scheme, ".")
	return len(labels) >= 2 && !slices.Contains(labels, "")
}

// isLoopbackHost reports whether host names this machine's loopback
// interface: localhost or a loopback IP literal.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkWebURL checks a metadata URL: absolute http or https with a host.
func checkWebURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return fmt.Errorf("%q is not an absolute URL", raw)
	}
	if s := strings.ToLower(u.Scheme); s != "https" && s != "http" {
		return fmt.Errorf("%q is not an http or https URL", raw)
	}
	if u.User != nil {
		return fmt.Errorf("%q must not carry credentials", raw)
	}
	return nil
}

// checkSoftwareStatement answers RFC 7591 §2.3. This server trusts no
// software statement issuer, so a well-formed statement is unapproved and a
// malformed one invalid.
func checkSoftwareStatement(stmt string) *Error {
	parts := strings.Split(stmt, ".")
	if len(parts) != 3 {
		return ErrInvalidSoftwareStatement.WithDescription("software_statement is not a JWT")
	}
	for _, p := range parts[:2] {
		b, err := base64.RawURLEncoding.DecodeString(p)
		if err != nil || !json.Valid(b) {
			return ErrInvalidSoftwareStatement.WithDescription("software_statement is not a JWT")
		}
	}
	return ErrUnapprovedSoftwareStatement.WithDescription("this server accepts no software statements")
}

// dedupe returns s without repeated values, keeping the first of each.
func dedupe(s []string) []string {
	out := s[:0:0]
	for _, v := range s {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}
