package handlers

import (
	"context"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/oauth2"

	"github.com/caddy-dcr/caddy-dcr/internal/login"
	"github.com/caddy-dcr/caddy-dcr/internal/ratelimit"
	"github.com/caddy-dcr/caddy-dcr/storage"
)

// DefaultSessionTTL is how long a sign-in through an upstream lasts.
const DefaultSessionTTL = 12 * time.Hour

// pendingLoginTTL is how long a person has to sign in at the upstream; a
// pending sign-in is gone after it, whether used or not.
const pendingLoginTTL = 10 * time.Minute

// maxPendingParams bounds the authorization request a pending sign-in
// keeps, so that what a stranger can make the server store is small.
const maxPendingParams = 4 << 10

// Anyone may start a sign-in, and each one stores a pending record until it
// expires, so an instance starts at most pendingPerSecond a second on
// average (bursts of pendingBurst): at most pendingPerSecond ×
// pendingLoginTTL records of at most maxPendingParams bytes, about 48 MiB,
// outstanding per instance.
const (
	pendingPerSecond = 20
	pendingBurst     = 200
)

// One address starts at most loginStartsPerAddress sign-ins in a burst,
// refilled over loginStartsWindow (one every 2 s), before the instance's
// own budget above: a person starts a handful, and one stranger cannot
// spend the budget that everyone's sign-ins share.
const (
	loginStartsPerAddress = 30
	loginStartsWindow     = time.Minute
)

// Cookie names; on https they take the __Host- prefix, which binds a
// cookie to this host, https and the path / (RFC 6265bis §4.1.3.2).
const (
	sessionCookie = "dcr_session"
	browserCookie = "dcr_login"
)

// loginState is the upstream login side of a Server; nil when no login is
// configured.
type loginState struct {
	byName map[string]*login.Login
	order  []*login.Login
	// base is the directory of the authorization endpoint: callbacks are
	// at base/callback/<name>, the choice links at base/login/<name>, and
	// logout at base/logout.
	base string
	ttl  time.Duration
	// keys seal session cookies, one per SessionKeyPeriod; from the
	// store, so that every instance and every reload opens the same
	// cookies.
	keysMu sync.Mutex
	keys   map[int64][]byte
	// starts bounds how fast sign-ins start, perAddress how fast one
	// client address starts them (a table shared by the handlers on the
	// store, across reloads; see shareSignInLimit).
	starts            *ratelimit.Bucket
	perAddress        *ratelimit.Limiter
	releasePerAddress func()
}

// setupLogins prepares the upstream logins of cfg, reading the session key
// from the store so that every instance and every reload opens the same
// cookies.
func (s *Server) setupLogins(ctx context.Context) error {
	if len(s.cfg.Logins) == 0 {
		return nil
	}
	ls := &loginState{byName: map[string]*login.Login{}, ttl: s.cfg.SessionTTL, keys: map[int64][]byte{},
		starts: ratelimit.NewBucket(pendingBurst, pendingBurst*time.Second/pendingPerSecond)}
	for _, l := range s.cfg.Logins {
		if _, dup := ls.byName[l.Name]; dup {
			return fmt.Errorf("two logins are named %s", l.Name)
		}
		ls.byName[l.Name] = l
		ls.order = append(ls.order, l)
	}
	ls.base = strings.TrimSuffix(path.Dir(s.cfg.AuthorizationPath), "/")
	s.logins = ls
	if _, err := s.sessionKey(ctx, sessionEpoch(s.now())); err != nil {
		return fmt.Errorf("reading the session key: %w", err)
	}
	return nil
}

// shareSignInLimit takes this server's share of its store's per-address
// sign-in table; Close lets go of it.
func (s *Server) shareSignInLimit() {
	if s.logins == nil {
		return
	}
	s.logins.perAddress, s.logins.releasePerAddress = ratelimit.Of(s.store).Limiter(
		ratelimit.Key{Purpose: "sign-in", Burst: loginStartsPerAddress, Window: loginStartsWindow}, nil)
}

