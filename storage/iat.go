package storage

// InitialAccessToken is an RFC 7591 §3 initial access token the operator
// created at run time: presenting it at the registration endpoint lets a
// client register where open registration is off, a bounded number of
// times until it expires. Its value is kept only as a hash (HashSecret);
// the plaintext is shown once, when it is created.
type InitialAccessToken struct {
	ID          string `json:"id"`
	Hash        []byte `json:"hash"`
	Description string `json:"description,omitempty"`
	CreatedAt   int64  `json:"created_at"`
	// ExpiresAt is a unix time; 0 never expires.
	ExpiresAt int64 `json:"expires_at,omitempty"`
	// MaxUses is how many registrations it allows; 0 is unlimited.
	MaxUses int `json:"max_uses,omitempty"`
	// Uses counts the successful registrations that presented it.
	Uses int `json:"uses"`
}

// Usable reports whether the token may be presented at the unix time now.
func (t *InitialAccessToken) Usable(now int64) bool {
	return (t.ExpiresAt == 0 || now < t.ExpiresAt) && (t.MaxUses == 0 || t.Uses < t.MaxUses)
}
