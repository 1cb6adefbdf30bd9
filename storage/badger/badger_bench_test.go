package badger

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/caddy-dcr/caddy-dcr/storage"
)

// BenchmarkCreateClient measures registrations written to an on-disk store
// from parallel goroutines, as concurrent requests do.
func BenchmarkCreateClient(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	var n atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			c := newClient(fmt.Sprintf("bench-%09d", i))
			c.RegistrationTokenHash = storage.HashSecret(c.ID)
			if err := s.CreateClient(ctx, c); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkClientByRegistrationToken measures the lookup behind every RFC
// 7592 request, in a store of 10,000 clients.
func BenchmarkClientByRegistrationToken(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	const clients = 10000
	for i := range clients {
		c := newClient(fmt.Sprintf("bench-%05d", i))
		c.RegistrationTokenHash = storage.HashSecret(c.ID)
		if err := s.CreateClient(ctx, c); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := s.ClientByRegistrationToken(ctx, storage.HashSecret(fmt.Sprintf("bench-%05d", i%clients))); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
