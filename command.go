package caddydcr

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/caddy-dcr/caddy-dcr/internal/handlers"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "dcr",
		Usage: "<clients|client|create|delete|rotate|disable|enable|token|tokens|grants|revoke-grant|stores> [--address <listen>] [--json]",
		Short: "Manages the OAuth clients, grants and initial access tokens of a running Caddy",
		Long: `
Manages what the dcr handlers of a running Caddy store, through the
admin.api.dcr routes of its admin API (/dcr/...): lists, shows, creates,
deletes, disables and enables clients, rotates their credentials,
creates initial access tokens, lists and revokes people's grants.

This command talks to the admin API at '` + caddy.DefaultAdminListen + `' unless
--address is given or --config names the config to read it from, as
'caddy reload' does. Output is a readable table; --json prints the
admin API's JSON for scripts. Where the dcr handlers use several stores,
--store names one (caddy dcr stores lists them).

A client secret, a registration access token or an initial access token
is shown once, when it is made: keep it then.`,
		CobraFunc: setupDCRCommand,
	})
}

// setupDCRCommand adds the dcr subcommands and their shared flags to cmd.
func setupDCRCommand(cmd *cobra.Command) {
	f := cmd.PersistentFlags()
	f.String("address", "", "Address of the administration API listener (if --config is not used)")
	f.StringP("config", "c", "", "Configuration file (if --address is not used)")
	f.StringP("adapter", "a", "", "Name of config adapter to apply (if --config is used)")
	f.String("store", "", "Name of the store, where dcr handlers use several (see 'caddy dcr stores')")
	f.Bool("json", false, "Print the admin API's JSON instead of a table")

	clients := &cobra.Command{
		Use:   "clients [--q <text>] [--limit <n>] [--cursor <cursor>]",
		Short: "Lists clients, a page at a time",
		Args:  cobra.NoArgs,
		RunE: run(func(c *cliContext, cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			for _, name := range []string{"q", "limit", "cursor"} {
				if v, _ := cmd.Flags().GetString(name); v != "" {
					q.Set(name, v)
				}
			}
			var out struct {
				Clients    []cliClient `json:"clients"`
				NextCursor string      `json:"next_cursor"`
			}
			if err := c.call(http.MethodGet, "/dcr/clients", q, nil, &out); err != nil {
				return err
			}
			return c.print(func(w io.Writer) {
				tw := table(w, "CLIENT ID", "NAME", "TYPE", "ORIGIN", "ISSUED", "LAST USED", "STATE")
				for _, cl := range out.Clients {
					row(tw, cl.ClientID, cl.Metadata.ClientName, cl.kind(), cl.origin(), date(cl.IssuedAt), date(cl.LastUsedAt), cl.state())
				}
				tw.Flush()
				if out.NextCursor != "" {
					fmt.Fprintf(w, "\nmore: caddy dcr clients --cursor %s\n", out.NextCursor)
				}
			})
		}),
	}
	clients.Flags().String("q", "", "Only clients whose id or name contains this text")
	clients.Flags().String("limit", "", "Clients per page (default 100, at most 1000)")
	clients.Flags().String("cursor", "", "Go on from where the previous page ended")

	create := &cobra.Command{
		Use:   "create [--name <name>] [--public] [--redirect-uri <uri>]... [--grant-type <type>]... [--scope <scopes>] [--metadata <file>]",
		Short: "Creates a client; its secret is shown once",
		Args:  cobra.NoArgs,
		RunE: run(func(c *cliContext, cmd *cobra.Command, _ []string) error {
			body, err := createBody(cmd)
			if err != nil {
				return err
			}
			var out cliClient
			if err := c.call(http.MethodPost, "/dcr/clients", nil, body, &out); err != nil {
				return err
			}
			return c.print(func(w io.Writer) {
				out.describe(w)
				if out.ClientSecret != "" {
					fmt.Fprintln(w, "\nThe client secret and the registration access token are shown only now.")
				}
			})
		}),
	}
	create.Flags().String("name", "", "client_name")
	create.Flags().Bool("public", false, "A public client (token_endpoint_auth_method none): no secret")
	create.Flags().StringArray("redirect-uri", nil, "A redirect URI (repeat for several)")
	create.Flags().StringArray("grant-type", nil, "A grant type (repeat for several); default: as registration defaults it")
	create.Flags().String("scope", "", "The scopes the client may ask for, space-separated")
	create.Flags().String("metadata", "", "A file of RFC 7591 client metadata (JSON; - for stdin); the other flags override its members")

	cmd.AddCommand(clients, create,
		&cobra.Command{
			Use:   "client <id>",
			Short: "Shows one client",
			Args:  cobra.ExactArgs(1),
			RunE: run(func(c *cliContext, _ *cobra.Command, args []string) error {
				var out cliClient
				if err := c.call(http.MethodGet, "/dcr/clients/"+url.PathEscape(args[0]), nil, nil, &out); err != nil {
					return err
				}
				return c.print(out.describe)
			}),
		},
		&cobra.Command{
			Use:   "delete <id>",
			Short: "Deletes a client and revokes every token issued to it",
			Args:  cobra.ExactArgs(1),
			RunE: run(func(c *cliContext, _ *cobra.Command, args []string) error {
				if err := c.call(http.MethodDelete, "/dcr/clients/"+url.PathEscape(args[0]), nil, nil, nil); err != nil {
					return err
				}
				return c.done("deleted " + args[0])
			}),
		},
		&cobra.Command{
			Use:   "rotate <id>",
			Short: "Gives a client a new secret and registration access token, shown once",
			Args:  cobra.ExactArgs(1),
			RunE: run(func(c *cliContext, _ *cobra.Command, args []string) error {
				var out cliClient
				if err := c.call(http.MethodPost, "/dcr/clients/"+url.PathEscape(args[0])+"/rotate_secret", nil, nil, &out); err != nil {
					return err
				}
				return c.print(func(w io.Writer) {
					out.describe(w)
					fmt.Fprintln(w, "\nThe old credentials no longer work; the new ones are shown only now.")
				})
			}),
		},
		settingsCommand("disable", "Disables a client: it gets no token and its tokens are refused", true),
		settingsCommand("enable", "Enables a disabled client", false),
		tokenCommand(),
		&cobra.Command{
			Use:   "tokens",
			Short: "Lists the initial access tokens (not their values)",
			Args:  cobra.NoArgs,
			RunE: run(func(c *cliContext, _ *cobra.Command, _ []string) error {
				var out struct {
					Tokens []cliToken `json:"initial_access_tokens"`
				}
				if err := c.call(http.MethodGet, "/dcr/initial_access_tokens", nil, nil, &out); err != nil {
					return err
				}
				return c.print(func(w io.Writer) {
					tw := table(w, "ID", "DESCRIPTION", "CREATED", "EXPIRES", "USES")
					for _, t := range out.Tokens {
						row(tw, t.ID, t.Description, date(t.CreatedAt), date(t.ExpiresAt), t.uses())
					}
					tw.Flush()
				})
			}),
		},
		&cobra.Command{
			Use:   "token-delete <id>",
			Short: "Deletes an initial access token",
			Args:  cobra.ExactArgs(1),
			RunE: run(func(c *cliContext, _ *cobra.Command, args []string) error {
				if err := c.call(http.MethodDelete, "/dcr/initial_access_tokens/"+url.PathEscape(args[0]), nil, nil, nil); err != nil {
					return err
				}
				return c.done("deleted initial access token " + args[0])
			}),
		},
		&cobra.Command{
			Use:   "grants <subject>",
			Short: "Lists the clients a person authorized",
			Args:  cobra.ExactArgs(1),
			RunE: run(func(c *cliContext, _ *cobra.Command, args []string) error {
				var out struct {
					Grants []handlers.GrantView `json:"grants"`
				}
				if err := c.call(http.MethodGet, "/dcr/grants", url.Values{"subject": {args[0]}}, nil, &out); err != nil {
					return err
				}
				return c.print(func(w io.Writer) {
					tw := table(w, "CLIENT ID", "NAME", "SCOPE", "GRANTED", "UPDATED")
					for _, g := range out.Grants {
						row(tw, g.ClientID, g.ClientName, g.Scope, date(g.CreatedAt), date(g.UpdatedAt))
					}
					tw.Flush()
				})
			}),
		},
		&cobra.Command{
			Use:   "revoke-grant <subject> <client_id>",
			Short: "Revokes a person's grant to a client, with every token issued under it",
			Args:  cobra.ExactArgs(2),
			RunE: run(func(c *cliContext, _ *cobra.Command, args []string) error {
				if err := c.call(http.MethodDelete, "/dcr/grants/"+url.PathEscape(args[0])+"/"+url.PathEscape(args[1]), nil, nil, nil); err != nil {
					return err
				}
				return c.done("revoked the grant of " + args[0] + " to " + args[1])
			}),
		},
		&cobra.Command{
			Use:   "stores",
			Short: "Lists the stores the dcr handlers use",
			Args:  cobra.NoArgs,
			RunE: run(func(c *cliContext, _ *cobra.Command, _ []string) error {
				var out struct {
					Stores []storeInfo `json:"stores"`
				}
				if err := c.call(http.MethodGet, "/dcr/stores", nil, nil, &out); err != nil {
					return err
				}
				return c.print(func(w io.Writer) {
					tw := table(w, "STORE", "HANDLERS")
					for _, s := range out.Stores {
						row(tw, s.Name, fmt.Sprint(s.Handlers))
					}
					tw.Flush()
				})
			}),
		},
	)
}