// SessionKeyPeriod is how long one key seals new session cookies before
// the next takes over. A cookie opens with the key of its period or of
// the period after, never an older one, so MaxSessionTTL is this long and
// a key leaked from the store stops opening cookies two periods later.
const SessionKeyPeriod = 30 * 24 * time.Hour

// MaxSessionTTL bounds session_ttl; see SessionKeyPeriod.
const MaxSessionTTL = SessionKeyPeriod

// sessionEpoch numbers the key period t falls in.
func sessionEpoch(t time.Time) int64 { return t.Unix() / int64(SessionKeyPeriod/time.Second) }

// sessionKey returns the session key of a period, read from the store the
// first time (made there by whichever instance asks first), and forgets
// the keys of periods whose cookies no longer open.
func (s *Server) sessionKey(ctx context.Context, epoch int64) ([]byte, error) {
	ls := s.logins
	ls.keysMu.Lock()
	k, ok := ls.keys[epoch]
	ls.keysMu.Unlock()
	if ok {
		return k, nil
	}
	k, err := s.store.ServerSecret(ctx, "session-"+strconv.FormatInt(epoch, 10))
	if err != nil {
		return nil, err
	}
	ls.keysMu.Lock()
	ls.keys[epoch] = k
	for e := range ls.keys {
		if e < sessionEpoch(s.now())-1 {
			delete(ls.keys, e)
		}
	}
	ls.keysMu.Unlock()
	return k, nil
}

// sealSession seals sess with the current period's key; the cookie
// carries the period's number before the sealed value.
func (s *Server) sealSession(ctx context.Context, sess *login.Session) (string, error) {
	epoch := sessionEpoch(s.now())
	key, err := s.sessionKey(ctx, epoch)
	if err != nil {
		return "", err
	}
	sealed, err := login.Seal(key, sess)
	if err != nil {
		return "", err
	}
	return strconv.FormatInt(epoch, 10) + "." + sealed, nil
}

// openSession opens a cookie that sealSession made in this period or the
// one before.
func (s *Server) openSession(ctx context.Context, v string) (*login.Session, error) {
	e, sealed, ok := strings.Cut(v, ".")
	epoch, err := strconv.ParseInt(e, 10, 64)
	if now := sessionEpoch(s.now()); !ok || err != nil || (epoch != now && epoch != now-1) {
		return nil, errors.New("session cookie of no current key")
	}
	key, err := s.sessionKey(ctx, epoch)
	if err != nil {
		return nil, err
	}
	return login.Open(key, sealed)
}

// serveLoginPath answers the login side's paths and reports whether p was
// one of them.
func (s *Server) serveLoginPath(w http.ResponseWriter, r *http.Request, p string) bool {
	ls := s.logins
	if ls == nil || !strings.HasPrefix(p, ls.base+"/") {
		return false
	}
	rest := p[len(ls.base)+1:]
	switch {
	case rest == "logout":
		s.serveLogout(w, r)
	case strings.HasPrefix(rest, "callback/"):
		l := ls.byName[rest[len("callback/"):]]
		if l == nil {
			return false
		}
		s.serveCallback(w, r, l)
	case strings.HasPrefix(rest, "login/"):
		l := ls.byName[rest[len("login/"):]]
		if l == nil {
			return false
		}
		s.serveLoginChoice(w, r, l)
	default:
		return false
	}
	return true
}

// secureCookies reports whether the person's browser talks to this server
// over https: the request came over TLS, or the configured issuer is an
// https URL (TLS ended by a proxy in front of Caddy).
func (s *Server) secureCookies(r *http.Request) bool {
	return r.TLS != nil || strings.HasPrefix(s.cfg.Issuer, "https://")
}

// cookieName is name with the __Host- prefix on https.
func (s *Server) cookieName(r *http.Request, name string) string {
	if s.secureCookies(r) {
		return "__Host-" + name
	}
	return name
}

// setCookie sets a cookie the way every cookie here is set: HttpOnly,
// SameSite=Lax (sent on the top-level redirect back from the upstream,
// never on a cross-site POST), path /, and Secure with the __Host- prefix
// on https. maxAge < 0 deletes it.
func (s *Server) setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: s.cookieName(r, name), Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: s.secureCookies(r), SameSite: http.SameSiteLaxMode})
}

