package handlers

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/net/idna"

	"github.com/caddy-dcr/caddy-dcr/storage"
)

// maxClaimsBytes bounds the extra claims carried by one grant.
const maxClaimsBytes = 4 << 10

// consentTTL is how long a consent form stays valid.
const consentTTL = 10 * time.Minute

// pageUnavailable is the page shown when the store cannot be read: the
// request may be fine, so it is a 503, not the 400 of a bad request.
const pageUnavailable = "This server cannot read its records right now. Try again in a moment."

// authzRequest is a validated authorization request (RFC 6749 §4.1.1 with
// PKCE, RFC 7636, and resource indicators, RFC 8707).
type authzRequest struct {
	client      *storage.Client
	host        string // the host of a metadata-document client id, shown on the consent page
	redirectURI string
	// redirectOmitted: the request left redirect_uri out, so the token
	// request need not repeat it (RFC 6749 §4.1.3).
	redirectOmitted bool
	state           string
	scope           string
	audience        string
	challenge       string
	// oidc holds nonce, prompt and max_age (OpenID Connect).
	oidc oidcParams
	// params are the request's parameters as received, replayed by the
	// consent form.
	params url.Values
}

// authzError is an error to send back to the client's redirect URI.
type authzError struct {
	*Error
	req *authzRequest
}

// parseAuthorizationRequest validates the request. Errors about the client
// or its redirect URI are shown to the person (never redirected, RFC 6749
// §4.1.2.1) and come back as a page title and message; every other error
// comes back as an authzError to redirect.
func (s *Server) parseAuthorizationRequest(r *http.Request, q url.Values) (*authzRequest, *authzError, string) {
	for name, v := range q {
		if len(v) > 1 && name != "resource" {
			return nil, nil, fmt.Sprintf("The parameter %s is repeated.", name)
		}
	}
	clientID := q.Get("client_id")
	if clientID == "" {
		return nil, nil, "The request names no client (client_id is missing)."
	}
	client, host, err := s.lookupClient(r, clientID)
	if err != nil {
		return nil, nil, err.Error()
	}
	redirect := q.Get("redirect_uri")
	switch {
	case redirect == "" && len(client.Metadata.RedirectURIs) == 1:
		redirect = client.Metadata.RedirectURIs[0]
	case redirect == "":
		return nil, nil, "The request names no redirect URI and the client registered several."
	case !redirectRegistered(redirect, client.Metadata.RedirectURIs):
		return nil, nil, "The redirect URI is not one the client registered."
	}
	req := &authzRequest{client: client, host: host, redirectURI: redirect, redirectOmitted: q.Get("redirect_uri") == "", state: q.Get("state"), params: q}
	fail := func(e *Error, desc string) (*authzRequest, *authzError, string) {
		return nil, &authzError{Error: e.WithDescription(desc), req: req}, ""
	}
	switch {
	case !isVSChars(req.state):
		return fail(ErrInvalidRequest, "state must be printable ASCII (RFC 6749 Appendix A.5)")
	case q.Has("request"):
		// Honouring the query while a signed request object says
		// otherwise would defeat the client's purpose.
		return fail(ErrRequestNotSupported, "request objects are not supported")
	case q.Has("request_uri"):
		return fail(ErrRequestURINotSupported, "request objects are not supported")
	}
	switch rt := q.Get("response_type"); {
	case rt == "":
		return fail(ErrInvalidRequest, "response_type is required")
	case rt != responseCode:
		return fail(ErrUnsupportedResponseType, "only response_type=code is supported")
	}
	if !slices.Contains(client.Metadata.GrantTypes, grantAuthorizationCode) {
		return fail(ErrUnauthorizedClient, "the client did not register the authorization_code grant")
	}
	// PKCE is required of every client, with S256 (OAuth 2.1 §4.1.1).
	req.challenge = q.Get("code_challenge")
	if req.challenge == "" {
		return fail(ErrInvalidRequest, "code_challenge is required (PKCE with S256)")
	}
	if q.Get("code_challenge_method") != "S256" {
		return fail(ErrInvalidRequest, "code_challenge_method must be S256")
	}
	if len(req.challenge) != 43 || !isB64Token(req.challenge) || strings.ContainsAny(req.challenge, "+/=") {
		return fail(ErrInvalidRequest, "code_challenge is not a base64url SHA-256 digest")
	}
	scope, oerr := s.grantScope(q.Get("scope"), client.Metadata.Scope)
	if oerr != nil {
		return fail(oerr, oerr.Description)
	}
	req.scope = scope
	aud, oerr := s.resourceFrom(r, q["resource"])
	if oerr != nil {
		return fail(oerr, oerr.Description)
	}
	req.audience = aud
	if req.oidc, oerr = parseOIDCParams(q); oerr != nil {
		return fail(oerr, oerr.Description)
	}
	switch {
	case !hasScope(req.scope, scopeOpenID):
		req.oidc.nonce = "" // OpenID Connect Core 1.0 §3.1.2.1: nonce is an OpenID Connect parameter
	case q.Get("redirect_uri") == "":
		// OpenID Connect Core 1.0 §3.1.2.1: redirect_uri is required.
		return fail(ErrInvalidRequest, "redirect_uri is required with the openid scope")
	}
	return req, nil, ""
}