// settingsCommand makes disable and enable.
func settingsCommand(name, short string, disabled bool) *cobra.Command {
	return &cobra.Command{
		Use:   name + " <id>",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: run(func(c *cliContext, _ *cobra.Command, args []string) error {
			body, _ := json.Marshal(map[string]bool{"disabled": disabled})
			var out cliClient
			if err := c.call(http.MethodPatch, "/dcr/clients/"+url.PathEscape(args[0]), nil, body, &out); err != nil {
				return err
			}
			return c.print(out.describe)
		}),
	}
}

// tokenCommand makes token: a new initial access token.
func tokenCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token [--ttl <duration>] [--uses <n>] [--description <text>]",
		Short: "Creates an initial access token for registration; its value is shown once",
		Args:  cobra.NoArgs,
		RunE: run(func(c *cliContext, cmd *cobra.Command, _ []string) error {
			req := map[string]any{}
			if v, _ := cmd.Flags().GetString("ttl"); v != "" {
				req["ttl"] = v
			}
			if n, _ := cmd.Flags().GetInt("uses"); n != 0 {
				req["max_uses"] = n
			}
			if v, _ := cmd.Flags().GetString("description"); v != "" {
				req["description"] = v
			}
			body, _ := json.Marshal(req)
			var out cliToken
			if err := c.call(http.MethodPost, "/dcr/initial_access_tokens", nil, body, &out); err != nil {
				return err
			}
			return c.print(func(w io.Writer) {
				tw := table(w)
				row(tw, "id:", out.ID)
				row(tw, "token:", out.Token)
				row(tw, "expires:", date(out.ExpiresAt))
				row(tw, "uses:", out.uses())
				tw.Flush()
				fmt.Fprintln(w, "\nThe token is shown only now. A client registers with it as a Bearer token.")
			})
		}),
	}
	cmd.Flags().String("ttl", "", "How long the token is valid, such as 24h or 7d (default: the server's)")
	cmd.Flags().Int("uses", 0, "How many registrations it allows (default: no limit)")
	cmd.Flags().String("description", "", "What the token is for")
	return cmd
}

