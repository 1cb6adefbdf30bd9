// Package login signs people in through an upstream identity provider: any
// OpenID Connect provider (go-oidc validates its ID tokens) or GitHub
// (OAuth 2.0 and its REST API). It holds the relying-party side, the allow
// rules and the sealed session cookie; internal/handlers wires them into
// the authorization endpoint.
package login

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Kinds of login.
const (
	KindOIDC   = "oidc"
	KindGitHub = "github"
)

// GroupRule allows people whose claim Claim (a string or an array of
// strings) holds Value.
type GroupRule struct {
	Claim string `json:"claim"`
	Value string `json:"value"`
}

// Config is one login block.
type Config struct {
	// Kind is oidc or github.
	Kind string `json:"kind"`
	// Name names the login in its callback path and in the subjects of
	// the people it signs in (<name>:<upstream subject>).
	Name string `json:"name"`
	// DisplayName is shown on the choice page. Default: the name.
	DisplayName string `json:"display_name,omitempty"`
	// Issuer is the OpenID Connect provider's issuer URL (oidc only).
	Issuer string `json:"issuer,omitempty"`
	// ClientID and ClientSecret are this server's credentials at the
	// upstream. Placeholders known at load time ({env.*}) are replaced.
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret,omitempty"`
	// Scopes asked of the upstream. Default: openid email profile
	// (oidc); read:user user:email, and read:org when an org or team rule
	// needs it (github).
	Scopes []string `json:"scopes,omitempty"`
	// SubjectClaim names the upstream claim that identifies the person.
	// Default: sub, namespaced as <name>:<sub>. "email" takes a verified
	// email as it is (a person without one cannot sign in); any other
	// claim is namespaced as <name>:<value>, since people may be able to
	// edit it or another login may use the same values.
	SubjectClaim string `json:"subject_claim,omitempty"`

	// AllowEmail, AllowDomain, AllowSubject and AllowGroup are the oidc
	// rules; AllowUser, AllowOrg and AllowTeam (<org>/<team>) GitHub's.
	// A person is let in when any rule matches; email rules look only at
	// a verified email. AllowAny lets in anyone the upstream signs in.
	AllowEmail   []string    `json:"allow_email,omitempty"`
	AllowDomain  []string    `json:"allow_domain,omitempty"`
	AllowSubject []string    `json:"allow_subject,omitempty"`
	AllowGroup   []GroupRule `json:"allow_group,omitempty"`
	AllowUser    []string    `json:"allow_user,omitempty"`
	AllowOrg     []string    `json:"allow_org,omitempty"`
	AllowTeam    []string    `json:"allow_team,omitempty"`
	AllowAny     bool        `json:"allow_any,omitempty"`

	// BaseURL and APIURL are GitHub's web and API origins, for GitHub
	// Enterprise Server (and tests). Default: https://github.com and
	// https://api.github.com.
	BaseURL string `json:"base_url,omitempty"`
	APIURL  string `json:"api_url,omitempty"`
}

// Rules of each kind, as written in the Caddyfile, for error messages.
var (
	oidcRules   = []string{"allow_email", "allow_domain", "allow_subject", "allow_group", "allow_any"}
	githubRules = []string{"allow_user", "allow_org", "allow_team", "allow_any"}
)

// validName is what a login may be called: it goes into a path and into
// subjects.
var validName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)

// Validate checks c: a known kind, a usable name, the settings the kind
// needs, and at least one allow rule of that kind. A login that lets in
// anyone the upstream knows ("anyone with a Google account") must say
// allow_any: it is a choice, never an accident.
func (c *Config) Validate() error {
	if !validName.MatchString(c.Name) {
		return fmt.Errorf("login name %q must be 1 to 32 lower-case letters, digits, - or _", c.Name)
	}
	if c.ClientID == "" {
		return fmt.Errorf("login %s: client_id is required", c.Name)
	}
	var hasRule bool
	var rules []string
	switch c.Kind {
	case KindOIDC:
		if c.Issuer == "" {
			return fmt.Errorf("login %s: issuer is required", c.Name)
		}
		if len(c.AllowUser)+len(c.AllowOrg)+len(c.AllowTeam) > 0 || c.BaseURL != "" || c.APIURL != "" {
			return fmt.Errorf("login %s: allow_user, allow_org, allow_team, base_url and api_url are for github logins", c.Name)
		}
		hasRule = len(c.AllowEmail)+len(c.AllowDomain)+len(c.AllowSubject)+len(c.AllowGroup) > 0
		rules = oidcRules
	case KindGitHub:
		if c.Issuer != "" || c.SubjectClaim != "" {
			return fmt.Errorf("login %s: issuer and subject_claim are for oidc logins", c.Name)
		}
		if len(c.AllowEmail)+len(c.AllowDomain)+len(c.AllowSubject)+len(c.AllowGroup) > 0 {
			return fmt.Errorf("login %s: allow_email, allow_domain, allow_subject and allow_group are for oidc logins", c.Name)
		}
		for _, t := range c.AllowTeam {
			if org, team, ok := strings.Cut(t, "/"); !ok || org == "" || team == "" || strings.Contains(team, "/") {
				return fmt.Errorf("login %s: allow_team %q must be <org>/<team>", c.Name, t)
			}
		}
		hasRule = len(c.AllowUser)+len(c.AllowOrg)+len(c.AllowTeam) > 0
		rules = githubRules
	default:
		return fmt.Errorf("login %s: kind %q is neither oidc nor github", c.Name, c.Kind)
	}
	if !hasRule && !c.AllowAny {
		return fmt.Errorf("login %s has no allow rule, so anyone the upstream signs in would get in; "+
			"add one of %s (allow_any to let everyone in on purpose)", c.Name, strings.Join(rules, ", "))
	}
	for _, g := range c.AllowGroup {
		if g.Claim == "" || g.Value == "" {
			return fmt.Errorf("login %s: allow_group needs a claim and a value", c.Name)
		}
	}
	return nil
}

