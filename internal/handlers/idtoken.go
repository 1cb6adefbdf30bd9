package handlers

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/caddy-dcr/caddy-dcr/storage"
)

// scopeOpenID asks for OpenID Connect: an ID token with the tokens, and
// access to the userinfo endpoint (OpenID Connect Core 1.0 §3.1.2.1).
const scopeOpenID = "openid"

// scopeClaims are the standard claims each OpenID Connect scope asks for
// (OpenID Connect Core 1.0 §5.4). Of a grant's claims, the ID token and
// the userinfo endpoint give only those the grant's scopes ask for. The
// address claim is left out: it is a JSON object, and grant claims are
// strings.
var scopeClaims = map[string][]string{
	"profile": {"name", "family_name", "given_name", "middle_name", "nickname", "preferred_username",
		"profile", "picture", "website", "gender", "birthdate", "zoneinfo", "locale", "updated_at"},
	"email": {"email", "email_verified"},
	"phone": {"phone_number", "phone_number_verified"},
}

// idTokenClaimNames are the claims an ID token always may carry (OpenID
// Connect Core 1.0 §2), listed in claims_supported with the standard
// claims the operator configured.
var idTokenClaimNames = []string{"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "azp"}

// openIDScopes are the scopes this server gives a meaning to under OpenID
// Connect, listed in scopes_supported.
var openIDScopes = []string{scopeOpenID, "profile", "email", "phone", "offline_access"}

// scopedClaims returns the claims of a grant that its scope releases
// (OpenID Connect Core 1.0 §5.4), with the two booleans and updated_at in
// their JSON types (§5.1). A value that does not parse as its type is
// left out rather than sent in the wrong one.
func scopedClaims(scope string, claims map[string]string) map[string]any {
	out := map[string]any{}
	for sc, names := range scopeClaims {
		if !hasScope(scope, sc) {
			continue
		}
		for _, name := range names {
			v, ok := claims[name]
			if !ok || v == "" {
				continue
			}
			switch name {
			case "email_verified", "phone_number_verified":
				b, err := strconv.ParseBool(v)
				if err != nil {
					continue
				}
				out[name] = b
			case "updated_at":
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					continue
				}
				out[name] = n
			default:
				out[name] = v
			}
		}
	}
	return out
}

// claimsSupported lists the claims this server can put in an ID token or
// a userinfo answer: the ID token's own and the standard claims among the
// operator's extra claims.
func (s *Server) claimsSupported() []string {
	names := slices.Clone(idTokenClaimNames)
	for _, sc := range []string{"profile", "email", "phone"} {
		for _, name := range scopeClaims[sc] {
			if _, ok := s.cfg.Claims[name]; ok {
				names = append(names, name)
			}
		}
	}
	return names
}

// idTokenRequest is what an ID token is made from.
type idTokenRequest struct {
	issuer, subject, clientID, scope string
	// nonce is the authorization request's ("" on a refresh, OpenID
	// Connect Core 1.0 §12.2).
	nonce string
	// authTime is when the person authenticated, unix seconds; 0 leaves
	// auth_time out.
	authTime    int64
	accessToken string
	claims      map[string]string
	// ttl is the lifetime of the access token issued with it.
	ttl time.Duration
	// alg signs it: the client's (idTokenAlg).
	alg string
}

// memberIDTokenAlg is the client metadata member naming the algorithm of
// the client's ID tokens (OpenID Connect Registration 1.0 §2), kept with
// the client's other extension metadata (Metadata.Extra).
const memberIDTokenAlg = "id_token_signed_response_alg"

// idTokenAlg returns the algorithm of m's client's ID tokens: its
// id_token_signed_response_alg, or RS256 when it registered none (OpenID
// Connect Registration 1.0 §2). A value registration now refuses but a
// client registered before it kept gets the default too: it cannot be
// signed with, and never "none" (an unsigned token).
func idTokenAlg(m *storage.Metadata) string {
	if alg, ok := honouredExtension(m.Extra, memberIDTokenAlg); ok {
		return alg
	}
	return idTokenAlgs[0]
}

// idToken signs an ID token (OpenID Connect Core 1.0 §2, §3.1.3.6) with
// the current key of t.alg: aud is the client and azp names it too,
// at_hash binds the access token issued with it, and the grant's claims
// that its scope releases are added. It lives as long as the access token
// issued with it.
func (s *Server) idToken(ctx context.Context, t idTokenRequest) (string, error) {
	now := s.now()
	claims := scopedClaims(t.scope, t.claims)
	claims["iss"] = t.issuer
	claims["sub"] = t.subject
	claims["aud"] = t.clientID
	claims["azp"] = t.clientID
	claims["iat"] = now.Unix()
	claims["exp"] = now.Add(t.ttl).Unix()
	if t.authTime != 0 {
		claims["auth_time"] = t.authTime
	}
	if t.nonce != "" {
		claims["nonce"] = t.nonce
	}
	if t.accessToken != "" {
		h, err := atHash(t.alg, t.accessToken)
		if err != nil {
			return "", err
		}
		claims["at_hash"] = h
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	tok, err := s.keys.signAs(ctx, t.alg, payload, true)
	if err != nil {
		return "", fmt.Errorf("signing ID token: %w", err)
	}
	return tok, nil
}

// atHash is the at_hash of an access token for an ID token signed with
// alg: the left half of its hash under the hash of alg, base64url (OpenID
// Connect Core 1.0 §3.1.3.6). Both of idTokenAlgs hash with SHA-256.
func atHash(alg, accessToken string) (string, error) {
	if alg != algRS256 && alg != jwtAlg {
		return "", fmt.Errorf("at_hash: no hash known for %s", alg)
	}
	sum := sha256.Sum256([]byte(accessToken))
	return base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2]), nil
}

