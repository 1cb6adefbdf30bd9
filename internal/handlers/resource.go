package handlers

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// Resource indicators (RFC 8707): the audience of a token and the
// resource identifier of the gate.

// requestedResource reads the resource parameter (RFC 8707 §2) and returns
// the audience of the token: the resource asked for, or this server's
// resource identifier. A resource must be an absolute URI without a
// fragment, at or below this server's resource identifier or origin.
func (s *Server) requestedResource(r *http.Request) (string, *Error) {
	return s.resourceFrom(r, r.PostForm["resource"])
}

// resourceFrom checks the resource parameter's values.
func (s *Server) resourceFrom(r *http.Request, values []string) (string, *Error) {
	switch len(values) {
	case 0:
		return s.resource(r), nil
	case 1:
	default:
		return "", ErrInvalidTarget.WithDescription("ask for one resource per token")
	}
	res := values[0]
	if err := CheckResource(res); err != nil {
		return "", ErrInvalidTarget.WithDescription(err.Error())
	}
	if !atOrBelow(res, s.resource(r)) && !atOrBelow(res, s.baseURL(r)) {
		return "", ErrInvalidTarget.WithDescription(fmt.Sprintf("%s is not a resource of this server", res))
	}
	return res, nil
}

// resource is the resource identifier of this handler's gate.
func (s *Server) resource(r *http.Request) string {
	if s.cfg.Resource != "" {
		return s.cfg.Resource
	}
	return s.baseURL(r)
}

// CheckResource requires an absolute http(s) URI with no fragment (RFC
// 8707 §2), and, of what RFC 8707 says it SHOULD NOT have, no query, and a
// path in canonical form: the gate compares paths as written, and would
// take a token for neither (see pathAtOrBelow).
func CheckResource(res string) error {
	u, err := url.Parse(res)
	if err != nil || !u.IsAbs() || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return fmt.Errorf("resource %q is not an absolute http(s) URI", res)
	}
	if strings.Contains(res, "#") {
		return fmt.Errorf("resource %q has a fragment", res)
	}
	if u.RawQuery != "" || u.ForceQuery {
		return fmt.Errorf("resource %q has a query", res)
	}
	if p := u.EscapedPath(); p != "" && p != "/" && !canonicalPath(p) {
		return fmt.Errorf("resource %q has a path with empty, . or .. segments", res)
	}
	return nil
}

// atOrBelow reports whether uri is base or a URL under it, on a path
// segment boundary (https://a.example/mcp is below https://a.example, but
// https://a.example/mcpx is not below https://a.example/mcp).
func atOrBelow(uri, base string) bool {
	base = strings.TrimSuffix(base, "/")
	if uri == base || uri == base+"/" {
		return true
	}
	if !strings.HasPrefix(uri, base) {
		return false
	}
	switch uri[len(base)] {
	case '/', '?':
		return true
	}
	return false
}