// lookupClient finds a registered client, or (when enabled) fetches the
// client's metadata document.
func (s *Server) lookupClient(r *http.Request, clientID string) (*storage.Client, string, error) {
	if s.cimd != nil && strings.HasPrefix(clientID, "https://") {
		c, err := s.cimd.client(r.Context(), clientID)
		if err != nil {
			s.log.Info("client metadata document unusable", zap.String("client_id", clientID), zap.Error(err))
			reason := err.Error()
			if errors.Is(err, errDocumentFetch) {
				reason = errDocumentFetch.Error()
			}
			return nil, "", fmt.Errorf("The client's metadata document could not be used: %s.", reason)
		}
		u, _ := url.Parse(clientID)
		return c, u.Host, nil
	}
	c, err := s.store.Client(r.Context(), clientID)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return nil, "", errors.New("The application is not registered with this server.")
	case err != nil:
		s.log.Error("reading client failed", zap.String("client_id", clientID), zap.Error(err))
		return nil, "", errors.New(pageUnavailable)
	case c.Settings.Disabled:
		return nil, "", errors.New("The application is disabled on this server.")
	}
	return c, "", nil
}

// redirectRegistered reports whether uri is one of the registered redirect
// URIs, compared exactly, except that a loopback http URI matches with any
// port (RFC 8252 §7.3: native apps get a port from the OS at run time). A
// URI that is not registered as written must pass the rules registration
// applies (no credentials, a real port), so that the port leeway lets
// nothing else through.
func redirectRegistered(uri string, registered []string) bool {
	if slices.Contains(registered, uri) {
		return true
	}
	if checkRedirectURI(uri) != nil {
		return false
	}
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "http" || !isLoopbackHost(u.Hostname()) {
		return false
	}
	for _, reg := range registered {
		ru, err := url.Parse(reg)
		if err != nil || ru.Scheme != "http" || !isLoopbackHost(ru.Hostname()) {
			continue
		}
		if ru.Hostname() == u.Hostname() && ru.EscapedPath() == u.EscapedPath() && ru.RawQuery == u.RawQuery && u.Fragment == "" {
			return true
		}
	}
	return false
}

