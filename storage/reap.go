package storage

// ReapPolicy says which clients ReapClients removes: reapable ones (see
// Client.Reapable) without a live refresh token, that are either unused
// (never got a token) since UnusedBefore or idle (no token issued, and no
// grant) since IdleBefore. Times are unix seconds.
type ReapPolicy struct {
	// UnusedBefore selects clients that never got a token
	// (LastUsedAt 0) and registered before it; 0 selects none.
	UnusedBefore int64
	// IdleBefore selects clients that got no token since before it (or,
	// never used, registered before it) and that no person has a grant
	// to; 0 selects none.
	IdleBefore int64
	// Now is the time against which refresh tokens are live: a client
	// holding one that expires after Now is kept.
	Now int64
	// Until is when the removed clients' revocations end, as for
	// DeleteClient: when the last access token they may hold expires.
	Until int64
	// Limit bounds how many clients one call removes; at most
	// MaxReapBatch.
	Limit int
}

// MaxReapBatch bounds the clients one ReapClients call removes, so that
// one call is one short write.
const MaxReapBatch = 500

// Selects reports whether the rule, as far as the client record alone
// tells, selects c; the backend checks its refresh tokens and grants.
func (p *ReapPolicy) Selects(c *Client) bool {
	if !c.Reapable() {
		return false
	}
	return p.unused(c) || p.idle(c)
}

// unused is the rule of UnusedBefore.
func (p *ReapPolicy) unused(c *Client) bool {
	return c.LastUsedAt == 0 && c.IssuedAt < p.UnusedBefore
}

// idle is the rule of IdleBefore, but for grants: the caller checks them
// when Idle alone selects the client.
func (p *ReapPolicy) idle(c *Client) bool {
	return max(c.LastUsedAt, c.IssuedAt) < p.IdleBefore
}

// NeedsNoGrant reports whether c is selected only if it has no grant:
// when only the idle rule selects it.
func (p *ReapPolicy) NeedsNoGrant(c *Client) bool { return !p.unused(c) }

// BatchLimit is Limit within 1..MaxReapBatch.
func (p *ReapPolicy) BatchLimit() int { return min(max(p.Limit, 1), MaxReapBatch) }