// createBody builds the metadata of create from --metadata and the flags.
func createBody(cmd *cobra.Command) ([]byte, error) {
	meta := map[string]any{}
	if file, _ := cmd.Flags().GetString("metadata"); file != "" {
		var b []byte
		var err error
		if file == "-" {
			b, err = io.ReadAll(io.LimitReader(cmd.InOrStdin(), maxAdminBody+1))
		} else {
			b, err = os.ReadFile(file)
		}
		if err != nil {
			return nil, fmt.Errorf("reading the metadata: %w", err)
		}
		if err := json.Unmarshal(b, &meta); err != nil {
			return nil, fmt.Errorf("the metadata is not a JSON object: %w", err)
		}
	}
	fl := cmd.Flags()
	if v, _ := fl.GetString("name"); v != "" {
		meta["client_name"] = v
	}
	if public, _ := fl.GetBool("public"); public {
		meta["token_endpoint_auth_method"] = "none"
	}
	if v, _ := fl.GetStringArray("redirect-uri"); len(v) > 0 {
		meta["redirect_uris"] = v
	}
	if v, _ := fl.GetStringArray("grant-type"); len(v) > 0 {
		meta["grant_types"] = v
	}
	if v, _ := fl.GetString("scope"); v != "" {
		meta["scope"] = v
	}
	return json.Marshal(meta)
}

