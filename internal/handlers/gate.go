package handlers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-dcr/caddy-dcr/internal/metrics"
)

var (
	errTokenExpired = errors.New("the access token expired")
	errTokenEarly   = errors.New("the access token is not valid yet")
	errTokenRevoked = errors.New("the access token was revoked")
	errWrongIssuer  = errors.New("the access token is from another issuer")
)

// checkAccessToken verifies a presented access token and returns its
// claims. The signature is checked once per token (the claims are then
// cached until exp); expiry, issuer and revocation are checked every time.
func (s *Server) checkAccessToken(ctx context.Context, r *http.Request, token string) (*accessClaims, error) {
	key := s.tokens.key(token)
	now := s.now().Unix()
	c, ok := s.tokens.get(&key)
	if !ok {
		// RFC 6750 §2.1's b64token syntax is checked here, off the
		// cached path: a token that was cached passed it already.
		if !isB64Token(token) {
			return nil, errBadToken
		}
		var err error
		if c, err = s.keys.verify(ctx, token); err != nil {
			return nil, err
		}
		if c.Expiry == 0 || c.ID == "" || c.ClientID == "" {
			return nil, errBadToken
		}
		if now >= c.Expiry {
			return nil, errTokenExpired
		}
		c = s.tokens.put(&key, c, now)
	}
	if now >= c.Expiry {
		s.tokens.remove(&key)
		return nil, errTokenExpired
	}
	// RFC 7519 §4.1.4: when present, nbf is checked. This server never
	// sets it; a token that has it was made elsewhere with our key.
	if now < c.NotBefore {
		return nil, errTokenEarly
	}
	if !s.isIssuer(r, c.Issuer) {
		return nil, errWrongIssuer
	}
	switch revoked, err := s.store.Revoked(ctx, c.ID, c.ClientID, c.Family, c.Grant); {
	case err != nil:
		return nil, fmt.Errorf("checking revocation: %w", err)
	case revoked:
		return nil, errTokenRevoked
	}
	return c, nil
}

// serveGated lets a request through to next only with a valid access token
// (RFC 6750 §2.1: in the Authorization header; a token in the query or the
// body is not looked at) that is meant for this gate's resource and
// carries the scopes it requires.
func (s *Server) serveGated(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	// Identity headers sent by the caller are removed first, whatever
	// happens next, so the upstream can trust them.
	for _, h := range s.identityHeaders {
		if h != "" {
			delete(r.Header, h)
		}
	}
	if conn := r.Header["Connection"]; len(conn) > 0 {
		s.unlistProtected(r.Header, conn)
	}
	// A header the gate sets may not come as a trailer either: an
	// upstream that merges trailers into headers would read the caller's.
	for name := range r.Trailer {
		if s.isProtectedHeader(name) {
			return caddyhttp.Error(http.StatusBadRequest, fmt.Errorf("the request declares %s as a trailer", name))
		}
	}
	// A CORS preflight carries no credentials (the Fetch standard leaves
	// them out), so a browser-based client can never pass the gate with
	// one; when allowed, it goes to the upstream, which answers for CORS.
	if s.cfg.AllowPreflight && r.Method == http.MethodOptions &&
		r.Header.Get("Origin") != "" && r.Header.Get("Access-Control-Request-Method") != "" {
		metrics.Gate(metrics.GatePreflight)
		return next.ServeHTTP(w, r)
	}
	if s.cfg.FailClosed && !s.revocationsCurrent() {
		metrics.Gate(metrics.GateUnavailable)
		w.Header().Set("Retry-After", retryAfterSeconds)
		return caddyhttp.Error(http.StatusServiceUnavailable,
			errors.New("the store is unreachable, so revocations made elsewhere may be missing (fail_closed)"))
	}
	if len(r.Header["Authorization"]) > 1 {
		// RFC 6750 §3.1: repeating the credentials is invalid_request.
		err := errors.New("more than one Authorization header")
		metrics.Gate(metrics.GateInvalidRequest)
		return s.refuse(w, r, ErrInvalidRequest.WithDescription(err.Error()), err)
	}
	token, ok := bearerTokenUnchecked(r)
	if !ok {
		// RFC 6750 §3.1: a request with no token gets a challenge
		// without an error code.
		metrics.Gate(metrics.GateNoToken)
		return s.refuse(w, r, nil, errors.New("no bearer token"))
	}
	c, err := s.checkAccessToken(r.Context(), r, token)
	if err != nil {
		metrics.Gate(gateFailure(err))
		return s.refuse(w, r, ErrInvalidToken.WithDescription(err.Error()), err)
	}
	if !s.audienceAccepted(c.Audience, r) {
		err := errors.New("the access token is for another resource")
		metrics.Gate(metrics.GateWrongAudience)
		return s.refuse(w, r, ErrInvalidToken.WithDescription(err.Error()), err)
	}
	for _, want := range s.cfg.RequireScope {
		if !hasScope(c.Scope, want) {
			err := errors.New("the access token lacks a required scope")
			metrics.Gate(metrics.GateInsufficientScope)
			return s.refuse(w, r, ErrInsufficientScope.WithDescription(err.Error()), err)
		}
	}

	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		// One lazy provider instead of a Set per value: placeholders
		// are asked for far less often than requests pass. Static
		// values an earlier handler set (basic_auth on the same route)
		// come first in the replacer, so they are removed: the token
		// says who calls.
		for _, k := range [...]string{"http.auth.user.id", "http.auth.user.client_id", "http.auth.user.scope"} {
			repl.Delete(k)
		}
		for k := range c.Extra {
			repl.Delete("http.auth.user." + k)
		}
		repl.Map(c.placeholder)
	}
	values := [...]string{c.Subject, c.ClientID, c.Scope}
	shared := values[:] // one backing array for the three header values
	for i := range values {
		if h := s.identityHeaders[i]; h != "" {
			r.Header[h] = shared[i : i+1 : i+1]
		}
	}
	if s.cfg.StripAuthorization {
		r.Header.Del("Authorization")
	}
	metrics.Gate(metrics.GateAllowed)
	return next.ServeHTTP(w, r)
}

