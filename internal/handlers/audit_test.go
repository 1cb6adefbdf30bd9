package handlers

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// auditedServer is a test server whose logs, audit log included, are
// kept at every level.
func auditedServer(t *testing.T) (*testServer, *observer.ObservedLogs, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	auditCore, audit := observer.New(zapcore.DebugLevel)
	ts := newTestServer(t, Config{Logger: zap.New(core), AuditLogger: zap.New(auditCore).Named(AuditLoggerName)})
	return ts, logs, audit
}

// logText renders every entry, with its fields, as one text to search.
func logText(t *testing.T, logs ...*observer.ObservedLogs) string {
	t.Helper()
	var b strings.Builder
	for _, l := range logs {
		for _, e := range l.All() {
			fields, err := json.Marshal(e.ContextMap())
			if err != nil {
				t.Fatal(err)
			}
			b.WriteString(e.LoggerName + " " + e.Message + " " + string(fields) + "\n")
		}
	}
	return b.String()
}

func TestAuditLogRecordsEveryChangeAndNoSecret(t *testing.T) {
	ts, logs, audit := auditedServer(t)
	var secrets []string
	keep := func(m map[string]any, names ...string) {
		for _, n := range names {
			if v, ok := m[n].(string); ok && v != "" {
				secrets = append(secrets, v)
			}
		}
	}

	// A machine client registers, takes a token, updates, rotates,
	// revokes its token and deletes itself.
	reg := ts.register(`{"grant_types":["client_credentials"],"client_name":"robot"}`)
	keep(reg, "client_secret", "registration_access_token")
	id, secret, rat := reg["client_id"].(string), reg["client_secret"].(string), reg["registration_access_token"].(string)
	access := ts.clientCredentialsToken(id, secret, "")
	secrets = append(secrets, access)
	if w, m := ts.do("PUT", "/oauth/register/"+id, rat, "application/json",
		`{"client_id":"`+id+`","client_secret":"`+secret+`","grant_types":["client_credentials"],"client_name":"robot 2"}`); w.Code != http.StatusOK {
		t.Fatalf("update: %d %v", w.Code, m)
	}
	w, rotated := ts.do("POST", "/oauth/register/"+id+"/rotate_secret", rat, "", "")
	if w.Code != http.StatusOK {
		t.Fatalf("rotate: %d %v", w.Code, rotated)
	}
	keep(rotated, "client_secret", "registration_access_token")
	secret, rat = rotated["client_secret"].(string), rotated["registration_access_token"].(string)
	if w, _ := ts.form("/oauth/revoke", id, secret, url.Values{"token": {access}}); w.Code != http.StatusOK {
		t.Fatalf("revoke: %d", w.Code)
	}
	if w, _ := ts.do("DELETE", "/oauth/register/"+id, rat, "", ""); w.Code != http.StatusNoContent {
		t.Fatalf("delete: %d", w.Code)
	}

	// A person consents, the client uses its code and refresh token,
	// then the person revokes the grant.
	pub, params := ts.publicClient("")
	page := ts.authorize("GET", params, "alice")
	_, q := redirectParams(t, ts.approve(page, "alice", "approve"))
	code := q.Get("code")
	pubAccess, refresh := ts.codeTokens(pub, code)
	w, m := ts.refresh(pub, refresh)
	if w.Code != http.StatusOK {
		t.Fatalf("refresh: %d %v", w.Code, m)
	}
	secrets = append(secrets, code, pubAccess, refresh)
	keep(m, "access_token", "refresh_token")
	if status := ts.revokeGrant("alice", pub); status != http.StatusNoContent {
		t.Fatalf("revoking the grant: %d", status)
	}
	// A refused registration is audited too, and so is a change refused
	// for a wrong registration access token; a refused read is not.
	ts.do("POST", "/oauth/register", "", "application/json", `{"redirect_uris":"x"}`)
	ts.do("DELETE", "/oauth/register/"+pub, "wrong-token", "", "")
	ts.do("GET", "/oauth/register/"+pub, "wrong-token", "", "")

	text := logText(t, logs, audit)
	for _, s := range secrets {
		if strings.Contains(text, s) {
			t.Errorf("a secret (%.6s…) reached the logs", s)
		}
	}
	want := map[string]int{auditRegister: 3, auditUpdate: 1, auditRotate: 1, auditTokenRevoke: 1,
		auditDelete: 2, auditConsent: 1, auditGrantRevoke: 1}
	got := map[string]int{}
	for _, e := range audit.All() {
		got[e.Message]++
		fields := e.ContextMap()
		for _, f := range []string{"client_id", "actor", "remote_ip", "outcome"} {
			if _, ok := fields[f]; !ok {
				t.Errorf("audit line %q lacks %s: %v", e.Message, f, fields)
			}
		}
		if e.LoggerName != AuditLoggerName {
			t.Errorf("audit line %q logged by %q", e.Message, e.LoggerName)
		}
	}
	for action, n := range want {
		if got[action] != n {
			t.Errorf("%d audit lines %q, want %d (all: %v)", got[action], action, n, got)
		}
	}
	failed := audit.FilterMessage(auditRegister).FilterField(zap.String("outcome", "failure")).All()
	if len(failed) != 1 || failed[0].ContextMap()["error"] != "invalid_client_metadata" {
		t.Errorf("the refused registration is audited as %v", failed)
	}
	refused := audit.FilterMessage(auditDelete).FilterField(zap.String("outcome", "failure")).All()
	if len(refused) != 1 || refused[0].ContextMap()["error"] != "invalid_token" || refused[0].ContextMap()["client_id"] != pub {
		t.Errorf("the refused deletion is audited as %v", refused)
	}
	consent := audit.FilterMessage(auditConsent).All()
	if len(consent) != 1 || consent[0].ContextMap()["subject"] != "alice" || consent[0].ContextMap()["actor"] != actorUser {
		t.Errorf("consent audited as %v", consent)
	}
}

func TestReapedClientsAreCountedAndAudited(t *testing.T) {
	ts, _, audit := auditedServer(t)
	watched := [][3]string{{"caddy_dcr_clients_reaped_total", "reason", "unused"}}
	got := delta(t, watched, func() { ts.srv.ClientsReaped("unused", []string{"a", "b"}) })
	if got[0] != 2 {
		t.Errorf("reaped counter moved by %v, want 2", got[0])
	}
	lines := audit.FilterMessage(auditReap).All()
	if len(lines) != 2 || lines[0].ContextMap()["client_id"] != "a" || lines[1].ContextMap()["actor"] != actorReaper {
		t.Errorf("reaping audited as %v", lines)
	}
}
