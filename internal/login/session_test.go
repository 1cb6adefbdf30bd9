package login

import (
	"bytes"
	"testing"
)

// FuzzOpenSession: a session cookie is whatever a browser sends. Opening
// one never panics, and only a value this key sealed opens: the only
// session ever sealed here is alice's (the fuzzing workers seal it again,
// with other nonces, so the seed is one of several valid values).
func FuzzOpenSession(f *testing.F) {
	key := bytes.Repeat([]byte{7}, 32)
	sealed, err := Seal(key, &Session{ID: "sid", Login: "corp", Subject: "corp:alice", Expires: 1 << 40})
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{sealed, sealed[:len(sealed)-1], sealed + "A", "", "AAAA", "!!!", sealed[:10]} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, v string) {
		s, err := Open(key, v)
		if err == nil && (s.ID != "sid" || s.Subject != "corp:alice" || s.Expires != 1<<40) {
			t.Fatalf("a value this key did not seal opened: %q -> %+v", v, s)
		}
	})
}

// A sealed session opens with its key only, and any change to it is
// refused.
func TestSealOpen(t *testing.T) {
	key, other := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	in := &Session{ID: "sid", Login: "corp", Subject: "corp:alice", Claims: map[string]string{"email": "a@example.com"}, AuthTime: 5, Expires: 10}
	v, err := Seal(key, in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := Open(key, v)
	if err != nil || out.Subject != in.Subject || out.Claims["email"] != "a@example.com" || out.AuthTime != 5 || out.Expires != 10 {
		t.Fatalf("opened %+v, %v", out, err)
	}
	if _, err := Open(other, v); err == nil {
		t.Fatal("opened with another key")
	}
	for i := range v {
		tampered := []byte(v)
		tampered[i] ^= 1
		if _, err := Open(key, string(tampered)); err == nil && string(tampered) != v {
			t.Fatalf("a value changed at %d opened", i)
		}
	}
}