// identify names the person at the authorization endpoint and when they
// authenticated (unix seconds): the person of a valid session when logins
// are configured, whose claims become the {http.auth.user.*}
// placeholders; otherwise whoever the authentication handler before dcr
// names through the user placeholder, authenticated by this very request.
func (s *Server) identify(r *http.Request) (user string, authTime int64) {
	if sess := s.session(r); sess != nil {
		if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
			for k, v := range sess.Claims {
				repl.Set("http.auth.user."+k, v)
			}
			repl.Set("http.auth.user.id", sess.Subject)
		}
		return sess.Subject, sess.AuthTime
	}
	return s.user(r), s.now().Unix()
}

// sessionRevocationKey is the revocation record of a session ended by
// logout, kept beside the access token revocations so that every instance
// sees it.
func sessionRevocationKey(id string) string { return "session:" + id }

// session returns the request's valid session, or nil: none, forged,
// tampered, expired, logged out, or of a login no longer configured.
func (s *Server) session(r *http.Request) *login.Session {
	ls := s.logins
	if ls == nil {
		return nil
	}
	c, err := r.Cookie(s.cookieName(r, sessionCookie))
	if err != nil {
		return nil
	}
	sess, err := s.openSession(r.Context(), c.Value)
	if err != nil || s.now().Unix() >= sess.Expires || ls.byName[sess.Login] == nil {
		return nil
	}
	revoked, err := s.store.Revoked(r.Context(), sessionRevocationKey(sess.ID), "", "", "")
	if err != nil || revoked {
		return nil
	}
	return sess
}

// startLogin sends the person to sign in (for the first time, or again
// for prompt=login or max_age) when logins are configured, and reports
// whether it answered: straight to the upstream when there is one login,
// else to a page that lets the person choose.
func (s *Server) startLogin(w http.ResponseWriter, r *http.Request, req *authzRequest) bool {
	ls := s.logins
	if ls == nil {
		return false
	}
	// Back from the upstream, the request must not ask for a sign-in
	// again (OpenID Connect Core 1.0 §3.1.2.1): prompt=login and max_age
	// are met by the sign-in that just happened, and a max_age of 0 would
	// otherwise send the person round again whenever the round trip
	// crossed a second.
	params := url.Values{}
	for k, v := range req.params {
		params[k] = v
	}
	params.Del("max_age")
	if req.oidc.prompts(promptLogin) {
		var kept []string
		for _, p := range req.oidc.prompt {
			if p != promptLogin {
				kept = append(kept, p)
			}
		}
		params.Set("prompt", strings.Join(kept, " "))
		if len(kept) == 0 {
			params.Del("prompt")
		}
	}
	if len(ls.order) == 1 && !req.oidc.prompts(promptSelectAccount) {
		s.beginLogin(w, r, ls.order[0], params)
		return true
	}
	type choice struct {
		Name string
		Link template.URL
	}
	var choices []choice
	for _, l := range ls.order {
		// A path of ours with a query we encoded: safe in an href.
		choices = append(choices, choice{Name: l.DisplayName,
			Link: template.URL(ls.base + "/login/" + l.Name + "?" + params.Encode())})
	}
	s.renderPage(w, http.StatusOK, "choice.html", map[string]any{"Site": r.Host, "Choices": choices})
	return true
}

// serveLoginChoice starts a sign-in with the login the person chose on the
// choice page. Its query is the authorization request, validated again, so
// that nothing but a request the authorization endpoint would take is
// kept; the person returns to the authorization endpoint, never to a URL
// taken from the request.
func (s *Server) serveLoginChoice(w http.ResponseWriter, r *http.Request, l *login.Login) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		s.showError(w, http.StatusMethodNotAllowed, "Method not allowed", "Use GET.")
		return
	}
	q := r.URL.Query()
	if _, aerr, page := s.parseAuthorizationRequest(r, q); page != "" || aerr != nil {
		s.showError(w, http.StatusBadRequest, "This request cannot be authorized",
			"The sign-in link is not valid. Go back to the application and start again.")
		return
	}
	s.beginLogin(w, r, l, q)
}

