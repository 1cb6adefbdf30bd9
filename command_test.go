package caddydcr

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/spf13/cobra"

	"github.com/caddy-dcr/caddy-dcr/storage"
)

// adminServer serves the admin API's /dcr/ routes over HTTP, with errors
// encoded as Caddy's admin endpoint encodes them, and returns its address.
func (e *adminEnv) adminServer() string {
	e.t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := e.api.serve(w, r)
		if err == nil {
			return
		}
		var apiErr caddy.APIError
		if !errors.As(err, &apiErr) {
			apiErr = caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: err}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(apiErr.HTTPStatus)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": apiErr.Err.Error()})
	}))
	e.t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// cli runs caddy dcr with args against the admin API at address and
// returns its output.
func cli(t *testing.T, address string, args ...string) (string, error) {
	t.Helper()
	cmd := &cobra.Command{Use: "dcr"}
	setupDCRCommand(cmd)
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(append(args, "--address", address))
	err := cmd.Execute()
	return out.String(), err
}

func mustCLI(t *testing.T, address string, args ...string) string {
	t.Helper()
	out, err := cli(t, address, args...)
	if err != nil {
		t.Fatalf("caddy dcr %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func TestCLIManagesClients(t *testing.T) {
	e := newAdminEnv(t)
	addr := e.adminServer()

	var created struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	out := mustCLI(t, addr, "create", "--name", "backup robot", "--grant-type", "client_credentials", "--scope", "read", "--json")
	if err := json.Unmarshal([]byte(out), &created); err != nil || created.ClientID == "" || created.ClientSecret == "" {
		t.Fatalf("create --json printed %s (%v)", out, err)
	}
	if e.token(created.ClientID, created.ClientSecret) != http.StatusOK {
		t.Fatal("the client made by the CLI gets no token")
	}

	out = mustCLI(t, addr, "create", "--name", "evil\x1b[2Jname", "--public", "--redirect-uri", "https://app.example/cb")
	if !strings.Contains(out, "client_id:") || strings.Contains(out, "client_secret:") || strings.Contains(out, "\x1b") {
		t.Errorf("create of a public client printed:\n%s", out)
	}

	out = mustCLI(t, addr, "clients")
	if !strings.Contains(out, "CLIENT ID") || !strings.Contains(out, created.ClientID) || !strings.Contains(out, "backup robot") ||
		strings.Contains(out, "\x1b") || !strings.Contains(out, "evil?[2Jname") {
		t.Errorf("clients printed:\n%s", out)
	}
	out = mustCLI(t, addr, "clients", "--q", "backup", "--json")
	var list struct {
		Clients []map[string]any `json:"clients"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list.Clients) != 1 {
		t.Errorf("clients --q backup --json printed %s (%v)", out, err)
	}

	out = mustCLI(t, addr, "client", created.ClientID)
	if !strings.Contains(out, "confidential") || !strings.Contains(out, "client_credentials") || strings.Contains(out, created.ClientSecret) {
		t.Errorf("client printed:\n%s", out)
	}

	out = mustCLI(t, addr, "rotate", created.ClientID)
	if !strings.Contains(out, "client_secret:") || strings.Contains(out, created.ClientSecret) {
		t.Errorf("rotate printed:\n%s", out)
	}
	if e.token(created.ClientID, created.ClientSecret) != http.StatusUnauthorized {
		t.Error("the secret from before the rotation still works")
	}

	mustCLI(t, addr, "delete", created.ClientID)
	out, err := cli(t, addr, "client", created.ClientID)
	if err == nil || !strings.Contains(err.Error(), "404") || !strings.Contains(err.Error(), "not found") {
		t.Errorf("client after delete: %v\n%s", err, out)
	}
}

func TestCLIListsAndRevokesGrants(t *testing.T) {
	e := newAdminEnv(t)
	addr := e.adminServer()
	srv, _ := servers.server("")
	if _, err := srv.Store().RecordGrant(t.Context(), &storage.Grant{ID: "g", Subject: "bob@example.com", ClientID: "c1",
		ClientName: "Notes", Scope: "read write", CreatedAt: 1700000000, UpdatedAt: 1700000000}); err != nil {
		t.Fatal(err)
	}
	out := mustCLI(t, addr, "grants", "bob@example.com")
	if !strings.Contains(out, "c1") || !strings.Contains(out, "Notes") || !strings.Contains(out, "read write") ||
		!strings.Contains(out, "2023-11-14 22:13:20Z") {
		t.Errorf("grants printed:\n%s", out)
	}
	mustCLI(t, addr, "revoke-grant", "bob@example.com", "c1")
	if out := mustCLI(t, addr, "grants", "bob@example.com", "--json"); !strings.Contains(out, `"grants": []`) {
		t.Errorf("grants after revocation:\n%s", out)
	}
	out = mustCLI(t, addr, "stores")
	if !strings.Contains(out, e.store) {
		t.Errorf("stores printed:\n%s", out)
	}
}

func TestCLIReportsWhatTheAdminAPIRefused(t *testing.T) {
	e := newAdminEnv(t)
	addr := e.adminServer()
	_, err := cli(t, addr, "create", "--redirect-uri", "not a url")
	if err == nil || !strings.Contains(err.Error(), "400") || !strings.Contains(err.Error(), "invalid_redirect_uri") {
		t.Errorf("a refused create reported %v", err)
	}
	if _, err := cli(t, addr, "delete"); err == nil {
		t.Error("delete without an id ran")
	}
}

func TestCLIDisablesClientsAndMakesTokens(t *testing.T) {
	e := newAdminEnv(t)
	addr := e.adminServer()
	_, m := e.do("POST", "/dcr/clients", `{"client_name":"worker","grant_types":["client_credentials"]}`)
	id := m["client_id"].(string)

	if out := mustCLI(t, addr, "disable", id); !strings.Contains(out, "state:") || !strings.Contains(out, "disabled") {
		t.Errorf("disable printed:\n%s", out)
	}
	if out := mustCLI(t, addr, "clients"); !strings.Contains(out, "disabled") || !strings.Contains(out, "operator") {
		t.Errorf("clients after disable printed:\n%s", out)
	}
	if out := mustCLI(t, addr, "enable", id, "--json"); !strings.Contains(out, `"settings": {}`) {
		t.Errorf("enable --json printed:\n%s", out)
	}

	out := mustCLI(t, addr, "token", "--ttl", "2h", "--uses", "5", "--description", "for the CI")
	if !strings.Contains(out, "token:") || !strings.Contains(out, "0 of 5") || !strings.Contains(out, "shown only now") {
		t.Errorf("token printed:\n%s", out)
	}
	var token string
	for line := range strings.SplitSeq(out, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "token:" {
			token = f[1]
		}
	}
	out = mustCLI(t, addr, "tokens")
	if !strings.Contains(out, "for the CI") || token == "" || strings.Contains(out, token) {
		t.Errorf("tokens printed:\n%s", out)
	}
	var list struct {
		Tokens []struct {
			ID string `json:"id"`
		} `json:"initial_access_tokens"`
	}
	if err := json.Unmarshal([]byte(mustCLI(t, addr, "tokens", "--json")), &list); err != nil || len(list.Tokens) != 1 {
		t.Fatalf("tokens --json: %v %v", list, err)
	}
	mustCLI(t, addr, "token-delete", list.Tokens[0].ID)
	if _, err := cli(t, addr, "token", "--ttl", "soon"); err == nil || !strings.Contains(err.Error(), "ttl") {
		t.Errorf("a bad ttl reported %v", err)
	}
}

// A client name is anyone's choice: control characters, bidi overrides,
// zero-width and other format characters and line separators must not
// reach the operator's terminal, where they could reorder or split a row.
func TestTableRowsReplaceControlAndFormatCharacters(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"plain", "My Tool é 日本", "My Tool é 日本"},
		{"empty", "", "-"},
		{"escape sequence", "a\x1b[2Jb", "a?[2Jb"},
		{"tab and newline", "a\tb\nc", "a?b?c"},
		{"DEL and C1", "a\x7fb\u0085c\u009bd", "a?b?c?d"},
		{"right-to-left override", "evil\u202Etxt.exe", "evil?txt.exe"},
		{"bidi isolates", "\u2066a\u2069\u200Fb", "?a??b"},
		{"zero-width", "ad\u200Bmin\uFEFF", "ad?min?"},
		{"line and paragraph separators", "a\u2028b\u2029c", "a?b?c"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			tw := table(&b)
			row(tw, tc.in, "x")
			tw.Flush()
			if got := strings.TrimRight(strings.TrimSuffix(b.String(), "x\n"), " "); got != tc.want {
				t.Errorf("row(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}
