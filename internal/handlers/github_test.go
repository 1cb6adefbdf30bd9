package handlers

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/caddy-dcr/caddy-dcr/internal/login"
)

// fakeGitHub answers the documented shapes of GitHub's OAuth web flow
// (/login/oauth/authorize, /login/oauth/access_token with PKCE) and of the
// REST endpoints a login reads (/user, /user/emails, /user/orgs,
// /user/teams). github.com itself is not reachable from the tests.
type fakeGitHub struct {
	*httptest.Server
	clientID, secret string

	mu    sync.Mutex
	codes map[string]string // code -> code_challenge
	user  map[string]any
	orgs  []string
	teams [][2]string // org, team slug
}

func newFakeGitHub(t *testing.T) *fakeGitHub {
	g := &fakeGitHub{clientID: "Iv1.test", secret: "gh-secret", codes: map[string]string{},
		user: map[string]any{"id": 583231, "login": "octocat", "name": "The Octocat", "avatar_url": "https://avatars.example/u/583231"}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login/oauth/authorize", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Get("client_id") != g.clientID || q.Get("code_challenge_method") != "S256" {
			http.Error(w, "bad request", 400)
			return
		}
		code := newSecret()
		g.mu.Lock()
		g.codes[code] = q.Get("code_challenge")
		g.mu.Unlock()
		cb, _ := url.Parse(q.Get("redirect_uri"))
		cq := cb.Query()
		cq.Set("code", code)
		cq.Set("state", q.Get("state"))
		cb.RawQuery = cq.Encode()
		http.Redirect(w, r, cb.String(), http.StatusFound)
	})
	mux.HandleFunc("POST /login/oauth/access_token", func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		g.mu.Lock()
		challenge, ok := g.codes[r.PostForm.Get("code")]
		delete(g.codes, r.PostForm.Get("code"))
		g.mu.Unlock()
		sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
		w.Header().Set("Content-Type", "application/json")
		if !ok || r.PostForm.Get("client_id") != g.clientID || r.PostForm.Get("client_secret") != g.secret ||
			base64.RawURLEncoding.EncodeToString(sum[:]) != challenge {
			// GitHub answers errors with 200 and an error member.
			_ = json.NewEncoder(w).Encode(map[string]string{"error": "bad_verification_code"})
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]string{"access_token": "gho_usertoken", "token_type": "bearer", "scope": "read:user,user:email"})
	})
	api := func(path string, body func(r *http.Request) any) {
		mux.HandleFunc("GET "+path, func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer gho_usertoken" {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			g.mu.Lock()
			defer g.mu.Unlock()
			_ = json.NewEncoder(w).Encode(body(r))
		})
	}
	api("/user", func(*http.Request) any { return g.user })
	api("/user/emails", func(*http.Request) any {
		return []map[string]any{{"email": "octocat@users.noreply.github.com", "primary": false, "verified": true},
			{"email": "octocat@github.com", "primary": true, "verified": true, "visibility": "public"}}
	})
	api("/user/orgs", func(r *http.Request) any {
		out := []map[string]any{}
		for _, o := range page(r, g.orgs) {
			out = append(out, map[string]any{"login": o, "id": 1})
		}
		return out
	})
	api("/user/teams", func(r *http.Request) any {
		out := []map[string]any{}
		for _, t := range page(r, g.teams) {
			out = append(out, map[string]any{"slug": t[1], "name": t[1], "organization": map[string]any{"login": t[0]}})
		}
		return out
	})
	g.Server = httptest.NewServer(mux)
	t.Cleanup(g.Close)
	return g
}

// page is the part of a list that GitHub's per_page and page parameters
// ask for (30 per page, the first, unless they say otherwise).
func page[T any](r *http.Request, all []T) []T {
	per, _ := strconv.Atoi(r.URL.Query().Get("per_page"))
	if per <= 0 {
		per = 30
	}
	n, _ := strconv.Atoi(r.URL.Query().Get("page"))
	first := (max(n, 1) - 1) * per
	if first >= len(all) {
		return nil
	}
	return all[first:min(first+per, len(all))]
}

func githubServer(t *testing.T, g *fakeGitHub, lc login.Config) (*testServer, *httptest.Server) {
	t.Helper()
	lc.Kind, lc.Name, lc.ClientID, lc.ClientSecret, lc.BaseURL, lc.APIURL = login.KindGitHub, "gh", g.clientID, g.secret, g.URL, g.URL
	l, err := login.New(lc)
	if err != nil {
		t.Fatal(err)
	}
	return oidcServer(t, Config{Logins: []*login.Login{l}, Claims: map[string]string{"email": "{http.auth.user.email}", "login": "{http.auth.user.login}"}})
}

