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
	// After resumes a pass: only clients after it in the order of
	// removal are considered. A caller reaping in batches passes the
	// last position the previous batch returned, so that no batch reads
	// again the clients an earlier one passed over; the zero value starts
	// from the oldest.
	After ClientPosition
}

// ClientPosition is a client's place in the order ReapClients removes
// clients in: by IssuedAt, then ID.
type ClientPosition struct {
	IssuedAt int64
	ID       string
}

// Before reports whether p comes before o.
func (p ClientPosition) Before(o ClientPosition) bool {
	return p.IssuedAt < o.IssuedAt || p.IssuedAt == o.IssuedAt && p.ID < o.ID
}

// Position is c's place in the order of removal.
func (c *Client) Position() ClientPosition { return ClientPosition{c.IssuedAt, c.ID} }

// IDs lists the ids of the clients at positions.
func IDs(positions []ClientPosition) []string {
	ids := make([]string, len(positions))
	for i, p := range positions {
		ids[i] = p.ID
	}
	return ids
}

// Cutoff is the registration time at and after which p selects no
// client: both rules need IssuedAt before their time.
func (p *ReapPolicy) Cutoff() int64 { return max(p.UnusedBefore, p.IdleBefore) }

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
