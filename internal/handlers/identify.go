package handlers

import "net/http"

// identify names the person at the authorization endpoint and when they
// authenticated (unix seconds): whoever the authentication handler before
// dcr names through the user placeholder, authenticated by this very
// request.
func (s *Server) identify(r *http.Request) (user string, authTime int64) {
	user = s.user(r)
	return user, s.now().Unix()
}

// startLogin sends the person to sign in, when this handler can do that
// itself, and reports whether it answered. signedOut says nobody is signed
// in; otherwise the sign-in is to be renewed (prompt=login, max_age).
func (s *Server) startLogin(w http.ResponseWriter, r *http.Request, req *authzRequest, signedOut bool) bool {
	return false
}
