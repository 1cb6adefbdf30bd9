package badger

import (
	"testing"
	"time"

	"github.com/caddy-dcr/caddy-dcr/storage"
)

// Registrations with different initial access tokens do not conflict:
// each reads only its own token, through the hash index.
func TestInitialTokenRegistrationsDoNotConflict(t *testing.T) {
	ctx := t.Context()
	s := openMem(t)
	defer s.Close()
	now := time.Now().Unix()
	for _, id := range []string{"one", "two"} {
		must(t, s.CreateInitialAccessToken(ctx, &storage.InitialAccessToken{
			ID: id, Hash: storage.HashSecret("token-" + id), CreatedAt: now, ExpiresAt: now + 3600, MaxUses: 5,
		}))
	}
	txn := s.db.NewTransaction(true)
	defer txn.Discard()
	must(t, createClientWithInitialToken(txn, newClient("a"), storage.HashSecret("token-one"), now))
	// Another registration, with the other token, commits meanwhile.
	must(t, s.CreateClientWithInitialAccessToken(ctx, newClient("b"), storage.HashSecret("token-two"), now))
	if err := txn.Commit(); err != nil {
		t.Fatalf("the first registration: %v", err)
	}
	all, err := s.InitialAccessTokens(ctx)
	must(t, err)
	for _, tok := range all {
		if tok.Uses != 1 {
			t.Errorf("token %s used %d times, want 1", tok.ID, tok.Uses)
		}
	}

	// The index goes with its token.
	must(t, s.DeleteInitialAccessToken(ctx, "one"))
	if keys := indexKeys(t, s, prefixInitialTokenHash); len(keys) != 1 {
		t.Fatalf("index entries after a deletion: %v", keys)
	}
}

// Tokens stored before the index existed are indexed when the store
// opens.
func TestOpenIndexesInitialTokens(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	must(t, err)
	now := time.Now().Unix()
	must(t, s.CreateInitialAccessToken(ctx, &storage.InitialAccessToken{ID: "old", Hash: storage.HashSecret("tok"), CreatedAt: now}))
	must(t, s.db.DropPrefix([]byte(prefixInitialTokenHash)))
	must(t, s.Close())
	s, err = Open(dir, Options{})
	must(t, err)
	defer s.Close()
	must(t, s.CreateClientWithInitialAccessToken(ctx, newClient("a"), storage.HashSecret("tok"), now))
}
