package handlers

import (
	"net/http"
	"strings"
)

// Well-known paths (RFC 8414 §3, RFC 9728 §3).
const (
	wellKnownServer   = "/.well-known/oauth-authorization-server"
	wellKnownResource = "/.well-known/oauth-protected-resource"
	wellKnownOpenID   = "/.well-known/openid-configuration" // OpenID Connect Discovery 1.0 §4
)

// serverMetadata is the authorization server metadata of RFC 8414 §2.
type serverMetadata struct {
	Issuer                            string   `json:"issuer"`
	AuthorizationEndpoint             string   `json:"authorization_endpoint"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	RegistrationEndpoint              string   `json:"registration_endpoint"`
	JWKSURI                           string   `json:"jwks_uri"`
	ScopesSupported                   []string `json:"scopes_supported,omitempty"`
	ResponseTypesSupported            []string `json:"response_types_supported"`
	GrantTypesSupported               []string `json:"grant_types_supported"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
	CodeChallengeMethodsSupported     []string `json:"code_challenge_methods_supported"`
	IntrospectionEndpoint             string   `json:"introspection_endpoint"`
	IntrospectionAuthMethodsSupported []string `json:"introspection_endpoint_auth_methods_supported"`
	RevocationEndpoint                string   `json:"revocation_endpoint"`
	RevocationAuthMethodsSupported    []string `json:"revocation_endpoint_auth_methods_supported"`
	// RFC 9207: the authorization response always carries iss.
	AuthorizationResponseIssParameterSupported bool `json:"authorization_response_iss_parameter_supported"`
	// draft-ietf-oauth-client-id-metadata-document.
	ClientIDMetadataDocumentSupported bool `json:"client_id_metadata_document_supported"`
	// OpenID Connect Discovery 1.0 §3.
	UserinfoEndpoint                 string   `json:"userinfo_endpoint"`
	IDTokenSigningAlgValuesSupported []string `json:"id_token_signing_alg_values_supported"`
	SubjectTypesSupported            []string `json:"subject_types_supported"`
	ResponseModesSupported           []string `json:"response_modes_supported"`
	ClaimsSupported                  []string `json:"claims_supported"`
	PromptValuesSupported            []string `json:"prompt_values_supported"`
	// Request objects are not supported; request_uri_parameter_supported
	// would default to true if left out.
	RequestURIParameterSupported bool `json:"request_uri_parameter_supported"`
}

