package storage

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

func revocationCount(s *Badger) int {
	s.revoked.mu.RLock()
	defer s.revoked.mu.RUnlock()
	n := 0
	for _, m := range s.revoked.by {
		n += len(m)
	}
	return n
}

// A deleted client's revocation lasts as long as the tokens it covers, not
// forever: a register-delete loop must not grow what every start loads.
func TestDeletedClientRevocationIsForgottenAfterItsTokens(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "db")
	s, err := OpenBadger(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for i := range 200 {
		id := fmt.Sprintf("c%03d", i)
		if err := s.CreateClient(ctx, newClient(id)); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteClient(ctx, id, now.Add(time.Hour).Unix()); err != nil {
			t.Fatal(err)
		}
	}
	if !s.Revoked("", "c007", "", "") || revocationCount(s) != 200 {
		t.Fatalf("revocations after deletes: %d", revocationCount(s))
	}
	s.revoked.sweep(now.Add(2 * time.Hour).Unix())
	if s.Revoked("", "c007", "", "") || revocationCount(s) != 0 {
		t.Fatalf("revocations after their tokens expired: %d", revocationCount(s))
	}
	// Records past their expiry are not loaded again at the next start.
	if err := s.CreateClient(ctx, newClient("gone")); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteClient(ctx, "gone", now.Add(-time.Minute).Unix()); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = OpenBadger(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !s.Revoked("", "c007", "", "") || s.Revoked("", "gone", "", "") || revocationCount(s) != 200 {
		t.Fatalf("after reopening: %d revocations", revocationCount(s))
	}
}

// Revoking a grant deletes every refresh token issued under it, keeps the
// person's other grants, and makes its codes and tokens unusable, in one
// step.
func TestRevokeGrant(t *testing.T) {
	ctx := context.Background()
	s := openMem(t)
	exp := time.Now().Add(time.Hour).Unix()
	for _, g := range []struct{ client, id string }{{"app", "g1"}, {"other", "g2"}} {
		if _, err := s.UpdateGrant(ctx, "alice", g.client, func(gr *Grant) error { gr.ID = g.id; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 100 {
		client, grant := "app", "g1"
		if i%10 == 0 {
			client, grant = "other", "g2"
		}
		err := s.CreateRefreshToken(ctx, HashSecret(fmt.Sprint("rt", i)), &RefreshToken{
			ClientID: client, Subject: "alice", ExpiresAt: exp, Family: fmt.Sprint("f", i), Grant: grant,
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateAuthCode(ctx, HashSecret("code"), &AuthCode{ClientID: "app", Subject: "alice", Grant: "g1", ExpiresAt: exp}); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeGrant(ctx, "alice", "app", exp); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeGrant(ctx, "alice", "app", exp); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second revocation: %v", err)
	}
	for i := range 100 {
		_, err := s.RefreshToken(ctx, HashSecret(fmt.Sprint("rt", i)))
		if kept := i%10 == 0; kept != (err == nil) {
			t.Fatalf("refresh token %d: %v", i, err)
		}
	}
	if _, err := s.ConsumeAuthCode(ctx, HashSecret("code"), 1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("code of a revoked grant: %v", err)
	}
	if !s.Revoked("jti", "app", "", "g1") || s.Revoked("jti", "other", "", "g2") {
		t.Fatal("revocation did not reach exactly the revoked grant")
	}
	if grants, err := s.Grants(ctx, "alice"); err != nil || len(grants) != 1 || grants[0].ClientID != "other" {
		t.Fatalf("grants left: %v %v", grants, err)
	}
	keys := 0
	_ = s.view(ctx, func(txn *badger.Txn) error {
		k, err := keysUnder(txn, prefixGrantTokens+"g1/")
		keys = len(k)
		return err
	})
	if keys != 0 {
		t.Fatalf("%d grant index entries left", keys)
	}
}
