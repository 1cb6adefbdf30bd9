package handlers

import (
	"net/http"
	"sync"
	"testing"
	"time"
)

// approvedTokens runs the authorization code flow for a public client and
// returns the client and its first access and refresh tokens.
func (ts *testServer) approvedTokens(user string) (id, access, refresh string) {
	ts.t.Helper()
	id, params := ts.publicClient("")
	page := ts.authorize("GET", params, user)
	_, q := redirectParams(ts.t.(*testing.T), ts.approve(page, user, "approve"))
	access, refresh = ts.codeTokens(id, q.Get("code"))
	return id, access, refresh
}

// Clients that refresh in parallel (several tabs, parallel tool calls)
// present one refresh token several times at once. Before the reuse
// window, all but one got invalid_grant and then the winner's tokens were
// revoked too, so the person had to consent again.
func TestConcurrentRefreshesKeepTheSession(t *testing.T) {
	for _, n := range []int{2, 5, 10} {
		ts := newTestServer(t, Config{RefreshReuseWindow: 10 * time.Second})
		id, _, refresh := ts.approvedTokens("alice")
		type result struct {
			status          int
			access, refresh string
		}
		results := make([]result, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				w, m := ts.refresh(id, refresh)
				results[i].status = w.Code
				if w.Code == http.StatusOK {
					results[i].access, results[i].refresh = m["access_token"].(string), m["refresh_token"].(string)
				}
			})
		}
		wg.Wait()
		for i, r := range results {
			if r.status != http.StatusOK {
				t.Fatalf("%d concurrent refreshes: #%d got %d", n, i, r.status)
			}
			if status, _ := ts.gated("/api", "Bearer "+r.access); status != http.StatusTeapot {
				t.Fatalf("%d concurrent refreshes: access token #%d refused afterwards: %d", n, i, status)
			}
		}
		// Every successor keeps working.
		for i, r := range results {
			if w, m := ts.refresh(id, r.refresh); w.Code != http.StatusOK {
				t.Fatalf("%d concurrent refreshes: successor #%d: %d %v", n, i, w.Code, m)
			}
		}
	}
}

// Just after a rotation (within the window) the old token gets a sibling;
// after the window it is a replay that revokes the family; another client
// presenting it gets invalid_grant and revokes nothing.
func TestRefreshReuseWindow(t *testing.T) {
	ts := newTestServer(t, Config{RefreshReuseWindow: 10 * time.Second})
	id, _, refresh := ts.approvedTokens("alice")
	w, m := ts.refresh(id, refresh)
	assertOAuthJSON(t, w, m, http.StatusOK, "")
	access1, next := m["access_token"].(string), m["refresh_token"].(string)

	// Another client presenting the rotated token: refused, nothing revoked.
	other, _ := ts.publicClient("")
	w, m = ts.refresh(other, refresh)
	assertOAuthJSON(t, w, m, http.StatusBadRequest, "invalid_grant")
	if status, _ := ts.gated("/api", "Bearer "+access1); status != http.StatusTeapot {
		t.Fatalf("another client's replay revoked the family: %d", status)
	}

	// Just after, within the window: a sibling.
	ts.clock = ts.clock.Add(9 * time.Second)
	w, m = ts.refresh(id, refresh)
	assertOAuthJSON(t, w, m, http.StatusOK, "")
	sibling := m["refresh_token"].(string)
	if sibling == next {
		t.Fatal("the sibling is the successor itself")
	}

	// After the window: a replay, and the whole family is revoked.
	ts.clock = ts.clock.Add(2 * time.Second)
	w, m = ts.refresh(id, refresh)
	assertOAuthJSON(t, w, m, http.StatusBadRequest, "invalid_grant")
	if status, _ := ts.gated("/api", "Bearer "+access1); status != http.StatusUnauthorized {
		t.Fatalf("a replay after the window left the family alive: %d", status)
	}
	for _, tok := range []string{next, sibling} {
		w, m = ts.refresh(id, tok)
		assertOAuthJSON(t, w, m, http.StatusBadRequest, "invalid_grant")
	}
}

// With refresh_reuse_window 0 rotation is strict: any second use is a
// replay.
func TestStrictRotation(t *testing.T) {
	ts := newTestServer(t, Config{})
	id, _, refresh := ts.approvedTokens("alice")
	w, m := ts.refresh(id, refresh)
	assertOAuthJSON(t, w, m, http.StatusOK, "")
	access := m["access_token"].(string)
	w, m = ts.refresh(id, refresh)
	assertOAuthJSON(t, w, m, http.StatusBadRequest, "invalid_grant")
	if status, _ := ts.gated("/api", "Bearer "+access); status != http.StatusUnauthorized {
		t.Fatalf("strict rotation: replay left the family alive: %d", status)
	}
}

// Two exchanges of one code by its own client within the window: one
// wins, the other gets invalid_grant without revoking what the first got.
// After the window, a second exchange revokes them (RFC 6749 §4.1.2).
func TestConcurrentCodeExchanges(t *testing.T) {
	ts := newTestServer(t, Config{RefreshReuseWindow: 10 * time.Second})
	id, params := ts.publicClient("")
	page := ts.authorize("GET", params, "alice")
	_, q := redirectParams(t, ts.approve(page, "alice", "approve"))
	code := q.Get("code")
	statuses := make([]int, 2)
	accesses := make([]string, 2)
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() {
			w, m := ts.exchange(id, code, testVerifier, "http://127.0.0.1:4000/cb")
			statuses[i] = w.Code
			if w.Code == http.StatusOK {
				accesses[i] = m["access_token"].(string)
			}
		})
	}
	wg.Wait()
	winner := 0
	if statuses[1] == http.StatusOK {
		winner = 1
	}
	if statuses[winner] != http.StatusOK || statuses[1-winner] != http.StatusBadRequest {
		t.Fatalf("two exchanges: %v", statuses)
	}
	if status, _ := ts.gated("/api", "Bearer "+accesses[winner]); status != http.StatusTeapot {
		t.Fatalf("the losing exchange revoked the winner's token: %d", status)
	}
	ts.clock = ts.clock.Add(11 * time.Second)
	w, m := ts.exchange(id, code, testVerifier, "http://127.0.0.1:4000/cb")
	assertOAuthJSON(t, w, m, http.StatusBadRequest, "invalid_grant")
	if status, _ := ts.gated("/api", "Bearer "+accesses[winner]); status != http.StatusUnauthorized {
		t.Fatalf("a code replayed after the window left its tokens alive: %d", status)
	}
}

// Past the cap of siblings within the window, a presentation is refused
// but revokes nothing: the clients that got tokens keep them (the review
// saw 20 parallel refreshes lock all 17 winners out).
func TestReuseCapRevokesNothing(t *testing.T) {
	ts := newTestServer(t, Config{RefreshReuseWindow: 10 * time.Second})
	id, _, refresh := ts.approvedTokens("alice")
	var got []string
	for i := range maxRefreshReuses + 3 {
		w, m := ts.refresh(id, refresh)
		switch {
		case i <= maxRefreshReuses && w.Code == http.StatusOK:
			got = append(got, m["access_token"].(string))
		case i > maxRefreshReuses && w.Code == http.StatusBadRequest && m["error"] == "invalid_grant":
		default:
			t.Fatalf("presentation %d: %d %v", i, w.Code, m)
		}
	}
	for i, access := range got {
		if status, _ := ts.gated("/api", "Bearer "+access); status != http.StatusTeapot {
			t.Fatalf("token %d refused after the cap was reached: %d", i, status)
		}
	}
}
