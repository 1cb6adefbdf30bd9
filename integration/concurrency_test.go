package integration

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"testing"
)

// TestOneClientRotatedUpdatedAndDeletedConcurrently has many goroutines
// rotate, update, read and use one client at once, then delete it while
// they go on: the rotations form one chain (each answered rotation
// replaced the token the previous one issued), exactly the last token and
// secret of the chain work, and after the deletion no secret, registration
// token or access token of the client works, however the requests
// interleaved.
func TestOneClientRotatedUpdatedAndDeletedConcurrently(t *testing.T) {
	e := newEnv(t)
	e.start("registration.Caddyfile")
	status, reg, _, err := send("POST", e.url("/oauth/register"), http.Header{"Content-Type": {"application/json"}},
		`{"client_name":"v0","grant_types":["client_credentials"]}`)
	if err != nil || status != http.StatusCreated {
		t.Fatalf("registration: %d %v %v", status, reg, err)
	}
	id, uri := reg["client_id"].(string), reg["registration_client_uri"].(string)

	var (
		mu        sync.Mutex
		latestRAT = reg["registration_access_token"].(string)
		next      = map[string]string{} // registration token -> the one its rotation issued
		secretOf  = map[string]string{latestRAT: reg["client_secret"].(string)}
		names     = map[string]bool{"v0": true}
		access    []string
		problems  []string
	)
	problem := func(format string, a ...any) {
		mu.Lock()
		problems = append(problems, fmt.Sprintf(format, a...))
		mu.Unlock()
	}
	current := func() (string, string) {
		mu.Lock()
		defer mu.Unlock()
		return latestRAT, secretOf[latestRAT]
	}
	bearer := func(tok string) http.Header {
		return http.Header{"Authorization": {"Bearer " + tok}, "Content-Type": {"application/json"}}
	}
	// One operation of a random kind. A 401 is expected whenever another
	// goroutine rotated the token or secret this one read.
	op := func(g, i int) {
		rat, secret := current()
		switch rand.IntN(4) {
		case 0:
			status, m, _, err := send("POST", uri+"/rotate_secret", bearer(rat), "")
			if err != nil || status != http.StatusOK && status != http.StatusUnauthorized {
				problem("rotate: %d %v %v", status, m, err)
				return
			}
			if status == http.StatusOK {
				mu.Lock()
				if _, twice := next[rat]; twice {
					problems = append(problems, "two rotations succeeded with one registration token")
				}
				nrat := m["registration_access_token"].(string)
				next[rat] = nrat
				secretOf[nrat] = m["client_secret"].(string)
				if latestRAT == rat {
					latestRAT = nrat
				}
				mu.Unlock()
			}
		case 1:
			name := fmt.Sprintf("g%d-%d", g, i)
			mu.Lock()
			names[name] = true
			mu.Unlock()
			status, m, _, err := send("PUT", uri, bearer(rat), fmt.Sprintf(
				`{"client_id":%q,"client_name":%q,"grant_types":["client_credentials"]}`, id, name))
			if err != nil || status != http.StatusOK && status != http.StatusUnauthorized {
				problem("update: %d %v %v", status, m, err)
			}
		case 2:
			status, m, _, err := send("GET", uri, bearer(rat), "")
			if err != nil || status != http.StatusOK && status != http.StatusUnauthorized {
				problem("read: %d %v %v", status, m, err)
			}
			if status == http.StatusOK {
				mu.Lock()
				known := names[m["client_name"].(string)]
				mu.Unlock()
				if !known {
					problem("read a name nobody wrote: %v", m["client_name"])
				}
			}
		case 3:
			status, m, _, err := send("POST", e.url("/oauth/token"), formHeader("Authorization", basicHeader(id, secret)), "grant_type=client_credentials")
			if err != nil || status != http.StatusOK && status != http.StatusUnauthorized {
				problem("token: %d %v %v", status, m, err)
			}
			if status == http.StatusOK {
				mu.Lock()
				access = append(access, m["access_token"].(string))
				mu.Unlock()
			}
		}
	}
	run := func(goroutines, each int, alongside func()) {
		var wg sync.WaitGroup
		for g := range goroutines {
			wg.Go(func() {
				for i := range each {
					op(g, i)
				}
			})
		}
		if alongside != nil {
			wg.Go(alongside)
		}
		wg.Wait()
	}

	run(12, 25, nil)
	if len(problems) > 0 {
		t.Fatalf("%d problems, first: %s", len(problems), problems[0])
	}
	// The rotations form one chain; its end is the only live token.
	end, chain := reg["registration_access_token"].(string), 0
	for n, ok := next[end]; ok; n, ok = next[end] {
		end, chain = n, chain+1
	}
	if chain != len(next) || chain == 0 {
		t.Fatalf("%d rotations answered, %d of them in the chain", len(next), chain)
	}
	for rat, secret := range secretOf {
		want := http.StatusUnauthorized
		if rat == end {
			want = http.StatusOK
		}
		if status, m, _, _ := send("GET", uri, bearer(rat), ""); status != want {
			t.Fatalf("registration token (live=%v): %d %v", rat == end, status, m)
		}
		if status, m, _, _ := send("POST", e.url("/oauth/token"), formHeader("Authorization", basicHeader(id, secret)), "grant_type=client_credentials"); status != want {
			t.Fatalf("client secret (live=%v): %d %v", rat == end, status, m)
		}
	}

	// Now the deletion, in the middle of the same traffic.
	// A rotation may replace the token the deletion read under it (401):
	// the deletion then tries again with the newer one.
	deleted := false
	run(8, 15, func() {
		for range 50 {
			rat, _ := current()
			status, m, _, err := send("DELETE", uri, bearer(rat), "")
			if err == nil && status == http.StatusNoContent {
				deleted = true
				return
			}
			if err != nil || status != http.StatusUnauthorized {
				problem("delete: %d %v %v", status, m, err)
				return
			}
		}
	})
	if !deleted {
		t.Fatal("the deletion never got through")
	}
	if len(problems) > 0 {
		t.Fatalf("%d problems, first: %s", len(problems), problems[0])
	}
	for rat, secret := range secretOf {
		if status, m, _, _ := send("GET", uri, bearer(rat), ""); status != http.StatusUnauthorized {
			t.Fatalf("a registration token works after the deletion: %d %v", status, m)
		}
		if status, m, _, _ := send("POST", e.url("/oauth/token"), formHeader("Authorization", basicHeader(id, secret)), "grant_type=client_credentials"); status != http.StatusUnauthorized {
			t.Fatalf("a client secret works after the deletion: %d %v", status, m)
		}
	}
	for _, tok := range access {
		if status, _, body, _ := send("GET", e.url("/protected"), http.Header{"Authorization": {"Bearer " + tok}}, ""); status != http.StatusUnauthorized {
			t.Fatalf("an access token of the deleted client passes the gate: %d %q", status, body)
		}
	}
	t.Logf("%d rotations in one chain, %d access tokens, all dead after the deletion", chain, len(access))
}
