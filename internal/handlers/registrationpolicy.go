package handlers

import (
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/caddy-dcr/caddy-dcr/storage"
)

// forOperator returns pol without the registration policy, for the
// clients the operator creates: the policy bounds what strangers may
// register, not what the operator decides to. Every other check
// (RFC 7591's, scopes_supported) still applies.
func (pol metadataPolicy) forOperator() metadataPolicy {
	pol.grantTypes, pol.redirectSchemes, pol.redirectHosts = nil, nil, nil
	pol.noPublicClients = false
	return pol
}

// checkOperatorPolicy checks metadata that RFC 7591 allows against what
// the operator allows (Limits): grant types, redirect URI schemes and
// hosts, and public clients. It runs after validateMetadata's RFC checks
// and defaults, so m's members are normalised. RFC 7591 §3.2.2: a redirect
// URI refused is invalid_redirect_uri, anything else
// invalid_client_metadata.
func (pol metadataPolicy) checkOperatorPolicy(m *storage.Metadata) *Error {
	if pol.noPublicClients && m.TokenEndpointAuthMethod == storage.AuthMethodNone {
		return ErrInvalidClientMetadata.WithDescription(
			"public clients (token_endpoint_auth_method none) may not register here; use client_secret_basic or client_secret_post")
	}
	if pol.grantTypes != nil {
		for _, g := range m.GrantTypes {
			if !slices.Contains(pol.grantTypes, g) {
				return ErrInvalidClientMetadata.WithDescription(fmt.Sprintf(
					"grant type %q is not allowed here; allowed: %s", g, strings.Join(pol.grantTypes, ", ")))
			}
		}
	}
	for _, raw := range m.RedirectURIs {
		u, err := url.Parse(raw)
		if err != nil {
			return ErrInvalidRedirectURI.WithDescription(fmt.Sprintf("redirect URI %q is not a URI", raw))
		}
		scheme := strings.ToLower(u.Scheme)
		if pol.redirectSchemes != nil && !slices.Contains(pol.redirectSchemes, scheme) {
			return ErrInvalidRedirectURI.WithDescription(fmt.Sprintf(
				"redirect URI %q: the %s scheme is not allowed here; allowed: %s", raw, scheme, strings.Join(pol.redirectSchemes, ", ")))
		}
		if pol.redirectHosts != nil && (scheme == "http" || scheme == "https") && !hostAllowed(pol.redirectHosts, u.Hostname()) {
			return ErrInvalidRedirectURI.WithDescription(fmt.Sprintf(
				"redirect URI %q: host %s is not allowed here; allowed: %s", raw, u.Hostname(), strings.Join(pol.redirectHosts, ", ")))
		}
	}
	return nil
}

// allowedAuthMethods are the token endpoint authentication methods a
// client may register: every supported one but none when public clients
// are refused. Discovery advertises this list, so it cannot drift from
// checkOperatorPolicy.
func (pol metadataPolicy) allowedAuthMethods() []string {
	if !pol.noPublicClients {
		return supportedAuthMethods
	}
	return slices.DeleteFunc(slices.Clone(supportedAuthMethods), func(m string) bool { return m == storage.AuthMethodNone })
}

// allowedGrantTypes are the grant types a client may register: the
// operator's list, in the server's order, or every supported one.
func (pol metadataPolicy) allowedGrantTypes() []string {
	if pol.grantTypes == nil {
		return supportedGrantTypes
	}
	return slices.DeleteFunc(slices.Clone(supportedGrantTypes), func(g string) bool { return !slices.Contains(pol.grantTypes, g) })
}

// allowsMetadataDocuments reports whether a client described by a metadata
// document could pass the policy at all: such a client is public and uses
// the authorization code grant (see parseDocument).
func (pol metadataPolicy) allowsMetadataDocuments() bool {
	return !pol.noPublicClients && slices.Contains(pol.allowedGrantTypes(), grantAuthorizationCode)
}

// hostAllowed reports whether host is one of allowed, compared without
// case; "*.example.com" allows every name below example.com (not
// example.com itself).
func hostAllowed(allowed []string, host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, a := range allowed {
		a = strings.ToLower(a)
		if suffix, ok := strings.CutPrefix(a, "*."); ok {
			if strings.HasSuffix(host, "."+suffix) {
				return true
			}
			continue
		}
		if host == strings.Trim(a, "[]") {
			return true
		}
	}
	return false
}