// unlistProtected removes the identity headers (and Authorization, when it
// is stripped) from the request's Connection header. A proxy drops every
// header that Connection names as hop-by-hop (RFC 9110 §7.6.1), so a
// caller sending "Connection: X-Auth-Subject" would make the upstream
// receive no identity header at all, which an upstream may read as "an
// internal call".
func (s *Server) unlistProtected(h http.Header, conn []string) {
	if !slices.ContainsFunc(conn, func(v string) bool {
		for opt := range strings.SplitSeq(v, ",") {
			if s.isProtectedHeader(strings.TrimSpace(opt)) {
				return true
			}
		}
		return false
	}) {
		return // the usual case ("keep-alive", "close"): nothing to rebuild
	}
	kept := make([]string, 0, len(conn))
	for _, v := range conn {
		var b strings.Builder
		for opt := range strings.SplitSeq(v, ",") {
			opt = strings.TrimSpace(opt)
			if opt == "" || s.isProtectedHeader(opt) {
				continue
			}
			if b.Len() > 0 {
				b.WriteString(", ")
			}
			b.WriteString(opt)
		}
		if b.Len() > 0 {
			kept = append(kept, b.String())
		}
	}
	if len(kept) == 0 {
		delete(h, "Connection")
		return
	}
	h["Connection"] = kept
}

// isProtectedHeader reports whether name is a header the gate sets or
// strips, which the caller must not be able to remove on its way upstream.
func (s *Server) isProtectedHeader(name string) bool {
	if s.cfg.StripAuthorization && strings.EqualFold(name, "Authorization") {
		return true
	}
	for _, h := range s.identityHeaders {
		if h != "" && strings.EqualFold(name, h) {
			return true
		}
	}
	return false
}

// revocationsCurrent reports whether the store's revocation view has
// every revocation (see storage.Cached.Current); a store without a view
// is asked directly and always is.
func (s *Server) revocationsCurrent() bool {
	c, ok := s.store.(interface{ Current() bool })
	return !ok || c.Current()
}

// audienceAccepted reports whether one of the token's audiences names
// what the request reaches. With a configured resource, the audience must
// be that resource or a URL at or below it. Without one, each path is a
// resource of its own (the gate's challenge and the per-path RFC 9728
// documents say so): the requested URL must be at or below the audience,
// so that a token for https://a.example/server-a is refused at
// /server-b (RFC 9068 §4), while one for the whole origin goes anywhere.
// Compared in place: this runs on every request and building the URL
// would cost an allocation.
func (s *Server) audienceAccepted(aud audience, r *http.Request) bool {
	for _, a := range aud {
		if s.cfg.Resource != "" {
			if atOrBelow(a, s.cfg.Resource) {
				return true
			}
			continue
		}
		if rest, ok := s.cutOrigin(r, a); ok && (strings.TrimSuffix(rest, "/") == "" || pathAtOrBelow(requestPath(r), rest)) {
			return true
		}
	}
	return false
}

// pathAtOrBelow reports whether the request path p (escaped) is the
// audience path base or under it, on a segment boundary; "" and "/" are the
// whole origin. A path that is not in canonical form is under no narrower
// audience: Caddy's matchers and the upstream resolve "/a/../b" (and its
// percent-encoded and doubled-slash forms) to /b, so comparing it as
// written would let a token for /a through to /b. An audience with a query
// names no path of the gate's.
func pathAtOrBelow(p, base string) bool {
	base = strings.TrimSuffix(base, "/")
	if base == "" {
		return true
	}
	if base[0] != '/' || strings.ContainsAny(base, "?#") || !canonicalPath(p) {
		return false
	}
	rest, ok := strings.CutPrefix(p, base)
	return ok && (rest == "" || rest[0] == '/')
}

