package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/caddy-dcr/caddy-dcr/storage"
)

// Churn drives s through n lifetimes of what open registration makes:
// a client registers, a person consents, a code is issued and exchanged,
// refresh tokens are issued and rotated, an access token and a family are
// revoked, and the client deletes itself. Every time it records (expiry,
// revocation until) lies in the past by more than any backend's grace, as
// if the records had all lived out their lives: after a backend's own
// cleanup, none of them may be left. A client "keeper" that is never
// deleted gets expired refresh tokens and codes too, and every tenth cycle
// adds an expired initial access token.
//
// Callers count what the backend holds before and after, and run its
// cleanup; Churn only writes (and checks that each write is accepted).
func Churn(ctx context.Context, t *testing.T, s storage.Store, n int) {
	t.Helper()
	past := time.Now().Add(-2 * time.Hour).Unix() // beyond every backend's grace
	if err := s.CreateClient(ctx, NewClient("keeper")); err != nil && ctx.Err() == nil {
		// Present from an earlier round: fine.
		if _, gerr := s.Client(ctx, "keeper"); gerr != nil {
			t.Fatal(err)
		}
	}
	// Four writers at once, as concurrent requests would be; it also
	// keeps a database's round trips from making the test slow.
	const writers = 4
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := w; i < n; i += writers {
				if err := churnCycle(ctx, s, i, past); err != nil {
					t.Errorf("cycle %d: %v", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
}

// churnCycle is one cycle of Churn.
func churnCycle(ctx context.Context, s storage.Store, i int, past int64) error {
	id := fmt.Sprintf("churn-%06d-%d", i, time.Now().UnixNano())
	fam, grant := "fam-"+id, "grant-"+id
	live := time.Now().Add(time.Hour).Unix()
	steps := []func() error{
		func() error { return s.CreateClient(ctx, NewClient(id)) },
		func() error {
			_, err := s.RecordGrant(ctx, &storage.Grant{ID: grant, Subject: "alice", ClientID: id, Scope: "read", CreatedAt: past, UpdatedAt: past})
			return err
		},
		func() error {
			return s.CreateAuthCode(ctx, storage.HashSecret("code-"+id), &storage.AuthCode{
				ClientID: id, RedirectURI: "https://app.example/cb", Challenge: "c", Audience: "https://api.example",
				Subject: "alice", ExpiresAt: past, Family: fam, Grant: grant,
			})
		},
		// A live refresh token, rotated once: both are the deleted
		// client's to clean up.
		func() error {
			return s.CreateRefreshToken(ctx, storage.HashSecret("rt-"+id), refresh(id, fam, grant, live))
		},
		func() error {
			_, err := s.RotateRefreshToken(ctx, storage.HashSecret("rt-"+id), storage.Rotation{
				ClientID: id, At: time.Now().Unix(), NextHash: storage.HashSecret("rt2-" + id), Next: refresh(id, fam, grant, live),
			})
			return err
		},
		func() error { return s.RevokeAccessToken(ctx, "jti-"+id, past) },
		func() error { return s.RevokeFamily(ctx, "other-"+fam, past) },
		func() error { return s.DeleteClient(ctx, id, past) },
		// An initial access token the operator made, expired.
		func() error {
			if i%10 != 0 {
				return nil
			}
			return s.CreateInitialAccessToken(ctx, &storage.InitialAccessToken{
				ID: "iat-" + id, Hash: storage.HashSecret("iat-" + id), CreatedAt: past - 60, ExpiresAt: past,
			})
		},
		// Tokens and codes of a client that stays, expired.
		func() error {
			return s.CreateRefreshToken(ctx, storage.HashSecret("keeper-rt-"+id), refresh("keeper", "kf-"+id, "", past))
		},
		func() error {
			return s.CreateAuthCode(ctx, storage.HashSecret("keeper-code-"+id), &storage.AuthCode{
				ClientID: "keeper", RedirectURI: "https://app.example/cb", Challenge: "c", Audience: "https://api.example",
				Subject: "someone", ExpiresAt: past, Family: "kf-" + id,
			})
		},
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}