// serveAuthorize is the authorization endpoint (RFC 6749 §4.1). The person
// is whoever the authentication handler before dcr (basic_auth,
// forward_auth, …) says, through the user placeholder.
func (s *Server) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	var q url.Values
	switch r.Method {
	case http.MethodGet:
		var err error
		// r.URL.Query would drop a malformed pair and go on without it.
		if q, err = url.ParseQuery(r.URL.RawQuery); err != nil {
			s.showError(w, http.StatusBadRequest, "Bad request", "The request's parameters are not well-formed.")
			return
		}
	case http.MethodPost:
		// The consent form posts back here, and a client may send the
		// authorization request itself as a form (OpenID Connect Core
		// 1.0 §3.1.2.1); consentForm below tells them apart.
		r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
		if err := r.ParseForm(); err != nil {
			s.showError(w, http.StatusBadRequest, "Bad request", "The form could not be read.")
			return
		}
		q = r.PostForm
	default:
		w.Header().Set("Allow", "GET, POST")
		s.showError(w, http.StatusMethodNotAllowed, "Method not allowed", "Use GET or POST.")
		return
	}
	// A POST that carries the consent form's fields is the person's
	// decision and must pass the CSRF check; one without them is an
	// authorization request, handled exactly as the GET. Which one a
	// POST is cannot be chosen by leaving a field out to skip the check:
	// without the form's fields it gets no further than a GET would.
	consentForm := r.Method == http.MethodPost && (q.Has("decision") || q.Has("csrf_token"))
	decision, csrf := q.Get("decision"), q.Get("csrf_token")
	q.Del("decision")
	q.Del("csrf_token")

	req, aerr, page := s.parseAuthorizationRequest(r, q)
	if page == pageUnavailable {
		w.Header().Set("Retry-After", retryAfterSeconds)
		s.showError(w, http.StatusServiceUnavailable, "Try again shortly", page)
		return
	}
	if page != "" {
		s.showError(w, http.StatusBadRequest, "This request cannot be authorized", page)
		return
	}
	user, authTime := s.identify(r)
	if user != "" && !tokenSafe(user) {
		s.showError(w, http.StatusBadRequest, "This sign-in cannot be used",
			"The name this site signed you in with has characters that cannot be carried in a token.")
		return
	}
	if aerr != nil {
		if s.mayRedirectUnasked(r, aerr.req, user) {
			s.redirectError(w, r, aerr.req, aerr.Error)
		} else {
			s.showRedirectError(w, r, aerr.req, aerr.Error)
		}
		return
	}
	// OpenID Connect Core 1.0 §3.1.2.1: prompt=none never shows a page;
	// a sign-in that is missing or older than max_age is login_required.
	stale := user != "" && req.oidc.authenticatedTooLongAgo(authTime, s.now())
	if req.oidc.prompts(promptNone) && (user == "" || stale) {
		s.answerUnasked(w, r, req, user, ErrLoginRequired.WithDescription("nobody is signed in, or not recently enough"))
		return
	}
	if hint := req.oidc.idTokenHint; hint != "" {
		// OpenID Connect Core 1.0 §3.1.2.1: the person signed in must
		// be the one the hint names, else login_required.
		sub, err := s.hintedSubject(r.Context(), r, hint)
		if err != nil {
			s.answerUnasked(w, r, req, user, ErrInvalidRequest.WithDescription("id_token_hint is not an ID token this server issued"))
			return
		}
		if user != "" && sub != user {
			s.answerUnasked(w, r, req, user, ErrLoginRequired.WithDescription("the person signed in is not the one id_token_hint names"))
			return
		}
	}
	if user == "" || (!consentForm && (stale || req.oidc.prompts(promptLogin))) {
		if s.startLogin(w, r, req) {
			return
		}
		if user != "" && !consentForm && req.oidc.prompts(promptLogin) {
			// With no login of its own, this server cannot make the
			// person sign in again: it must say so rather than go on
			// (OpenID Connect Core 1.0 §3.1.2.1).
			s.answerUnasked(w, r, req, user, ErrLoginRequired.WithDescription("this server cannot ask the person to sign in again"))
			return
		}
	}
	if user == "" {
		s.showError(w, http.StatusUnauthorized, "Sign-in required",
			"This server did not identify you. The site must authenticate people before this page (for example with basic_auth or forward_auth).")
		return
	}

	if consentForm {
		if !s.checkCSRF(csrf, user, q) {
			s.showError(w, http.StatusForbidden, "Form expired",
				"The consent form was not valid or has expired. Go back to the application and start again.")
			return
		}
		if decision != "approve" {
			s.audit(r, auditConsent, req.client.ID, actorUser, ErrAccessDenied.Code, []zap.Field{zap.String("subject", user), zap.String("scope", req.scope)})
			s.redirectError(w, r, req, ErrAccessDenied.WithDescription("the person denied the request"))
			return
		}
		s.issueCode(w, r, req, user, authTime, true)
		return
	}
	if req.oidc.prompts(promptConsent) || s.consentNeeded(r, req, user) {
		if req.oidc.prompts(promptNone) {
			s.answerUnasked(w, r, req, user, ErrConsentRequired.WithDescription("the person has not granted this request"))
			return
		}
		s.showConsent(w, r, req, user)
		return
	}
	s.issueCode(w, r, req, user, authTime, false)
}

