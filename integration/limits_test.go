package integration

import (
	"net/http"
	"testing"
)

// TestRegistrationLimitFollowsCaddysClientIP: behind a trusted proxy, the
// registration limit counts per forwarded client IP (Caddy's
// trusted_proxies), answers 429 with Retry-After and an OAuth error body
// past the burst, and leaves exempt ranges alone; the registration policy
// refuses a redirect host it does not allow.
func TestRegistrationLimitFollowsCaddysClientIP(t *testing.T) {
	e := newEnv(t)
	e.start("limits.Caddyfile")
	register := func(forwardedFor string) (int, map[string]any) {
		t.Helper()
		h := http.Header{"Content-Type": {"application/json"}, "X-Forwarded-For": {forwardedFor}}
		status, m, _, err := send("POST", e.url("/oauth/register"), h, `{"redirect_uris":["https://app.example/cb"]}`)
		if err != nil {
			t.Fatal(err)
		}
		return status, m
	}
	for range 2 {
		if status, m := register("198.51.100.1"); status != http.StatusCreated {
			t.Fatalf("within the burst: %d %v", status, m)
		}
	}
	req, _ := http.NewRequest("POST", e.url("/oauth/register"), nil)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Forwarded-For", "198.51.100.1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "1800" ||
		resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("past the burst: %d %v", resp.StatusCode, resp.Header)
	}
	if status, m := register("198.51.100.1"); status != http.StatusTooManyRequests || m["error"] != "temporarily_unavailable" {
		t.Fatalf("past the burst: %d %v", status, m)
	}
	if status, m := register("198.51.100.2"); status != http.StatusCreated {
		t.Fatalf("another client IP behind the same proxy: %d %v", status, m)
	}
	for range 4 {
		if status, m := register("203.0.113.9"); status != http.StatusCreated {
			t.Fatalf("exempt range: %d %v", status, m)
		}
	}
	h := http.Header{"Content-Type": {"application/json"}, "X-Forwarded-For": {"198.51.100.3"}}
	status, m, _, err := send("POST", e.url("/oauth/register"), h, `{"redirect_uris":["https://evil.example/cb"]}`)
	if err != nil || status != http.StatusBadRequest || m["error"] != "invalid_redirect_uri" {
		t.Fatalf("a redirect host the policy does not allow: %d %v %v", status, m, err)
	}
}