// pendingKey is the store key of a pending sign-in: a hash of its state,
// in a namespace no authorization code's hash can fall into.
func pendingKey(state string) []byte {
	return storage.HashSecret("dcr pending login\x00" + state)
}

// beginLogin keeps the pending authorization request on the server side
// and sends the person to the upstream with a new state, nonce and PKCE
// verifier. The pending sign-in is stored as a one-time record with an
// expiry (an authorization code record that no client can exchange: it
// names no client), so a callback is taken once, on whichever instance it
// reaches. A cookie binds it to this browser: a callback URL made by
// someone else's sign-in does not sign this person in as them.
func (s *Server) beginLogin(w http.ResponseWriter, r *http.Request, l *login.Login, params url.Values) {
	encoded := params.Encode()
	if len(encoded) > maxPendingParams {
		s.showError(w, http.StatusBadRequest, "This request cannot be authorized", "The authorization request is too large.")
		return
	}
	now := s.now()
	if addr, ok := clientAddr(r); ok {
		if allowed, wait := s.logins.perAddress.Allow(addr, now); !allowed {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
			s.showError(w, http.StatusTooManyRequests, "Try again shortly", "Too many sign-ins were started from your address. Try again in a moment.")
			return
		}
	}
	if !s.logins.starts.Allow(now) {
		w.Header().Set("Retry-After", retryAfterSeconds)
		s.showError(w, http.StatusServiceUnavailable, "Try again shortly", "Too many sign-ins are starting right now. Try again in a moment.")
		return
	}
	state, nonce, verifier, browser := newSecret(), newSecret(), oauth2.GenerateVerifier(), newSecret()
	err := s.store.CreateAuthCode(r.Context(), pendingKey(state), &storage.AuthCode{
		RedirectURI: encoded, Challenge: verifier, Subject: l.Name, Nonce: nonce, ExpiresAt: now.Add(pendingLoginTTL).Unix(),
		Claims: map[string]string{"browser": hex.EncodeToString(storage.HashSecret(browser))},
	})
	if err != nil {
		s.log.Error("storing a pending sign-in failed", zap.String("login", l.Name), zap.Error(err))
		w.Header().Set("Retry-After", retryAfterSeconds)
		s.showError(w, http.StatusServiceUnavailable, "Try again shortly", pageUnavailable)
		return
	}
	target, err := l.AuthCodeURL(r.Context(), s.callbackURL(r, l), state, nonce, verifier)
	if err != nil {
		s.log.Warn("upstream login unavailable", zap.String("login", l.Name), zap.Error(err))
		s.showError(w, http.StatusBadGateway, "Sign-in unavailable",
			"The sign-in provider "+l.DisplayName+" cannot be reached right now. Try again in a moment.")
		return
	}
	s.setCookie(w, r, browserCookie, browser, int(pendingLoginTTL/time.Second))
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	s.keepOutOfAccessLog(r, l, "sign-in started", http.StatusFound)
	http.Redirect(w, r, target, http.StatusFound)
}

// keepOutOfAccessLog leaves a request of the sign-in out of Caddy's access
// log, which would record the state (in the Location to the upstream) or
// the upstream's code and state (in the callback's URI), and logs it here
// without them, as keepCodeOutOfAccessLog does for codes.
func (s *Server) keepOutOfAccessLog(r *http.Request, l *login.Login, msg string, status int) {
	caddyhttp.SetVar(r.Context(), caddyhttp.LogSkipVar, true)
	if ce := s.log.Check(zapcore.InfoLevel, msg); ce != nil {
		fields := []zap.Field{zap.String("login", l.Name), zap.String("method", r.Method), zap.String("uri", r.URL.Path),
			zap.String("remote_addr", r.RemoteAddr)}
		if status != 0 {
			fields = append(fields, zap.Int("status", status))
		}
		ce.Write(fields...)
	}
}

// callbackURL is the redirect URI registered at the upstream for l.
func (s *Server) callbackURL(r *http.Request, l *login.Login) string {
	return s.baseURL(r) + s.logins.base + "/callback/" + l.Name
}

