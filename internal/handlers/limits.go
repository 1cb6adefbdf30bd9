package handlers

import (
	"context"
	"crypto/subtle"
	"net/http"
	"net/netip"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-dcr/caddy-dcr/storage"
)

// Limits bound what strangers can make the server store, and what they
// may register. The zero value limits nothing; the Caddy module fills in
// its defaults.
type Limits struct {
	// RegistrationBurst and RegistrationWindow are the registration
	// limit: a token bucket per client address holding
	// RegistrationBurst registrations, refilled over RegistrationWindow.
	// RegistrationBurst 0: no limit.
	RegistrationBurst  int
	RegistrationWindow time.Duration
	// RegistrationExempt are the client addresses the limit does not
	// apply to.
	RegistrationExempt []netip.Prefix
	// MaxClients caps the stored clients; 0: no cap.
	MaxClients int

	// AllowedGrantTypes are the grant types a client may register; nil:
	// every one the server supports.
	AllowedGrantTypes []string
	// AllowedRedirectSchemes are the redirect URI schemes a client may
	// register (lower case); nil: any the server accepts.
	AllowedRedirectSchemes []string
	// AllowedRedirectHosts are the hosts an http or https redirect URI
	// may name: exact names, or "*.example.com" for any name below
	// example.com; nil: any.
	AllowedRedirectHosts []string
	// NoPublicClients refuses clients without a secret (token endpoint
	// auth method none).
	NoPublicClients bool
}

// maxClientsReapAge is how old a never-used client must be before
// max_clients may reap it to make room: younger ones may be in the middle
// of their first authorization.
const maxClientsReapAge = 10 * time.Minute

// roomForClient applies max_clients before a registration is stored: when
// the store is full, it reaps the oldest never-used reapable clients
// (registered at least maxClientsReapAge ago) to make room, and if it
// still is full it answers 503 temporarily_unavailable with Retry-After
// itself and reports false. After a reap that freed nothing, it does not
// try again for reapPauseAfterNothing. Several registrations checking at once may
// each find the last free place: the cap is exceeded by at most as many
// as run at once.
func (s *Server) roomForClient(w http.ResponseWriter, r *http.Request) bool {
	limit := s.cfg.Limits.MaxClients
	if limit <= 0 {
		return true
	}
	ctx := r.Context()
	n, err := s.store.CountClients(ctx)
	if err != nil {
		s.internalError(w, "counting clients", "", err)
		return false
	}
	if n < limit {
		return true
	}
	now := s.now()
	var reaped []storage.ClientPosition
	if pause := s.reapPause.Load(); now.UnixNano() >= pause {
		reaped, err = s.store.ReapClients(ctx, storage.ReapPolicy{
			UnusedBefore: now.Add(-maxClientsReapAge).Unix(), Now: now.Unix(), Until: s.revokedUntil(), Limit: n - limit + 1,
		})
		if err != nil {
			s.log.Error("reaping unused clients to make room failed", zap.Error(err))
		}
		if len(reaped) == 0 {
			// Only this pass's pause: a newer one set meanwhile stays.
			s.reapPause.CompareAndSwap(pause, now.Add(reapPauseAfterNothing).UnixNano())
		}
	}
	if len(reaped) > 0 {
		s.ClientsReaped("max_clients", storage.IDs(reaped))
		s.log.Info("reaped unused clients to make room", zap.Int("count", len(reaped)), zap.Int("max_clients", limit))
		if n, err = s.store.CountClients(ctx); err != nil {
			s.internalError(w, "counting clients", "", err)
			return false
		}
	}
	if n < limit {
		return true
	}
	s.log.Warn("registration refused: max_clients reached", zap.Int("max_clients", limit))
	w.Header().Set("Retry-After", maxClientsRetryAfter)
	writeError(w, ErrTemporarilyUnavailable.WithDescription("this server has as many clients as it may hold; try again later"))
	return false
}

// reapPauseAfterNothing is how long registrations at max_clients skip
// reaping after a pass that freed nothing: a pass may read every client,
// and strangers could otherwise make each refused registration cost one.
// A client becomes reapable no sooner than maxClientsReapAge after it
// registered, so a pass a minute later finds what this one would have.
const reapPauseAfterNothing = time.Minute

// maxClientsRetryAfter is the Retry-After of a registration refused by
// max_clients, in seconds.
const maxClientsRetryAfter = "600"

// runtimeTokenUsable reports whether token is an initial access token
// created at run time that may be used now, so that a request with a bad
// one is refused before it costs anything (max_clients may reap). The
// registration counts the use atomically, and checks again.
func (s *Server) runtimeTokenUsable(ctx context.Context, token string) (bool, error) {
	all, err := s.store.InitialAccessTokens(ctx)
	if err != nil {
		return false, err
	}
	got := storage.HashSecret(token)
	now := s.now().Unix()
	usable := 0
	for _, t := range all {
		if subtle.ConstantTimeCompare(got, t.Hash) == 1 && t.Usable(now) {
			usable = 1
		}
	}
	return usable == 1, nil
}