// writeWellKnown answers a discovery document: 200 directly, never a
// redirect, and readable from any origin (browser-based clients fetch
// these).
func writeWellKnown(w http.ResponseWriter, r *http.Request, v any) {
	if !allowMethods(w, r, http.MethodGet, http.MethodHead) {
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// serveServerMetadata serves RFC 8414 metadata, at
// /.well-known/oauth-authorization-server (with the issuer's path appended
// when it has one) and at /.well-known/openid-configuration.
func (s *Server) serveServerMetadata(w http.ResponseWriter, r *http.Request) {
	writeWellKnown(w, r, s.serverMetadata(r))
}

// serveOpenIDConfiguration serves the OpenID Connect discovery document
// (OpenID Connect Discovery 1.0 §4): the RFC 8414 metadata, which carries
// the OpenID Connect members too, with scopes_supported always present
// (it lists openid whatever the operator's list; see supportedScopes).
func (s *Server) serveOpenIDConfiguration(w http.ResponseWriter, r *http.Request) {
	m := s.serverMetadata(r)
	if m.ScopesSupported == nil {
		m.ScopesSupported = openIDScopes
	}
	writeWellKnown(w, r, m)
}

// serverMetadata is this server's metadata for a request. What a client
// may register (grant types, authentication methods, metadata documents)
// comes from the registration policy, so the document never offers what
// registration refuses.
func (s *Server) serverMetadata(r *http.Request) serverMetadata {
	base := s.baseURL(r)
	return serverMetadata{
		Issuer:                            s.issuer(r),
		AuthorizationEndpoint:             base + s.cfg.AuthorizationPath,
		TokenEndpoint:                     base + s.cfg.TokenPath,
		RegistrationEndpoint:              base + s.cfg.RegistrationPath,
		JWKSURI:                           base + s.cfg.JWKSPath,
		ScopesSupported:                   s.policy.supportedScopes(),
		ResponseTypesSupported:            supportedResponseTypes,
		GrantTypesSupported:               s.policy.allowedGrantTypes(),
		TokenEndpointAuthMethodsSupported: s.policy.allowedAuthMethods(),
		CodeChallengeMethodsSupported:     []string{"S256"},
		IntrospectionEndpoint:             base + s.cfg.IntrospectionPath,
		IntrospectionAuthMethodsSupported: supportedAuthMethods[:2],
		RevocationEndpoint:                base + s.cfg.RevocationPath,
		// Revocation accepts whoever may hold a token: the same clients
		// as the token endpoint.
		RevocationAuthMethodsSupported:             s.policy.allowedAuthMethods(),
		AuthorizationResponseIssParameterSupported: true,
		ClientIDMetadataDocumentSupported:          s.cimd != nil && s.policy.allowsMetadataDocuments(),
		UserinfoEndpoint:                           base + s.cfg.UserinfoPath,
		IDTokenSigningAlgValuesSupported:           idTokenAlgs,
		SubjectTypesSupported:                      []string{"public"},
		ResponseModesSupported:                     []string{"query"},
		ClaimsSupported:                            s.claimsSupported(),
		PromptValuesSupported:                      []string{promptNone, promptLogin, promptConsent, promptSelectAccount},
	}
}

// resourceMetadata is the protected resource metadata of RFC 9728 §2.
type resourceMetadata struct {
	Resource               string   `json:"resource"`
	AuthorizationServers   []string `json:"authorization_servers"`
	ScopesSupported        []string `json:"scopes_supported,omitempty"`
	BearerMethodsSupported []string `json:"bearer_methods_supported"`
	JWKSURI                string   `json:"jwks_uri,omitempty"`
}

// serveResourceMetadata serves RFC 9728 metadata. The document at
// <origin>/.well-known/oauth-protected-resource/<path> describes the
// resource <origin>/<path> (see resourceOrigin: on the configured
// resource's host, that host, which need not be the issuer's): RFC 9728
// §3.3 has clients check that resource equals the URL they derived the
// document's from, so the document names exactly that URL. The bare
// well-known path describes this gate's resource identifier.
func (s *Server) serveResourceMetadata(w http.ResponseWriter, r *http.Request) {
	suffix := strings.TrimPrefix(r.URL.EscapedPath(), wellKnownResource)
	res := s.resource(r)
	if suffix != "" && suffix != "/" {
		if !canonicalPath(suffix) {
			// No token is issued for such a resource (CheckResource).
			writeJSON(w, http.StatusNotFound, ErrInvalidRequest.WithStatus(http.StatusNotFound).WithDescription(
				"no resource has this path"))
			return
		}
		res = s.resourceOrigin(r) + suffix
	}
	scopes := s.policy.scopes // the operator's: openid is no scope of a resource
	if scopes == nil {
		scopes = s.cfg.RequireScope
	}
	writeWellKnown(w, r, resourceMetadata{
		Resource:               res,
		AuthorizationServers:   []string{s.issuer(r)},
		ScopesSupported:        scopes,
		BearerMethodsSupported: []string{"header"},
		JWKSURI:                s.baseURL(r) + s.cfg.JWKSPath,
	})
}

// resourceMetadataURL is where the gate's challenge points clients: the
// metadata of the configured resource, or else of the URL requested.
func (s *Server) resourceMetadataURL(r *http.Request) string {
	if s.cfg.Resource != "" {
		return wellKnownURL(s.cfg.Resource)
	}
	p := requestPath(r)
	if p == "/" {
		p = ""
	}
	return s.resourceOrigin(r) + wellKnownResource + p
}

// resourceOrigin is the origin of the resources a request names: the
// configured resource's when the request was sent to its host (with its
// scheme, which holds behind a proxy that ends TLS), else the origin the
// issuer and the token endpoint go by (baseURL). One rule for the gate's
// challenge and the documents, so that a client always asks for a
// resource the token endpoint issues and the gate takes.
func (s *Server) resourceOrigin(r *http.Request) string {
	if o := s.cfgResourceOrigin; o != "" {
		_, host, _ := strings.Cut(o, "://")
		if strings.EqualFold(host, r.Host) {
			return o
		}
	}
	return s.baseURL(r)
}

// wellKnownURL inserts the RFC 9728 well-known path between the host and
// the path of a resource identifier (RFC 9728 §3.1).
func wellKnownURL(resource string) string {
	i := strings.Index(resource, "://")
	if i < 0 {
		return resource
	}
	rest := resource[i+3:]
	j := strings.IndexAny(rest, "/?")
	if j < 0 {
		return resource + wellKnownResource
	}
	p := strings.TrimSuffix(rest[j:], "/")
	return resource[:i+3] + rest[:j] + wellKnownResource + p
}

// serveJWKS publishes the public halves of the signing keys (RFC 7517).
func (s *Server) serveJWKS(w http.ResponseWriter, r *http.Request) {
	if !allowMethods(w, r, http.MethodGet, http.MethodHead) {
		return
	}
	writeJSONBytes(w, http.StatusOK, s.keys.jwksJSON())
}