// answerUnasked sends an error to the client's redirect URI when the
// client may be redirected to without the person doing anything, and
// otherwise shows it to the person (see mayRedirectUnasked).
func (s *Server) answerUnasked(w http.ResponseWriter, r *http.Request, req *authzRequest, user string, e *Error) {
	if s.mayRedirectUnasked(r, req, user) {
		s.redirectError(w, r, req, e)
		return
	}
	s.showRedirectError(w, r, req, e)
}

// isVSChars reports whether s is made of VSCHAR (%x20-7E), the characters
// RFC 6749 Appendix A allows in state and error descriptions.
func isVSChars(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// tokenSafe reports whether s can go into a token as it is: valid UTF-8
// with no NUL and no U+FFFD. encoding/json would write invalid bytes as
// U+FFFD, and the token parser refuses U+FFFD (I-JSON), so a person named
// with such bytes would get tokens the gate never accepts.
func tokenSafe(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, utf8.RuneError) && !strings.ContainsRune(s, 0)
}

// mayRedirectUnasked reports whether the server may send the person to the
// client's redirect URI without the person having done anything, as it
// does with an error. With open registration anyone can register any
// redirect URI, so redirecting at once would make this server an open
// redirector (RFC 9700 §4.11.2): only clients that earned trust get it,
// those the operator trusts, metadata-document clients from a host the
// operator allowed, and clients the signed-in person already granted.
func (s *Server) mayRedirectUnasked(r *http.Request, req *authzRequest, user string) bool {
	if slices.Contains(s.cfg.TrustedClients, req.client.ID) {
		return true
	}
	if req.host != "" {
		return s.cimd.hostAllowed(req.host)
	}
	if user == "" {
		return false
	}
	_, err := s.store.Grant(r.Context(), user, req.client.ID)
	return err == nil
}

// showRedirectError shows the person an error meant for a client that has
// not earned an unasked redirect, with a link back to the client that the
// person may follow.
func (s *Server) showRedirectError(w http.ResponseWriter, r *http.Request, req *authzRequest, e *Error) {
	var link template.URL
	if checkRedirectURI(req.redirectURI) == nil {
		// Safe to put in href: checkRedirectURI allows https, loopback
		// http and reverse-domain private-use schemes only.
		link = template.URL(s.redirectURL(r, req, errorParams(e)))
	}
	msg := "The application's request cannot be authorized"
	if e.Description != "" {
		msg += ": " + e.Description
	}
	// The link names where it goes, so that the person can tell an
	// application from a look-alike before following it.
	s.renderPage(w, http.StatusBadRequest, "message.html", message{
		Title: "This request cannot be authorized", Message: msg + ".",
		Link: link, LinkText: "Return to the application at " + redirectDestination(req.redirectURI),
	})
}

// user evaluates the user placeholder for this request: the person, or ""
// when no authentication handler named one.
func (s *Server) user(r *http.Request) string {
	repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if !ok {
		return ""
	}
	// ReplaceAll, not ReplaceKnown: a placeholder nobody set must come
	// out empty (nobody signed in), never as its own literal text.
	return strings.TrimSpace(repl.ReplaceAll(s.cfg.User, ""))
}

// consentNeeded: the person is asked unless the operator trusts the client
// or the person already granted it every scope asked for.
func (s *Server) consentNeeded(r *http.Request, req *authzRequest, user string) bool {
	if slices.Contains(s.cfg.TrustedClients, req.client.ID) {
		return false
	}
	g, err := s.store.Grant(r.Context(), user, req.client.ID)
	if err != nil {
		return true
	}
	granted := strings.Fields(g.Scope)
	for _, sc := range strings.Fields(req.scope) {
		if !slices.Contains(granted, sc) {
			return true
		}
	}
	return false
}

type hiddenField struct{ Name, Value string }