// Identity is a person as an upstream signed them in.
type Identity struct {
	// Subject is the person's identifier here: stable, and namespaced by
	// the login so that two upstreams never name the same subject.
	Subject string
	// Claims are the placeholders of the person at authorization time
	// ({http.auth.user.<name>}): email, email_verified, name,
	// preferred_username, login, groups (comma-separated), picture.
	Claims map[string]string

	upstreamSubject string
	email           string
	emailVerified   bool
	// raw holds the upstream's claims for allow_group (oidc).
	raw map[string]any
	// login, orgs and teams (<org>/<team>) are GitHub's.
	login string
	orgs  []string
	teams []string
}

// Allowed reports whether a rule of c lets the person in.
func (c *Config) Allowed(id *Identity) bool {
	if c.AllowAny {
		return true
	}
	if id.emailVerified && id.email != "" {
		if slices.ContainsFunc(c.AllowEmail, func(e string) bool { return strings.EqualFold(e, id.email) }) {
			return true
		}
		if _, domain, ok := strings.Cut(id.email, "@"); ok &&
			slices.ContainsFunc(c.AllowDomain, func(d string) bool { return strings.EqualFold(d, domain) }) {
			return true
		}
	}
	if slices.Contains(c.AllowSubject, id.upstreamSubject) {
		return true
	}
	for _, g := range c.AllowGroup {
		switch v := id.raw[g.Claim].(type) {
		case string:
			if v == g.Value {
				return true
			}
		case []any:
			if slices.Contains(v, any(g.Value)) {
				return true
			}
		}
	}
	if id.login != "" && slices.ContainsFunc(c.AllowUser, func(u string) bool { return strings.EqualFold(u, id.login) }) {
		return true
	}
	for _, o := range c.AllowOrg {
		if slices.ContainsFunc(id.orgs, func(x string) bool { return strings.EqualFold(x, o) }) {
			return true
		}
	}
	for _, t := range c.AllowTeam {
		if slices.ContainsFunc(id.teams, func(x string) bool { return strings.EqualFold(x, t) }) {
			return true
		}
	}
	return false
}

// Provider is the relying-party side of one upstream.
type Provider interface {
	// AuthCodeURL is where the person signs in: the upstream's
	// authorization endpoint with this request's state, nonce (OpenID
	// Connect) and PKCE challenge of verifier.
	AuthCodeURL(ctx context.Context, redirectURI, state, nonce, verifier string) (string, error)
	// Exchange trades the upstream's code for the person, validating
	// what the upstream says (the ID token and its nonce).
	Exchange(ctx context.Context, redirectURI, code, verifier, nonce string) (*Identity, error)
}

// Login is a configured login: its settings and its upstream.
type Login struct {
	Config
	Provider
}

// httpTimeout bounds each call to an upstream.
const httpTimeout = 15 * time.Second

// New returns the login c describes. Nothing is fetched yet: an OpenID
// Connect provider is discovered at its first use, so that a provider that
// is down does not stop Caddy from loading its config.
func New(c Config) (*Login, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	client := &http.Client{Timeout: httpTimeout}
	var p Provider
	switch c.Kind {
	case KindOIDC:
		p = newOIDC(c, client)
	case KindGitHub:
		p = newGitHub(c, client)
	}
	if c.DisplayName == "" {
		c.DisplayName = c.Name
	}
	return &Login{Config: c, Provider: p}, nil
}
