package storetest

import (
	"context"
	"fmt"
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
	for i := range n {
		id := fmt.Sprintf("churn-%06d-%d", i, time.Now().UnixNano())
		fam, grant := "fam-"+id, "grant-"+id
		c := NewClient(id)
		must(t, s.CreateClient(ctx, c))
		_, err := s.RecordGrant(ctx, &storage.Grant{ID: grant, Subject: "alice", ClientID: id, Scope: "read", CreatedAt: past, UpdatedAt: past})
		must(t, err)
		must(t, s.CreateAuthCode(ctx, storage.HashSecret("code-"+id), &storage.AuthCode{
			ClientID: id, RedirectURI: "https://app.example/cb", Challenge: "c", Audience: "https://api.example",
			Subject: "alice", ExpiresAt: past, Family: fam, Grant: grant,
		}))
		// A live refresh token, rotated once: both are the deleted
		// client's to clean up.
		live := time.Now().Add(time.Hour).Unix()
		must(t, s.CreateRefreshToken(ctx, storage.HashSecret("rt-"+id), refresh(id, fam, grant, live)))
		_, err = s.RotateRefreshToken(ctx, storage.HashSecret("rt-"+id), storage.Rotation{
			ClientID: id, At: time.Now().Unix(), NextHash: storage.HashSecret("rt2-" + id), Next: refresh(id, fam, grant, live),
		})
		must(t, err)
		must(t, s.RevokeAccessToken(ctx, "jti-"+id, past))
		must(t, s.RevokeFamily(ctx, "other-"+fam, past))
		must(t, s.DeleteClient(ctx, id, past))

		// An initial access token the operator made, expired.
		if i%10 == 0 {
			must(t, s.CreateInitialAccessToken(ctx, &storage.InitialAccessToken{
				ID: "iat-" + id, Hash: storage.HashSecret("iat-" + id), CreatedAt: past - 60, ExpiresAt: past,
			}))
		}

		// Tokens and codes of a client that stays, expired.
		must(t, s.CreateRefreshToken(ctx, storage.HashSecret("keeper-rt-"+id), refresh("keeper", "kf-"+id, "", past)))
		must(t, s.CreateAuthCode(ctx, storage.HashSecret("keeper-code-"+id), &storage.AuthCode{
			ClientID: "keeper", RedirectURI: "https://app.example/cb", Challenge: "c", Audience: "https://api.example",
			Subject: "someone", ExpiresAt: past, Family: "kf-" + id,
		}))
	}
}