// serveCallback takes the upstream's answer: the pending sign-in by its
// state (once; a replayed callback finds nothing), this browser's binding,
// the code exchanged and the person validated by the provider, the allow
// rules, and only then a new session, before the person returns to the
// authorization request.
func (s *Server) serveCallback(w http.ResponseWriter, r *http.Request, l *login.Login) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		s.showError(w, http.StatusMethodNotAllowed, "Method not allowed", "Use GET.")
		return
	}
	startAgain := "Go back to the application and start again."
	s.keepOutOfAccessLog(r, l, "sign-in callback", 0)
	q := r.URL.Query()
	state := q.Get("state")
	if state == "" {
		s.showError(w, http.StatusBadRequest, "Sign-in failed", "The answer of the sign-in provider has no state. "+startAgain)
		return
	}
	now := s.now()
	pending, err := s.store.ConsumeAuthCode(r.Context(), pendingKey(state), now.Unix())
	switch {
	case errors.Is(err, storage.ErrNotFound), errors.Is(err, storage.ErrTokenReused):
		s.showError(w, http.StatusBadRequest, "Sign-in expired", "This sign-in has expired or was already used. "+startAgain)
		return
	case err != nil:
		s.log.Error("reading a pending sign-in failed", zap.String("login", l.Name), zap.Error(err))
		w.Header().Set("Retry-After", retryAfterSeconds)
		s.showError(w, http.StatusServiceUnavailable, "Try again shortly", pageUnavailable)
		return
	case pending.ClientID != "" || pending.Subject != l.Name:
		s.showError(w, http.StatusBadRequest, "Sign-in failed", "This answer is not for this sign-in. "+startAgain)
		return
	}
	s.setCookie(w, r, browserCookie, "", -1)
	c, err := r.Cookie(s.cookieName(r, browserCookie))
	if err != nil || subtle.ConstantTimeCompare([]byte(hex.EncodeToString(storage.HashSecret(c.Value))), []byte(pending.Claims["browser"])) != 1 {
		s.showError(w, http.StatusBadRequest, "Sign-in failed", "This sign-in was started in another browser. "+startAgain)
		return
	}
	if e := q.Get("error"); e != "" {
		s.log.Info("upstream refused the sign-in", zap.String("login", l.Name), zap.String("error", e))
		s.showError(w, http.StatusForbidden, "Sign-in refused", l.DisplayName+" did not sign you in ("+e+"). "+startAgain)
		return
	}
	code := q.Get("code")
	if code == "" {
		s.showError(w, http.StatusBadRequest, "Sign-in failed", "The answer of the sign-in provider has no code. "+startAgain)
		return
	}
	id, err := l.Exchange(r.Context(), s.callbackURL(r, l), code, pending.Challenge, pending.Nonce)
	if err != nil {
		s.log.Warn("upstream sign-in not accepted", zap.String("login", l.Name), zap.Error(err))
		s.showError(w, http.StatusBadGateway, "Sign-in failed", "The sign-in through "+l.DisplayName+" could not be verified. "+startAgain)
		return
	}
	if !l.Allowed(id) {
		s.log.Info("person refused by the allow rules", zap.String("login", l.Name), zap.String("subject", id.Subject))
		who := id.Claims["email"]
		if who == "" {
			who = id.Claims["login"]
		}
		msg := "Your account is not allowed to use this server. Ask its operator to let you in."
		if who != "" {
			msg = "Your account " + who + " at " + l.DisplayName + " is not allowed to use this server. Ask its operator to let you in."
		}
		s.showError(w, http.StatusForbidden, "Not allowed", msg)
		return
	}
	if !tokenSafe(id.Subject) {
		s.showError(w, http.StatusBadRequest, "This sign-in cannot be used",
			"The name the sign-in provider gave you has characters that cannot be carried in a token.")
		return
	}
	claims := map[string]string{}
	for k, v := range id.Claims {
		if tokenSafe(v) {
			claims[k] = v
		}
	}
	// A new session id at every sign-in: a session is never one someone
	// else could have set up beforehand.
	sealed, err := s.sealSession(r.Context(), &login.Session{ID: randomString(16), Login: l.Name, Subject: id.Subject,
		Claims: claims, AuthTime: now.Unix(), Expires: now.Add(s.logins.ttl).Unix()})
	if err != nil {
		s.log.Warn("session not made", zap.String("login", l.Name), zap.Error(err))
		s.showError(w, http.StatusBadRequest, "This sign-in cannot be used", err.Error()+".")
		return
	}
	s.setCookie(w, r, sessionCookie, sealed, int(s.logins.ttl/time.Second))
	params, _ := url.ParseQuery(pending.RedirectURI)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	http.Redirect(w, r, s.cfg.AuthorizationPath+"?"+params.Encode(), http.StatusSeeOther)
}

