package login

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// oidcProvider signs people in through an OpenID Connect provider, with
// go-oidc for discovery and ID token validation (signature, issuer,
// audience, expiry) and golang.org/x/oauth2 for the code exchange.
type oidcProvider struct {
	cfg    Config
	client *http.Client

	mu       sync.Mutex
	provider *oidc.Provider // nil until discovered
}

func newOIDC(c Config, client *http.Client) *oidcProvider {
	return &oidcProvider{cfg: c, client: client}
}

// discover fetches the provider's discovery document the first time it is
// needed, and again after a failure.
func (p *oidcProvider) discover(ctx context.Context) (*oidc.Provider, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.provider != nil {
		return p.provider, nil
	}
	prov, err := oidc.NewProvider(oidc.ClientContext(ctx, p.client), p.cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("discovering OpenID Connect provider %s: %w", p.cfg.Issuer, err)
	}
	p.provider = prov
	return prov, nil
}

func (p *oidcProvider) oauth2Config(prov *oidc.Provider, redirectURI string) *oauth2.Config {
	scopes := p.cfg.Scopes
	if len(scopes) == 0 {
		scopes = []string{oidc.ScopeOpenID, "email", "profile"}
	}
	return &oauth2.Config{ClientID: p.cfg.ClientID, ClientSecret: p.cfg.ClientSecret, Endpoint: prov.Endpoint(),
		RedirectURL: redirectURI, Scopes: scopes}
}

// AuthCodeURL implements Provider.
func (p *oidcProvider) AuthCodeURL(ctx context.Context, redirectURI, state, nonce, verifier string) (string, error) {
	prov, err := p.discover(ctx)
	if err != nil {
		return "", err
	}
	return p.oauth2Config(prov, redirectURI).AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)), nil
}

// Exchange implements Provider: the code for tokens, then the ID token
// verified by go-oidc and its nonce compared with the one this sign-in
// sent (OpenID Connect Core 1.0 §3.1.3.7). The upstream's tokens go no
// further than this function.
func (p *oidcProvider) Exchange(ctx context.Context, redirectURI, code, verifier, nonce string) (*Identity, error) {
	prov, err := p.discover(ctx)
	if err != nil {
		return nil, err
	}
	ctx = oidc.ClientContext(ctx, p.client)
	tok, err := p.oauth2Config(prov, redirectURI).Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		return nil, fmt.Errorf("exchanging the code: %w", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return nil, errors.New("the provider returned no ID token")
	}
	idt, err := prov.Verifier(&oidc.Config{ClientID: p.cfg.ClientID}).Verify(ctx, raw)
	if err != nil {
		return nil, fmt.Errorf("verifying the ID token: %w", err)
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(nonce)) != 1 || nonce == "" {
		return nil, errors.New("the ID token's nonce is not this sign-in's")
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return nil, fmt.Errorf("reading the ID token's claims: %w", err)
	}
	return p.identity(idt.Subject, claims)
}

// identity builds the person from the ID token's claims.
func (p *oidcProvider) identity(sub string, claims map[string]any) (*Identity, error) {
	id := &Identity{upstreamSubject: sub, raw: claims, Claims: map[string]string{}}
	id.email, _ = claims["email"].(string)
	// Some providers send email_verified as a string.
	switch v := claims["email_verified"].(type) {
	case bool:
		id.emailVerified = v
	case string:
		id.emailVerified = v == "true"
	}
	switch claim := p.cfg.SubjectClaim; claim {
	case "", "sub":
		id.Subject = p.cfg.Name + ":" + sub
	case "email":
		// An email names one person only once the provider verified it:
		// an unverified one is whatever the person typed (another's
		// address, at a provider that lets people edit their profile).
		if id.email == "" || !strings.Contains(id.email, "@") || !id.emailVerified {
			return nil, errors.New("the provider did not send a verified email to name the person by")
		}
		id.Subject = id.email
	default:
		// Any other claim may be one people can edit or that another
		// login also uses: it names the person within this login only.
		v, _ := claims[claim].(string)
		if v == "" {
			return nil, fmt.Errorf("the ID token has no %s claim to name the person by", claim)
		}
		id.Subject = p.cfg.Name + ":" + v
	}
	for _, name := range []string{"email", "name", "given_name", "family_name", "preferred_username", "picture", "locale"} {
		if v, ok := claims[name].(string); ok && v != "" {
			id.Claims[name] = v
		}
	}
	if id.email != "" {
		id.Claims["email_verified"] = fmt.Sprint(id.emailVerified)
	}
	if groups, ok := claims["groups"].([]any); ok {
		var names []string
		for _, g := range groups {
			if s, ok := g.(string); ok {
				names = append(names, s)
			}
		}
		id.Claims["groups"] = strings.Join(names, ",")
	}
	return id, nil
}
