package login

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"golang.org/x/oauth2"
)

// GitHub's origins, unless a login names others (GitHub Enterprise Server).
const (
	gitHubBaseURL = "https://github.com"
	gitHubAPIURL  = "https://api.github.com"
)

// maxAPIBody bounds what is read of one GitHub API answer.
const maxAPIBody = 1 << 20

// gitHubProvider signs people in through GitHub, which is OAuth 2.0 without
// OpenID Connect: the person comes from its REST API (GET /user, and
// /user/emails, /user/orgs, /user/teams when the rules need them), with the
// user access token the code exchange returns, which is used for nothing
// else and then dropped.
type gitHubProvider struct {
	cfg    Config
	client *http.Client
	api    string
	oauth  oauth2.Endpoint
}

func newGitHub(c Config, client *http.Client) *gitHubProvider {
	base := strings.TrimSuffix(c.BaseURL, "/")
	if base == "" {
		base = gitHubBaseURL
	}
	api := strings.TrimSuffix(c.APIURL, "/")
	if api == "" {
		api = gitHubAPIURL
	}
	return &gitHubProvider{cfg: c, client: client, api: api, oauth: oauth2.Endpoint{
		AuthURL: base + "/login/oauth/authorize", TokenURL: base + "/login/oauth/access_token",
		AuthStyle: oauth2.AuthStyleInParams,
	}}
}

func (p *gitHubProvider) oauth2Config(redirectURI string) *oauth2.Config {
	scopes := p.cfg.Scopes
	if len(scopes) == 0 {
		scopes = []string{"read:user", "user:email"}
		if len(p.cfg.AllowOrg)+len(p.cfg.AllowTeam) > 0 {
			scopes = append(scopes, "read:org")
		}
	}
	return &oauth2.Config{ClientID: p.cfg.ClientID, ClientSecret: p.cfg.ClientSecret, Endpoint: p.oauth,
		RedirectURL: redirectURI, Scopes: scopes}
}

// AuthCodeURL implements Provider. GitHub has no nonce; state and PKCE
// protect the exchange.
func (p *gitHubProvider) AuthCodeURL(_ context.Context, redirectURI, state, _, verifier string) (string, error) {
	return p.oauth2Config(redirectURI).AuthCodeURL(state, oauth2.S256ChallengeOption(verifier)), nil
}

// Exchange implements Provider.
func (p *gitHubProvider) Exchange(ctx context.Context, redirectURI, code, verifier, _ string) (*Identity, error) {
	ctx = context.WithValue(ctx, oauth2.HTTPClient, p.client)
	tok, err := p.oauth2Config(redirectURI).Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		return nil, fmt.Errorf("exchanging the code: %w", err)
	}
	var user struct {
		ID        int64  `json:"id"`
		Login     string `json:"login"`
		Name      string `json:"name"`
		AvatarURL string `json:"avatar_url"`
	}
	if err := p.get(ctx, tok.AccessToken, "/user", &user); err != nil {
		return nil, err
	}
	if user.ID == 0 || user.Login == "" {
		return nil, fmt.Errorf("GitHub's /user has no id or login")
	}
	id := &Identity{upstreamSubject: strconv.FormatInt(user.ID, 10), login: user.Login, Claims: map[string]string{"login": user.Login}}
	// The numeric id, not the login, which its owner can change and
	// someone else can then take.
	id.Subject = p.cfg.Name + ":" + id.upstreamSubject
	if user.Name != "" {
		id.Claims["name"] = user.Name
	}
	id.Claims["preferred_username"] = user.Login
	if user.AvatarURL != "" {
		id.Claims["picture"] = user.AvatarURL
	}
	var emails []struct {
		Email    string `json:"email"`
		Primary  bool   `json:"primary"`
		Verified bool   `json:"verified"`
	}
	if err := p.get(ctx, tok.AccessToken, "/user/emails?per_page=100", &emails); err == nil {
		for _, e := range emails {
			if e.Primary && e.Verified {
				id.email, id.emailVerified = e.Email, true
				id.Claims["email"], id.Claims["email_verified"] = e.Email, "true"
			}
		}
	}
	if len(p.cfg.AllowOrg) > 0 {
		orgs, err := getPages[struct {
			Login string `json:"login"`
		}](ctx, p, tok.AccessToken, "/user/orgs")
		if err != nil {
			return nil, err
		}
		for _, o := range orgs {
			id.orgs = append(id.orgs, o.Login)
		}
	}
	if len(p.cfg.AllowTeam) > 0 {
		teams, err := getPages[struct {
			Slug         string `json:"slug"`
			Organization struct {
				Login string `json:"login"`
			} `json:"organization"`
		}](ctx, p, tok.AccessToken, "/user/teams")
		if err != nil {
			return nil, err
		}
		for _, t := range teams {
			id.teams = append(id.teams, t.Organization.Login+"/"+t.Slug)
		}
	}
	return id, nil
}

// GitHub lists in pages of at most 100; a person in more than
// maxListPages*100 organizations or teams is refused (the rules could not
// be decided), not judged on part of the list.
const (
	listPageSize = 100
	maxListPages = 10
)

// getPages reads every page of one of GitHub's lists: until a page comes
// back short.
func getPages[T any](ctx context.Context, p *gitHubProvider, token, path string) ([]T, error) {
	var all []T
	for page := 1; ; page++ {
		var items []T
		if err := p.get(ctx, token, fmt.Sprintf("%s?per_page=%d&page=%d", path, listPageSize, page), &items); err != nil {
			return nil, err
		}
		if page > maxListPages && len(items) > 0 {
			return nil, fmt.Errorf("GitHub API %s: more than %d entries", path, maxListPages*listPageSize)
		}
		all = append(all, items...)
		if len(items) < listPageSize {
			return all, nil
		}
	}
}

// get calls GitHub's REST API with the person's token and decodes a
// bounded JSON answer into v.
func (p *gitHubProvider) get(ctx context.Context, token, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.api+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/vnd.github+json")
	req.Header.Set("X-GitHub-Api-Version", "2022-11-28")
	resp, err := p.client.Do(req)
	if err != nil {
		return fmt.Errorf("GitHub API %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GitHub API %s: status %d", path, resp.StatusCode)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxAPIBody)).Decode(v); err != nil {
		return fmt.Errorf("GitHub API %s: %w", path, err)
	}
	return nil
}