// requestPath is the path the client sent (escaped), before any rewrite
// on the route (handle_path, uri strip_prefix): the resource the client
// asked about, which the gate's audience check and challenge go by. Two
// MCP servers mounted under /server-a and /server-b both see /mcp.
func requestPath(r *http.Request) string {
	if or, ok := r.Context().Value(caddyhttp.OriginalRequestCtxKey).(http.Request); ok && or.URL != nil {
		return or.URL.EscapedPath()
	}
	return r.URL.EscapedPath()
}

// canonicalPath reports whether every segment of the escaped path p is
// one that no reader of the path resolves to another place: not empty
// (but a trailing one), not made of dots once percent-decoded, cut at a
// ";" (path parameters, which Tomcat, Jetty and Spring drop before they
// resolve "..") and trimmed of trailing dots, spaces and tabs (which
// Windows drops), and with no encoded slash, backslash, NUL or percent
// (double encoding) and no Unicode look-alike of a dot.
func canonicalPath(p string) bool {
	if p == "" || p[0] != '/' || strings.Contains(p, "//") {
		return false
	}
	for seg := range strings.SplitSeq(p[1:], "/") {
		if seg == "" {
			continue // only the trailing one, of "/a/": "//" is refused above
		}
		if strings.ContainsAny(seg, "%;\\") {
			lower := strings.ToLower(seg)
			for _, bad := range []string{"%2f", "%5c", "%00", "%25", "\\"} {
				if strings.Contains(lower, bad) {
					return false
				}
			}
			decoded, err := url.PathUnescape(seg)
			if err != nil {
				return false
			}
			seg, _, _ = strings.Cut(decoded, ";")
			for _, dot := range []string{"\uff0e", "\u2024", "\u2025", "\ufe52"} {
				if strings.Contains(seg, dot) {
					return false
				}
			}
		}
		if strings.TrimRight(seg, ". \t") == "" {
			return false
		}
	}
	return true
}

// isIssuer reports whether iss is this server's issuer for r (see issuer),
// without building the issuer string.
func (s *Server) isIssuer(r *http.Request, iss string) bool {
	if s.cfg.Issuer != "" {
		return iss == s.cfg.Issuer
	}
	rest, ok := s.cutOrigin(r, iss)
	return ok && rest == ""
}

// cutOrigin removes the origin that baseURL would return for r from the
// front of v.
func (s *Server) cutOrigin(r *http.Request, v string) (string, bool) {
	if s.origin != "" {
		return strings.CutPrefix(v, s.origin)
	}
	scheme := "http://"
	if r.TLS != nil {
		scheme = "https://"
	}
	rest, ok := strings.CutPrefix(v, scheme)
	if !ok {
		return "", false
	}
	return strings.CutPrefix(rest, r.Host)
}

// placeholder answers the {http.auth.user.*} placeholders of a caller
// that passed the gate: id (the subject), client_id, scope, and the
// token's extra claims by name. A claim this token lacks (an email for a
// client_credentials token) is empty rather than unknown, so that
// header_up X-Email {http.auth.user.email} sends no placeholder text.
func (c *accessClaims) placeholder(key string) (any, bool) {
	name, ok := strings.CutPrefix(key, "http.auth.user.")
	if !ok {
		return nil, false
	}
	switch name {
	case "id":
		return c.Subject, true
	case "client_id":
		return c.ClientID, true
	case "scope":
		return c.Scope, true
	}
	return c.Extra[name], true
}

func hasScope(scope, want string) bool {
	for sc := range strings.FieldsSeq(scope) {
		if sc == want {
			return true
		}
	}
	return false
}

// refuse sets the RFC 6750 §3 challenge and returns the error for Caddy's
// error routes (as basic_auth does). The challenge always names the
// protected resource metadata (RFC 9728 §5.1), and the required scopes
// when there are any, so a client can find out how to get a token.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, oerr *Error, cause error) error {
	var b strings.Builder
	b.WriteString("Bearer ")
	status := http.StatusUnauthorized
	if oerr != nil {
		status = oerr.Status
		b.WriteString(`error="` + oerr.Code + `", error_description=` + quote(oerr.Description) + ", ")
	}
	b.WriteString("resource_metadata=" + quote(s.resourceMetadataURL(r)))
	if len(s.cfg.RequireScope) > 0 {
		b.WriteString(", scope=" + quote(strings.Join(s.cfg.RequireScope, " ")))
	}
	w.Header().Set("WWW-Authenticate", b.String())
	return caddyhttp.Error(status, cause)
}

// quotedPair escapes what an RFC 9110 quoted-string cannot hold as is.
var quotedPair = strings.NewReplacer(`\`, `\\`, `"`, `\"`)

// quote makes an RFC 9110 quoted-string.
func quote(s string) string { return `"` + quotedPair.Replace(s) + `"` }
