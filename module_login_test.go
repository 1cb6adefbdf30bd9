package caddydcr

import (
	"strings"
	"testing"

	"github.com/caddy-dcr/caddy-dcr/internal/login"
)

func TestValidateLogins(t *testing.T) {
	google := func(mod func(*login.Config)) Handler {
		c := login.Config{Kind: "oidc", Name: "google", Issuer: "https://accounts.google.com", ClientID: "id", ClientSecret: "s",
			AllowDomain: []string{"example.com"}}
		mod(&c)
		return Handler{Logins: []login.Config{c}}
	}
	for _, tc := range []struct {
		name string
		h    Handler
		want string // "" = valid
	}{
		{"oidc with a rule", google(func(*login.Config) {}), ""},
		{"no rule", google(func(c *login.Config) { c.AllowDomain = nil }), "has no allow rule"},
		{"allow_any", google(func(c *login.Config) { c.AllowDomain, c.AllowAny = nil, true }), ""},
		{"github rule on oidc", google(func(c *login.Config) { c.AllowOrg = []string{"x"} }), "are for github logins"},
		{"relative issuer", google(func(c *login.Config) { c.Issuer = "accounts.google.com" }), "absolute"},
		{"bad name", google(func(c *login.Config) { c.Name = "Google/x" }), "login name"},
		{"no client id", google(func(c *login.Config) { c.ClientID = "" }), "client_id is required"},
		{"github without secret", Handler{Logins: []login.Config{{Kind: "github", Name: "gh", ClientID: "id", AllowUser: []string{"octocat"}}}},
			"client_secret is required"},
		{"github team", Handler{Logins: []login.Config{{Kind: "github", Name: "gh", ClientID: "id", ClientSecret: "s", AllowTeam: []string{"acme"}}}},
			"<org>/<team>"},
		{"two logins one name", Handler{Logins: []login.Config{google(func(*login.Config) {}).Logins[0], google(func(*login.Config) {}).Logins[0]}},
			"two logins"},
		{"negative session_ttl", Handler{SessionTTL: -1}, "session_ttl"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.h.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error about %s", err, tc.want)
			}
		})
	}
}
