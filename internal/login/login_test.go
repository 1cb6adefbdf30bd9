package login

import (
	"bytes"
	"strings"
	"testing"
)

func TestAllowed(t *testing.T) {
	jane := func() *Identity {
		return &Identity{upstreamSubject: "s-1", email: "Jane@Example.com", emailVerified: true,
			raw: map[string]any{"groups": []any{"eng", "admins"}, "dept": "ops"}}
	}
	unverified := jane()
	unverified.emailVerified = false
	octo := &Identity{upstreamSubject: "583231", login: "octocat", orgs: []string{"Acme"}, teams: []string{"acme/platform"}}
	for _, tc := range []struct {
		name string
		c    Config
		id   *Identity
		in   bool
	}{
		{"email, any case", Config{AllowEmail: []string{"jane@example.com"}}, jane(), true},
		{"email unverified", Config{AllowEmail: []string{"jane@example.com"}}, unverified, false},
		{"domain", Config{AllowDomain: []string{"EXAMPLE.com"}}, jane(), true},
		{"domain unverified", Config{AllowDomain: []string{"example.com"}}, unverified, false},
		{"subdomain is another domain", Config{AllowDomain: []string{"ample.com"}}, jane(), false},
		{"subject", Config{AllowSubject: []string{"s-1"}}, jane(), true},
		{"subject is exact", Config{AllowSubject: []string{"S-1"}}, jane(), false},
		{"group in an array", Config{AllowGroup: []GroupRule{{"groups", "admins"}}}, jane(), true},
		{"group as a string", Config{AllowGroup: []GroupRule{{"dept", "ops"}}}, jane(), true},
		{"group missing", Config{AllowGroup: []GroupRule{{"groups", "sales"}}}, jane(), false},
		{"github user", Config{AllowUser: []string{"OctoCat"}}, octo, true},
		{"github org", Config{AllowOrg: []string{"acme"}}, octo, true},
		{"github team", Config{AllowTeam: []string{"Acme/Platform"}}, octo, true},
		{"github other team", Config{AllowTeam: []string{"acme/sales"}}, octo, false},
		{"allow_any", Config{AllowAny: true}, unverified, true},
		{"no rule matches", Config{AllowEmail: []string{"x@example.com"}, AllowUser: []string{"hubot"}}, jane(), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.c.Allowed(tc.id); got != tc.in {
				t.Fatalf("Allowed = %v", got)
			}
		})
	}
}

func TestSessionSealing(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	s := &Session{ID: "sid", Login: "corp", Subject: "corp:1", Claims: map[string]string{"email": "a@example.com"}, AuthTime: 5, Expires: 10}
	v, err := Seal(key, s)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(v, "a@example.com") {
		t.Fatal("the sealed cookie shows the claims")
	}
	got, err := Open(key, v)
	if err != nil || got.Subject != "corp:1" || got.Claims["email"] != "a@example.com" || got.AuthTime != 5 || got.Expires != 10 {
		t.Fatalf("open: %+v %v", got, err)
	}
	other := bytes.Repeat([]byte{8}, 32)
	flipped := []byte(v)
	flipped[len(flipped)/2] ^= 1
	for name, bad := range map[string]struct {
		key []byte
		v   string
	}{
		"tampered":  {key, string(flipped)},
		"other key": {other, v},
		"truncated": {key, v[:len(v)-4]},
		"empty":     {key, ""},
		"not b64":   {key, "!!!"},
		"too long":  {key, strings.Repeat("A", MaxCookieLen+1)},
	} {
		if _, err := Open(bad.key, bad.v); err == nil {
			t.Errorf("%s: opened", name)
		}
	}
	if _, err := Seal(key, &Session{ID: "x", Subject: "y", Claims: map[string]string{"big": strings.Repeat("x", MaxCookieLen)}}); err == nil {
		t.Error("a session larger than a cookie was sealed")
	}
}

// The person's subject: the upstream's sub, namespaced, by default; a
// verified email as it is with subject_claim email, never an unverified
// one (at a provider that lets people edit their profile, an unverified
// email is whatever they typed: someone else's); any other claim
// namespaced, so no login's people can take another login's subjects.
func TestSubjectClaim(t *testing.T) {
	claims := func(email string, verified any, username string) map[string]any {
		return map[string]any{"email": email, "email_verified": verified, "preferred_username": username}
	}
	for _, tc := range []struct {
		claim  string
		claims map[string]any
		want   string // "" for a refusal
	}{
		{"", claims("alice@example.com", true, "alice"), "corp:s-1"},
		{"sub", claims("alice@example.com", true, "alice"), "corp:s-1"},
		{"email", claims("alice@example.com", true, "alice"), "alice@example.com"},
		{"email", claims("alice@example.com", "true", "alice"), "alice@example.com"},
		{"email", claims("alice@example.com", false, "bob"), ""},
		{"email", claims("alice@example.com", nil, "bob"), ""},
		{"email", claims("not-an-address", true, "bob"), ""},
		{"preferred_username", claims("", nil, "github:583231"), "corp:github:583231"},
		{"preferred_username", claims("", nil, ""), ""},
	} {
		p := &oidcProvider{cfg: Config{Name: "corp", SubjectClaim: tc.claim}}
		id, err := p.identity("s-1", tc.claims)
		switch {
		case tc.want == "" && err == nil:
			t.Errorf("subject_claim %q with %v: named %q, want a refusal", tc.claim, tc.claims, id.Subject)
		case tc.want != "" && (err != nil || id.Subject != tc.want):
			t.Errorf("subject_claim %q with %v: %v %v, want %q", tc.claim, tc.claims, id, err, tc.want)
		}
	}
}