// cliContext is what every subcommand needs: where the admin API is, the
// store, and how to print.
type cliContext struct {
	address string
	store   string
	json    bool
	out     io.Writer
	raw     []byte // the last answer, for --json
}

// run wraps a subcommand with its context.
func run(fn func(c *cliContext, cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		f := cmd.Flags()
		address, _ := f.GetString("address")
		config, _ := f.GetString("config")
		adapter, _ := f.GetString("adapter")
		addr, err := caddycmd.DetermineAdminAPIAddress(address, nil, config, adapter)
		if err != nil {
			return fmt.Errorf("finding the admin API: %w", err)
		}
		c := &cliContext{address: addr, out: cmd.OutOrStdout()}
		c.store, _ = f.GetString("store")
		c.json, _ = f.GetBool("json")
		cmd.SilenceUsage = true
		return fn(c, cmd, args)
	}
}

// call sends a request to the admin API and decodes its answer into out
// (when not nil). An error answer comes back as an error with the admin
// API's message.
func (c *cliContext) call(method, path string, q url.Values, body []byte, out any) error {
	if c.store != "" {
		if q == nil {
			q = url.Values{}
		}
		q.Set("store", c.store)
	}
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	resp, err := caddycmd.AdminAPIRequest(c.address, method, path, nil, rd)
	if err != nil {
		return cliError(err)
	}
	defer resp.Body.Close()
	c.raw, err = io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("reading the answer: %w", err)
	}
	if out != nil && len(c.raw) > 0 {
		if err := json.Unmarshal(c.raw, out); err != nil {
			return fmt.Errorf("the admin API's answer is not what this command expects: %w", err)
		}
	}
	return nil
}

// cliError shortens the admin API's error JSON to its message.
func cliError(err error) error {
	msg := err.Error()
	if i := strings.Index(msg, "{"); i >= 0 {
		var apiErr struct {
			Error string `json:"error"`
		}
		if json.Unmarshal([]byte(msg[i:]), &apiErr) == nil && apiErr.Error != "" {
			return errors.New(strings.TrimSpace(msg[:i]) + " " + apiErr.Error)
		}
	}
	return err
}

// print writes the last answer as JSON with --json, or else as text.
func (c *cliContext) print(text func(io.Writer)) error {
	if c.json {
		var b bytes.Buffer
		if err := json.Indent(&b, c.raw, "", "  "); err != nil {
			_, err = c.out.Write(c.raw)
			return err
		}
		b.WriteByte('\n')
		_, err := c.out.Write(b.Bytes())
		return err
	}
	text(c.out)
	return nil
}

// done reports an operation with no answer body.
func (c *cliContext) done(msg string) error {
	if c.json {
		_, err := fmt.Fprintln(c.out, `{"ok":true}`)
		return err
	}
	_, err := fmt.Fprintln(c.out, msg)
	return err
}

// cliClient is a client as the admin API shows it.
type cliClient struct {
	ClientID                string `json:"client_id"`
	IssuedAt                int64  `json:"client_id_issued_at"`
	ClientSecret            string `json:"client_secret"`
	SecretExpiresAt         *int64 `json:"client_secret_expires_at"`
	RegistrationAccessToken string `json:"registration_access_token"`
	Public                  bool   `json:"public"`
	Origin                  string `json:"origin"`
	LastUsedAt              int64  `json:"last_used_at"`
	Settings                struct {
		Disabled        bool   `json:"disabled"`
		AccessTokenTTL  int64  `json:"access_token_ttl"`
		RefreshTokenTTL int64  `json:"refresh_token_ttl"`
		Scope           string `json:"scope"`
		Keep            *bool  `json:"keep"`
	} `json:"settings"`
	Metadata struct {
		ClientName   string   `json:"client_name"`
		RedirectURIs []string `json:"redirect_uris"`
		GrantTypes   []string `json:"grant_types"`
		Scope        string   `json:"scope"`
		AuthMethod   string   `json:"token_endpoint_auth_method"`
	} `json:"metadata"`
}