func (s *Server) showConsent(w http.ResponseWriter, r *http.Request, req *authzRequest, user string) {
	name := req.client.Metadata.ClientName
	if name == "" {
		name = "An application"
	}
	var hidden []hiddenField
	for _, k := range sortedKeys(req.params) {
		for _, v := range req.params[k] {
			hidden = append(hidden, hiddenField{k, v})
		}
	}
	site := r.Host
	if u, err := url.Parse(req.audience); err == nil && u.Host != "" {
		site = u.Host
	}
	s.renderPage(w, http.StatusOK, "consent.html", map[string]any{
		"Site":         site,
		"ClientName":   name,
		"ClientURI":    req.client.Metadata.ClientURI,
		"LogoURI":      httpsOnly(req.client.Metadata.LogoURI),
		"Host":         asciiHost(req.host),
		"User":         user,
		"Scopes":       s.describeScopes(req.scope),
		"SelfAsserted": s.selfAsserted(req),
		"RedirectHost": redirectDestination(req.redirectURI),
		"Action":       s.cfg.AuthorizationPath,
		"Hidden":       hidden,
		"CSRF":         s.csrfToken(user, req.params),
	})
}

// redirectDestination is where a redirect URI sends the person, as shown
// to them: its host in ASCII, or the whole URI for a native app's
// private-use scheme, which has none.
func redirectDestination(uri string) string {
	if u, err := url.Parse(uri); err == nil && u.Host != "" {
		return asciiHost(u.Host)
	}
	return uri
}

// asciiHost shows a host name as its ASCII (punycode) form, so that a
// look-alike in another script (a Cyrillic "а" in "аpple.com") reads as
// what it is on the consent page. A name that does not convert is shown
// escaped as a URL would carry it.
func asciiHost(host string) string {
	a, err := idna.Lookup.ToASCII(host)
	if err != nil {
		return url.PathEscape(host)
	}
	return a
}

// httpsOnly drops a logo that would load over plain http.
func httpsOnly(u string) string {
	if strings.HasPrefix(strings.ToLower(u), "https://") {
		return u
	}
	return ""
}