// serveLogout ends the session: the cookie is deleted and the session
// revoked on every instance until it would have expired.
func (s *Server) serveLogout(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		s.showError(w, http.StatusMethodNotAllowed, "Method not allowed", "Use GET or POST.")
		return
	}
	sess := s.session(r)
	if sess == nil {
		s.setCookie(w, r, sessionCookie, "", -1)
		s.showError(w, http.StatusOK, "Signed out", "You are not signed in to this server.")
		return
	}
	// Signing out takes a form with a token bound to the session: a link
	// or a form on another site cannot sign the person out (SameSite=Lax
	// sends the cookie on a top-level GET from anywhere, and a cross-site
	// POST's answer could still clear it).
	params := url.Values{"logout": {sess.ID}}
	if r.Method == http.MethodGet {
		s.renderPage(w, http.StatusOK, "message.html", message{Title: "Sign out",
			Message:    "Sign out of this server? Applications you approved keep the access you gave them; the grants page ends that.",
			FormAction: r.URL.Path, CSRF: s.csrfToken(sess.Subject, params), Button: "Sign out"})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
	if err := r.ParseForm(); err != nil || !s.checkCSRF(r.PostForm.Get("csrf_token"), sess.Subject, params) {
		s.showError(w, http.StatusForbidden, "Form expired", "The sign-out form was not valid or has expired. Open the sign-out page again.")
		return
	}
	if err := s.store.RevokeAccessToken(r.Context(), sessionRevocationKey(sess.ID), sess.Expires); err != nil {
		s.log.Error("revoking a session failed", zap.Error(err))
		w.Header().Set("Retry-After", retryAfterSeconds)
		s.showError(w, http.StatusServiceUnavailable, "Try again shortly", pageUnavailable)
		return
	}
	s.setCookie(w, r, sessionCookie, "", -1)
	s.showError(w, http.StatusOK, "Signed out", "You are signed out of this server.")
}

// stripLoginCookies removes the sign-in cookies from a request that goes
// upstream: an application behind the gate must not be able to take a
// person's session and authorize clients as them. Every gate does it,
// whether its own handler has logins or not: the cookies are the host's,
// and another dcr handler on the host may have set them. Other cookies are
// passed on as they came.
func (s *Server) stripLoginCookies(r *http.Request) {
	if !slices.ContainsFunc(r.Header["Cookie"], func(line string) bool {
		return strings.Contains(line, sessionCookie) || strings.Contains(line, browserCookie)
	}) {
		return
	}
	ours := func(name string) bool {
		name = strings.TrimPrefix(name, "__Host-")
		return name == sessionCookie || name == browserCookie
	}
	if !slices.ContainsFunc(r.Cookies(), func(c *http.Cookie) bool { return ours(c.Name) }) {
		return
	}
	var kept []string
	for _, line := range r.Header["Cookie"] {
		for part := range strings.SplitSeq(line, ";") {
			name, _, _ := strings.Cut(strings.TrimSpace(part), "=")
			if part = strings.TrimSpace(part); part != "" && !ours(name) {
				kept = append(kept, part)
			}
		}
	}
	if len(kept) == 0 {
		r.Header.Del("Cookie")
		return
	}
	r.Header["Cookie"] = []string{strings.Join(kept, "; ")}
}
