package caddydcr

import (
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

func TestValidateLimits(t *testing.T) {
	neg := caddy.Duration(-time.Hour)
	for _, tc := range []struct {
		name string
		l    Limits
		want string // "" = valid
	}{
		{"defaults", Limits{}, ""},
		{"everything", Limits{
			RegistrationLimit:       &RegistrationLimit{Burst: 5, Window: caddy.Duration(time.Minute)},
			RegistrationLimitExempt: []string{"203.0.113.0/24", "2001:db8::1", "10.1.2.3/8"},
			MaxClients:              100, AllowedGrantTypes: []string{"authorization_code"},
			AllowedRedirectSchemes: []string{"https"}, AllowedRedirectHosts: []string{"*.example.com", "[::1]", "127.0.0.1", "app.example"},
		}, ""},
		{"limit off", Limits{RegistrationLimit: &RegistrationLimit{Off: true}}, ""},
		{"limit without window", Limits{RegistrationLimit: &RegistrationLimit{Burst: 5}}, "registration_limit"},
		{"limit too fine", Limits{RegistrationLimit: &RegistrationLimit{Burst: 5, Window: 4}}, "too short"},
		{"exempt not an address", Limits{RegistrationLimitExempt: []string{"example.com"}}, "registration_limit_exempt"},
		{"negative max_clients", Limits{MaxClients: -1}, "max_clients"},
		{"negative idle ttl", Limits{IdleClientTTL: &neg}, "idle_client_ttl"},
		{"unknown grant type", Limits{AllowedGrantTypes: []string{"password"}}, "allowed_grant_types"},
		{"scheme with colon", Limits{AllowedRedirectSchemes: []string{"https://"}}, "allowed_redirect_schemes"},
		{"upper-case scheme", Limits{AllowedRedirectSchemes: []string{"HTTPS"}}, "allowed_redirect_schemes"},
		{"host with a path", Limits{AllowedRedirectHosts: []string{"example.com/cb"}}, "allowed_redirect_hosts"},
		{"host with a port", Limits{AllowedRedirectHosts: []string{"example.com:443"}}, "allowed_redirect_hosts"},
		{"wildcard inside", Limits{AllowedRedirectHosts: []string{"a.*.example.com"}}, "allowed_redirect_hosts"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.l.validateLimits()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

// The defaults are filled in one place and reach the endpoints.
func TestLimitsDefaults(t *testing.T) {
	var l Limits
	l.provisionLimits()
	if *l.UnusedClientTTL != caddy.Duration(24*time.Hour) || *l.IdleClientTTL != caddy.Duration(90*24*time.Hour) {
		t.Errorf("reaping defaults: %v %v", *l.UnusedClientTTL, *l.IdleClientTTL)
	}
	hl := l.handlerLimits()
	if hl.RegistrationBurst != 60 || hl.RegistrationWindow != 10*time.Minute || hl.MaxClients != 0 || hl.NoPublicClients {
		t.Errorf("endpoint limits: %+v", hl)
	}
	off := Limits{RegistrationLimit: &RegistrationLimit{Off: true}}
	off.provisionLimits()
	if hl := off.handlerLimits(); hl.RegistrationBurst != 0 {
		t.Errorf("registration_limit off still limits: %+v", hl)
	}
}