func sortedKeys(v url.Values) []string {
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// csrfToken binds a consent form to the person and to the exact request it
// shows, and expires: expiry || HMAC(key, expiry, user, request). A form
// posted by another site on the person's behalf has no valid token.
func (s *Server) csrfToken(user string, params url.Values) string {
	exp := make([]byte, 8)
	binary.BigEndian.PutUint64(exp, uint64(s.now().Add(consentTTL).Unix()))
	return base64.RawURLEncoding.EncodeToString(append(exp, s.csrfMAC(exp, user, params)...))
}

func (s *Server) csrfMAC(exp []byte, user string, params url.Values) []byte {
	m := hmac.New(sha256.New, s.csrfKey)
	m.Write(exp)
	m.Write([]byte(user))
	m.Write([]byte{0})
	m.Write([]byte(params.Encode()))
	return m.Sum(nil)
}

func (s *Server) checkCSRF(token, user string, params url.Values) bool {
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(raw) != 8+sha256.Size {
		return false
	}
	exp := raw[:8]
	if int64(binary.BigEndian.Uint64(exp)) < s.now().Unix() {
		return false
	}
	return subtle.ConstantTimeCompare(raw[8:], s.csrfMAC(exp, user, params)) == 1
}

// issueCode records the grant, stores a code bound to the request and the
// person, and sends the person back to the client.
func (s *Server) issueCode(w http.ResponseWriter, r *http.Request, req *authzRequest, user string, authTime int64, approved bool) {
	claims, err := s.evaluateClaims(r)
	if err != nil {
		s.log.Warn("extra claims refused", zap.String("client_id", req.client.ID), zap.Error(err))
		s.redirectError(w, r, req, ErrServerError.WithDescription("the extra claims cannot be carried in a token"))
		return
	}
	now := s.now()
	record := &storage.Grant{ID: randomString(16), Subject: user, ClientID: req.client.ID,
		ClientName: req.client.Metadata.ClientName, CreatedAt: now.Unix(), UpdatedAt: now.Unix()}
	if approved {
		record.Scope = req.scope
	}
	grant, err := s.store.RecordGrant(r.Context(), record)
	if err != nil {
		s.log.Error("recording grant failed", zap.String("client_id", req.client.ID), zap.Error(err))
		s.redirectError(w, r, req, ErrServerError.WithDescription("the grant could not be recorded"))
		return
	}
	if approved {
		s.audit(r, auditConsent, req.client.ID, actorUser, "", []zap.Field{zap.String("subject", user), zap.String("scope", req.scope)})
	}
	code := newSecret()
	err = s.store.CreateAuthCode(r.Context(), storage.HashSecret(code), &storage.AuthCode{
		ClientID: req.client.ID, RedirectURI: req.redirectURI, Challenge: req.challenge, Scope: req.scope,
		Audience: req.audience, Subject: user, ExpiresAt: now.Add(s.cfg.CodeTTL).Unix(), Family: randomString(16),
		Grant: grant.ID, Claims: claims, Nonce: req.oidc.nonce, AuthTime: authTime,
		RedirectURIOmitted: req.redirectOmitted,
	})
	if err != nil {
		s.log.Error("storing authorization code failed", zap.String("client_id", req.client.ID), zap.Error(err))
		s.redirectError(w, r, req, ErrServerError.WithDescription("the code could not be stored"))
		return
	}
	s.redirect(w, r, req, url.Values{"code": {code}})
}

// evaluateClaims fills in the operator's extra claims from this request's
// placeholders. Empty values are left out.
func (s *Server) evaluateClaims(r *http.Request) (map[string]string, error) {
	if len(s.cfg.Claims) == 0 {
		return nil, nil
	}
	repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	out := map[string]string{}
	size := 0
	for name, tmpl := range s.cfg.Claims {
		v := tmpl
		if repl != nil {
			v = repl.ReplaceAll(tmpl, "")
		}
		if v == "" {
			continue
		}
		if !tokenSafe(v) {
			return nil, fmt.Errorf("extra claim %q is not valid UTF-8 text", name)
		}
		size += len(name) + len(v)
		out[name] = v
	}
	if size > maxClaimsBytes {
		return nil, fmt.Errorf("extra claims of %d bytes exceed %d", size, maxClaimsBytes)
	}
	return out, nil
}

// redirectURL is the client's redirect URI with the response parameters,
// the state, and the issuer (RFC 9207) added to its query.
func (s *Server) redirectURL(r *http.Request, req *authzRequest, params url.Values) string {
	u, err := url.Parse(req.redirectURI)
	if err != nil {
		return ""
	}
	q := u.Query()
	for k, v := range params {
		q[k] = v
	}
	if req.state != "" {
		q.Set("state", req.state)
	}
	q.Set("iss", s.issuer(r))
	u.RawQuery = q.Encode()
	return u.String()
}

// redirect sends the person back to the client with the response
// parameters.
func (s *Server) redirect(w http.ResponseWriter, r *http.Request, req *authzRequest, params url.Values) {
	target := s.redirectURL(r, req, params)
	if target == "" {
		s.showError(w, http.StatusBadRequest, "Bad redirect URI", "The redirect URI cannot be used.")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	status := http.StatusFound
	if r.Method == http.MethodPost {
		status = http.StatusSeeOther
	}
	if params.Has("code") {
		s.keepCodeOutOfAccessLog(r, req, status)
	}
	http.Redirect(w, r, target, status)
}

// keepCodeOutOfAccessLog leaves a response that carries an authorization
// code out of Caddy's access log, whose resp_headers would record the
// Location with the code, and logs it here without the code. Editing the
// logged Location instead is not possible from a handler: the access log
// reads the same header map that a buffering writer in front of dcr
// (encode) sends only after dcr returns, so the edit would reach the
// client too.
func (s *Server) keepCodeOutOfAccessLog(r *http.Request, req *authzRequest, status int) {
	caddyhttp.SetVar(r.Context(), caddyhttp.LogSkipVar, true)
	if ce := s.log.Check(zapcore.InfoLevel, "authorization code issued"); ce != nil {
		ce.Write(zap.String("client_id", req.client.ID), zap.String("method", r.Method), zap.String("uri", r.URL.Path),
			zap.Int("status", status), zap.String("remote_addr", r.RemoteAddr))
	}
}

// errorParams are the parameters of an error response (RFC 6749
// §4.1.2.1).
func errorParams(e *Error) url.Values {
	params := url.Values{"error": {e.Code}}
	if e.Description != "" {
		params.Set("error_description", e.Description)
	}
	return params
}

func (s *Server) redirectError(w http.ResponseWriter, r *http.Request, req *authzRequest, e *Error) {
	s.redirect(w, r, req, errorParams(e))
}