// TestLoginThroughGitHub: the person signs in through GitHub and is named
// by the login and GitHub's numeric id; user, org and team rules decide who
// gets in.
func TestLoginThroughGitHub(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rules login.Config
		orgs  []string
		teams [][2]string
		in    bool
		// refused with this status and page, when not 403 and the
		// refusal naming the person
		status int
		page   string
	}{
		{"allowed user", login.Config{AllowUser: []string{"OctoCat"}}, nil, nil, true, 0, ""},
		{"other user", login.Config{AllowUser: []string{"hubot"}}, nil, nil, false, 0, ""},
		{"member of the org", login.Config{AllowOrg: []string{"acme"}}, []string{"acme"}, nil, true, 0, ""},
		{"not a member", login.Config{AllowOrg: []string{"acme"}}, []string{"other"}, nil, false, 0, ""},
		{"on the team", login.Config{AllowTeam: []string{"acme/platform"}}, nil, [][2]string{{"acme", "platform"}}, true, 0, ""},
		{"member of an org on the third page", login.Config{AllowOrg: []string{"acme"}}, append(manyOrgs(250), "acme"), nil, true, 0, ""},
		{"on a team on the second page", login.Config{AllowTeam: []string{"acme/platform"}}, nil,
			append(manyTeams(100), [2]string{"acme", "platform"}), true, 0, ""},
		{"in exactly as many organizations as are read", login.Config{AllowOrg: []string{"acme"}}, append(manyOrgs(999), "acme"), nil, true, 0, ""},
		{"in more organizations than are read", login.Config{AllowOrg: []string{"acme"}}, append(manyOrgs(1000), "acme"), nil, false,
			http.StatusBadGateway, "Sign-in failed"},
		{"on another team of the org", login.Config{AllowTeam: []string{"acme/platform"}}, nil, [][2]string{{"acme", "sales"}, {"other", "platform"}}, false, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newFakeGitHub(t)
			g.orgs, g.teams = tc.orgs, tc.teams
			ts, hs := githubServer(t, g, tc.rules)
			id, params := ts.publicClient("")
			params = with(params, "scope", "openid email")
			c := browser(t, toClient)
			resp, page := get(t, c, hs.URL+"/oauth/authorize?"+params.Encode())
			if !tc.in {
				if tc.status == 0 {
					tc.status, tc.page = http.StatusForbidden, "octocat@github.com"
				}
				if resp.StatusCode != tc.status || !strings.Contains(page, tc.page) {
					t.Fatalf("refused person: %d\n%s", resp.StatusCode, page)
				}
				return
			}
			if resp.StatusCode != 200 || !strings.Contains(page, "gh:583231") {
				t.Fatalf("after GitHub: %d\n%s", resp.StatusCode, page)
			}
			loc := consent(t, c, hs, page)
			w, tok := ts.exchange(id, loc.Query().Get("code"), testVerifier, "http://127.0.0.1:4000/cb")
			assertOAuthJSON(t, w, tok, 200, "")
			claims := decodeJWTPayload(t, tok["id_token"].(string))
			if claims["sub"] != "gh:583231" || claims["email"] != "octocat@github.com" {
				t.Fatalf("ID token: %v", claims)
			}
			access := decodeJWTPayload(t, tok["access_token"].(string))
			if access["login"] != "octocat" || strings.Contains(tok["access_token"].(string), "gho_") {
				t.Fatalf("access token: %v", access)
			}
		})
	}
}

func manyOrgs(n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprint("org-", i))
	}
	return out
}

func manyTeams(n int) [][2]string {
	var out [][2]string
	for i := range n {
		out = append(out, [2]string{"acme", fmt.Sprint("team-", i)})
	}
	return out
}

// TestChoicePage: with two logins, the person chooses; each choice leads
// to its upstream with the authorization request kept.
func TestChoicePage(t *testing.T) {
	m := startMockOIDC(t)
	g := newFakeGitHub(t)
	corp, err := login.New(login.Config{Kind: login.KindOIDC, Name: "corp", DisplayName: "Corp SSO", Issuer: m.Issuer(),
		ClientID: m.ClientID, ClientSecret: m.ClientSecret, AllowDomain: []string{"example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	gh, err := login.New(login.Config{Kind: login.KindGitHub, Name: "gh", DisplayName: "GitHub", ClientID: g.clientID,
		ClientSecret: g.secret, BaseURL: g.URL, APIURL: g.URL, AllowUser: []string{"octocat"}})
	if err != nil {
		t.Fatal(err)
	}
	ts, hs := oidcServer(t, Config{Logins: []*login.Login{corp, gh}})
	_, params := ts.publicClient("")
	c := browser(t, func(*url.URL) bool { return true })
	resp, page := get(t, c, hs.URL+"/oauth/authorize?"+params.Encode())
	if resp.StatusCode != 200 || !strings.Contains(page, "Sign in with Corp SSO") || !strings.Contains(page, "Sign in with GitHub") ||
		resp.Header.Get("X-Frame-Options") != "DENY" {
		t.Fatalf("choice page: %d\n%s", resp.StatusCode, page)
	}
	links := regexpLinks(page)
	if len(links) != 2 {
		t.Fatalf("links: %v", links)
	}
	for i, want := range []string{m.AuthorizationEndpoint(), g.URL + "/login/oauth/authorize"} {
		resp, _ := get(t, c, hs.URL+links[i])
		if loc := mustLocation(t, resp); !strings.HasPrefix(loc.String(), want) {
			t.Fatalf("choice %d goes to %v", i, loc)
		}
	}
	// The whole flow through the second choice.
	c = browser(t, toClient)
	resp, page = get(t, c, hs.URL+links[1])
	if resp.StatusCode != 200 || !strings.Contains(page, `value="approve"`) {
		t.Fatalf("after GitHub: %d", resp.StatusCode)
	}
}

func regexpLinks(page string) []string {
	var out []string
	for _, part := range strings.Split(page, `class="choice" href="`)[1:] {
		out = append(out, htmlUnescape(part[:strings.IndexByte(part, '"')]))
	}
	return out
}
