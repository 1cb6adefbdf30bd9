package storage_test

import (
	"testing"
	"time"

	"github.com/caddy-dcr/caddy-dcr/storage"
	"github.com/caddy-dcr/caddy-dcr/storage/storetest"
)

// A disabled client's tokens are refused from memory while it is
// disabled, and accepted again once it is enabled; the view starts with
// the clients the store holds disabled, and a reaped client's tokens are
// refused at once.
func TestCachedRefusesDisabledClients(t *testing.T) {
	ctx := t.Context()
	db := open(t)
	for _, id := range []string{"app", "was-disabled", "unused"} {
		c := storetest.NewClient(id)
		c.IssuedAt = 1000
		if id == "app" || id == "was-disabled" {
			c.LastUsedAt = time.Now().Unix()
		}
		if err := db.CreateClient(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.SetClientSettings(ctx, "was-disabled", storage.ClientSettings{}, storage.ClientSettings{Disabled: true}); err != nil {
		t.Fatal(err)
	}
	c, err := storage.NewCached(ctx, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	refused := func(id string) bool {
		t.Helper()
		ok, err := c.Revoked(ctx, "jti", id, "", "")
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if !refused("was-disabled") || refused("app") {
		t.Fatal("the view did not start with the disabled clients")
	}
	if _, err := c.SetClientSettings(ctx, "app", storage.ClientSettings{}, storage.ClientSettings{Disabled: true}); err != nil {
		t.Fatal(err)
	}
	if !refused("app") {
		t.Fatal("a client disabled through the view is not refused")
	}
	if _, err := c.SetClientSettings(ctx, "app", storage.ClientSettings{Disabled: true}, storage.ClientSettings{}); err != nil {
		t.Fatal(err)
	}
	if refused("app") {
		t.Fatal("an enabled client is still refused")
	}
	now := time.Now().Unix()
	reaped, err := c.ReapClients(ctx, storage.ReapPolicy{UnusedBefore: 2000, Now: now, Until: now + 60, Limit: 10})
	if ids := storage.IDs(reaped); err != nil || len(ids) != 1 || ids[0] != "unused" {
		t.Fatalf("reaped %v, %v", reaped, err)
	}
	if !refused("unused") {
		t.Fatal("a reaped client's tokens are not refused")
	}
}