// OpenID Connect's authorization errors (OpenID Connect Core 1.0
// §3.1.2.6), sent back to the client like RFC 6749's.
var (
	ErrLoginRequired   = &Error{Code: "login_required", Status: http.StatusBadRequest}
	ErrConsentRequired = &Error{Code: "consent_required", Status: http.StatusBadRequest}
)

// maxNonceLen bounds the nonce carried from an authorization request into
// the code and the ID token.
const maxNonceLen = 512

// Values of the prompt parameter (OpenID Connect Core 1.0 §3.1.2.1).
const (
	promptNone          = "none"
	promptLogin         = "login"
	promptConsent       = "consent"
	promptSelectAccount = "select_account"
)

// oidcParams are the OpenID Connect parameters of an authorization
// request.
type oidcParams struct {
	nonce  string
	prompt []string
	// maxAge is the max_age in seconds; -1 when absent.
	maxAge int64
	// idTokenHint is the id_token_hint, not yet checked (hintedSubject).
	idTokenHint string
}

// prompts reports whether p asks for prompt value v.
func (p oidcParams) prompts(v string) bool { return slices.Contains(p.prompt, v) }

// parseOIDCParams reads nonce, prompt and max_age (OpenID Connect Core
// 1.0 §3.1.2.1). prompt=none with any other value is invalid_request.
func parseOIDCParams(q map[string][]string) (oidcParams, *Error) {
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	p := oidcParams{nonce: get("nonce"), maxAge: -1, idTokenHint: get("id_token_hint")}
	if len(p.idTokenHint) > maxIDTokenHintLen {
		return p, ErrInvalidRequest.WithDescription(fmt.Sprintf("id_token_hint must be at most %d bytes", maxIDTokenHintLen))
	}
	if len(p.nonce) > maxNonceLen || !tokenSafe(p.nonce) {
		return p, ErrInvalidRequest.WithDescription(fmt.Sprintf("nonce must be text of at most %d bytes", maxNonceLen))
	}
	for v := range strings.FieldsSeq(get("prompt")) {
		switch v {
		case promptNone, promptLogin, promptConsent, promptSelectAccount:
		default:
			return p, ErrInvalidRequest.WithDescription(fmt.Sprintf("prompt value %q is not supported", v))
		}
		if !slices.Contains(p.prompt, v) {
			p.prompt = append(p.prompt, v)
		}
	}
	if p.prompts(promptNone) && len(p.prompt) > 1 {
		return p, ErrInvalidRequest.WithDescription("prompt=none may not be combined with other values")
	}
	if ma := get("max_age"); ma != "" {
		n, err := strconv.ParseInt(ma, 10, 64)
		if err != nil || n < 0 || strconv.FormatInt(n, 10) != ma {
			return p, ErrInvalidRequest.WithDescription("max_age must be a non-negative number of seconds")
		}
		p.maxAge = n
	}
	return p, nil
}

// maxIDTokenHintLen bounds an id_token_hint: the ID tokens this server
// issues are far shorter, whatever claims an operator adds.
const maxIDTokenHintLen = 8 << 10

// hintedSubject returns the subject an id_token_hint names (OpenID Connect
// Core 1.0 §3.1.2.1): the hint must be an ID token this server issued
// (typ JWT, this issuer, a signature by one of its keys); its expiry is not
// checked, since an expired ID token is the usual hint. go-oidc checks it,
// as a relying party would.
func (s *Server) hintedSubject(ctx context.Context, r *http.Request, hint string) (string, error) {
	h, _, ok := strings.Cut(hint, ".")
	if !ok {
		return "", errBadToken
	}
	var header struct {
		Typ string `json:"typ"`
	}
	if b, err := jwtEncoding.DecodeString(h); err != nil || json.Unmarshal(b, &header) != nil || header.Typ != "JWT" {
		return "", errBadToken // an access token (at+jwt) is no ID token
	}
	v := oidc.NewVerifier(s.issuer(r), &oidc.StaticKeySet{PublicKeys: s.keys.verificationKeys()},
		&oidc.Config{SkipClientIDCheck: true, SkipExpiryCheck: true, SupportedSigningAlgs: idTokenAlgs})
	t, err := v.Verify(ctx, hint)
	if err != nil {
		return "", err
	}
	return t.Subject, nil
}

// authenticatedTooLongAgo reports whether an authentication at the unix
// time authTime is older than max_age allows at now.
func (p oidcParams) authenticatedTooLongAgo(authTime int64, now time.Time) bool {
	return p.maxAge >= 0 && now.Unix()-authTime > p.maxAge
}