func (cl *cliClient) kind() string {
	if cl.Public {
		return "public"
	}
	return "confidential"
}

func (cl *cliClient) origin() string {
	if cl.Origin == "" {
		return "dynamic"
	}
	return cl.Origin
}

func (cl *cliClient) state() string {
	if cl.Settings.Disabled {
		return "disabled"
	}
	return "enabled"
}

func (cl *cliClient) describe(w io.Writer) {
	tw := table(w)
	row(tw, "client_id:", cl.ClientID)
	if cl.ClientSecret != "" {
		row(tw, "client_secret:", cl.ClientSecret)
	}
	if cl.RegistrationAccessToken != "" {
		row(tw, "registration_access_token:", cl.RegistrationAccessToken)
	}
	row(tw, "name:", cl.Metadata.ClientName)
	row(tw, "type:", cl.kind()+" ("+cl.Metadata.AuthMethod+")")
	row(tw, "origin:", cl.origin())
	row(tw, "state:", cl.state())
	row(tw, "issued:", date(cl.IssuedAt))
	if cl.SecretExpiresAt != nil {
		row(tw, "secret expires:", date(*cl.SecretExpiresAt))
	}
	row(tw, "last used:", date(cl.LastUsedAt))
	row(tw, "grant types:", strings.Join(cl.Metadata.GrantTypes, " "))
	row(tw, "redirect uris:", strings.Join(cl.Metadata.RedirectURIs, " "))
	row(tw, "scope:", cl.Metadata.Scope)
	if s := cl.Settings; s.AccessTokenTTL != 0 || s.RefreshTokenTTL != 0 || s.Scope != "" || s.Keep != nil {
		row(tw, "settings:", fmt.Sprintf("access_token_ttl=%ds refresh_token_ttl=%ds scope=%q keep=%s",
			s.AccessTokenTTL, s.RefreshTokenTTL, s.Scope, keepText(s.Keep)))
	}
	tw.Flush()
}

func keepText(k *bool) string {
	if k == nil {
		return "by origin"
	}
	return fmt.Sprint(*k)
}

// cliToken is an initial access token as the admin API shows it.
type cliToken struct {
	ID          string `json:"id"`
	Token       string `json:"token"`
	Description string `json:"description"`
	CreatedAt   int64  `json:"created_at"`
	ExpiresAt   int64  `json:"expires_at"`
	MaxUses     int    `json:"max_uses"`
	Uses        int    `json:"uses"`
}

func (t *cliToken) uses() string {
	if t.MaxUses == 0 {
		return fmt.Sprintf("%d (no limit)", t.Uses)
	}
	return fmt.Sprintf("%d of %d", t.Uses, t.MaxUses)
}

func table(w io.Writer, header ...string) *tabwriter.Writer {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if len(header) > 0 {
		row(tw, header...)
	}
	return tw
}

// row writes one table row; an empty cell shows as "-" and control
// characters (a client name is anyone's choice) are replaced, so that no
// registration can rewrite the operator's terminal. So are format
// characters (Cf: the bidi overrides and isolates such as U+202E, which
// reorder the rest of the line, and zero-width ones such as U+200B) and
// the line and paragraph separators U+2028 and U+2029.
func row(tw *tabwriter.Writer, cells ...string) {
	for i, c := range cells {
		if c == "" {
			c = "-"
		}
		c = strings.Map(func(r rune) rune {
			if unicode.IsControl(r) || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp) {
				return '?'
			}
			return r
		}, c)
		if i > 0 {
			fmt.Fprint(tw, "\t")
		}
		fmt.Fprint(tw, c)
	}
	fmt.Fprintln(tw)
}

// date shows a unix time, 0 as never.
func date(unix int64) string {
	if unix == 0 {
		return "never"
	}
	return time.Unix(unix, 0).UTC().Format("2006-01-02 15:04:05Z")
}
