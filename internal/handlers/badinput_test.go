package handlers

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// snapshot is everything a request could have stored: the clients, alice's
// grants and the revocations.
func (ts *testServer) snapshot() string {
	ts.t.Helper()
	ctx := ts.t.(*testing.T).Context()
	clients, _, err := ts.store.Clients(ctx, "", 1000)
	if err != nil {
		ts.t.Fatal(err)
	}
	grants, err := ts.store.Grants(ctx, "alice")
	if err != nil {
		ts.t.Fatal(err)
	}
	revs, err := ts.store.Revocations(ctx)
	if err != nil {
		ts.t.Fatal(err)
	}
	b, _ := json.Marshal([]any{clients, grants, revs})
	return string(b)
}

// raw sends a request as alice (as if basic_auth had run on the route)
// with the given headers and body, and returns the status and body. A
// refusal by the gate comes back from ServeHTTP as an error; its status is
// what Caddy would answer.
func (ts *testServer) raw(method, target string, header http.Header, body string) (int, string) {
	ts.t.Helper()
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	for k, v := range header {
		r.Header[k] = v
	}
	repl := caddy.NewReplacer()
	repl.Set("http.auth.user.id", "alice")
	r = caddyhttp.PrepareRequest(r, repl, nil, nil)
	w := httptest.NewRecorder()
	err := ts.srv.ServeHTTP(w, r, ts.next())
	var he caddyhttp.HandlerError
	switch {
	case err == nil:
		return w.Code, w.Body.String()
	case errors.As(err, &he):
		return he.StatusCode, w.Body.String()
	default:
		ts.t.Fatalf("%s %s returned %v", method, target, err)
		return 0, ""
	}
}

// TestBadInputIsRefusedAndStoresNothing sends every endpoint malformed
// JSON and forms, wrong types, huge arrays, invalid UTF-8, duplicate keys
// and parameters, oversized bodies and header values: each gets a clear
// 4xx (an OAuth error body where the endpoint speaks JSON), never a 5xx,
// and the store is left exactly as it was.
func TestBadInputIsRefusedAndStoresNothing(t *testing.T) {
	ts := newTestServer(t, Config{ScopesSupported: []string{"read", "write"}, MaxBodyBytes: 64 << 10})
	reg := ts.register(`{"client_name":"Target","redirect_uris":["https://app.example/cb"],"grant_types":["authorization_code","client_credentials"]}`)
	id, secret, rat := reg["client_id"].(string), reg["client_secret"].(string), reg["registration_access_token"].(string)
	pubID, params := ts.publicClient("")
	token := ts.clientCredentialsToken(id, secret, "read")

	jsonType := http.Header{"Content-Type": {"application/json"}}
	withRAT := http.Header{"Content-Type": {"application/json"}, "Authorization": {"Bearer " + rat}}
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(id+":"+secret))
	form := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}, "Authorization": {basic}}
	bigArray := "[" + strings.Repeat(`"https://app.example/cb",`, 5000) + `"x"]`
	deep := strings.Repeat("[", 10000) + strings.Repeat("]", 10000)
	huge := strings.Repeat("a", 200<<10)
	badJSON := map[string]string{
		"malformed":          `{"client_name":`,
		"not an object":      `["client_name"]`,
		"empty":              ``,
		"trailing data":      `{"client_name":"a"} {"client_name":"b"}`,
		"wrong type string":  `{"redirect_uris":"https://app.example/cb"}`,
		"wrong type number":  `{"client_name":5,"redirect_uris":["https://app.example/cb"]}`,
		"wrong element type": `{"grant_types":[1,2]}`,
		"huge array":         `{"redirect_uris":` + bigArray + `}`,
		"deep nesting":       `{"x_ext":` + deep + `}`,
		"invalid UTF-8":      "{\"client_name\":\"\xff\xfe\",\"grant_types\":[\"client_credentials\"]}",
		"lone surrogate":     `{"client_name":"\ud800","grant_types":["client_credentials"]}`,
		"duplicate keys":     `{"client_name":"a","client_name":"b","grant_types":["client_credentials"]}`,
		"oversized body":     `{"client_name":"` + huge + `","grant_types":["client_credentials"]}`,
		"unknown grant type": `{"grant_types":["password"]}`,
		"bad redirect":       `{"redirect_uris":["javascript:alert(1)"]}`,
	}
	badForms := map[string]string{
		"bad escape":        "grant_type=%zz",
		"duplicate param":   "grant_type=client_credentials&grant_type=client_credentials",
		"invalid UTF-8":     "grant_type=client_credentials&scope=%ff%fe",
		"NUL":               "grant_type=client_credentials&scope=read%00write",
		"oversized body":    "grant_type=client_credentials&scope=" + huge,
		"unknown grant":     "grant_type=password&username=a&password=b",
		"empty":             "",
		"huge code":         "grant_type=authorization_code&code=" + huge[:8000],
		"duplicate token":   "token=a&token=b",
		"refresh wrong cli": "grant_type=refresh_token&refresh_token=nope",
	}

	type request struct {
		method, target string
		header         http.Header
		body           string
		oauthJSON      bool // the answer is an OAuth error object
	}
	cases := map[string]request{}
	for name, body := range badJSON {
		cases["register: "+name] = request{"POST", "/oauth/register", jsonType, body, true}
		cases["update: "+name] = request{"PUT", "/oauth/register/" + id, withRAT, body, true}
	}
	cases["register: wrong content type"] = request{"POST", "/oauth/register", http.Header{"Content-Type": {"text/plain"}}, `{"grant_types":["client_credentials"]}`, true}
	for _, ep := range []string{"/oauth/token", "/oauth/introspect", "/oauth/revoke"} {
		for name, body := range badForms {
			cases[ep+": "+name] = request{"POST", ep, form, body, true}
		}
		cases[ep+": JSON body"] = request{"POST", ep, http.Header{"Content-Type": {"application/json"}, "Authorization": {basic}}, `{"grant_type":"client_credentials"}`, true}
		// readForm parses the body itself; a query that ParseForm
		// refuses is still refused.
		cases[ep+": bad escape in the query"] = request{"POST", ep + "?x=%zz", form, "grant_type=client_credentials&token=" + token, true}
		cases[ep+": semicolon in the query"] = request{"POST", ep + "?a=1;b=2", form, "grant_type=client_credentials&token=" + token, true}
		for name, auth := range map[string]string{
			"basic not base64":   "Basic !!!",
			"basic no colon":     "Basic " + base64.StdEncoding.EncodeToString([]byte("nocolon")),
			"basic bad escape":   "Basic " + base64.StdEncoding.EncodeToString([]byte("%zz:secret")),
			"basic huge":         "Basic " + base64.StdEncoding.EncodeToString([]byte(huge[:30000]+":x")),
			"basic invalid utf8": "Basic " + base64.StdEncoding.EncodeToString([]byte("\xff:\xfe")),
			"two schemes":        basic + ", Bearer x",
		} {
			cases[ep+": "+name] = request{"POST", ep, http.Header{"Content-Type": {"application/x-www-form-urlencoded"}, "Authorization": {auth}}, "grant_type=client_credentials&token=x", true}
		}
	}
	for name, auth := range map[string]string{
		"empty bearer":       "Bearer",
		"bearer two words":   "Bearer a b",
		"bearer huge":        "Bearer " + huge[:60000],
		"bearer non-ASCII":   "Bearer ключ",
		"bearer bad JWT":     "Bearer a.b.c",
		"bearer alg none":    "Bearer " + base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + strings.Split(token, ".")[1] + ".",
		"bearer tampered":    "Bearer " + token[:len(token)-4] + "AAAA",
		"two authorizations": "",
	} {
		h := http.Header{"Authorization": {auth}}
		if name == "two authorizations" {
			h = http.Header{"Authorization": {"Bearer " + token, "Bearer " + token}}
		}
		cases["gate: "+name] = request{"GET", "/protected", h, "", false}
		cases["client configuration: "+name] = request{"GET", "/oauth/register/" + id, h, "", true}
	}
	authorize := func(mutate func(q map[string][]string)) string {
		q := map[string][]string{}
		for k, v := range params {
			q[k] = append([]string(nil), v...)
		}
		mutate(q)
		var b strings.Builder
		for k, vs := range q {
			for _, v := range vs {
				fmt.Fprintf(&b, "&%s=%s", k, v)
			}
		}
		return "/oauth/authorize?" + b.String()[1:]
	}
	for name, target := range map[string]string{
		"duplicate client_id":  authorize(func(q map[string][]string) { q["client_id"] = append(q["client_id"], pubID) }),
		"duplicate state":      authorize(func(q map[string][]string) { q["state"] = []string{"a", "b"} }),
		"invalid UTF-8 state":  authorize(func(q map[string][]string) { q["state"] = []string{"%ff%fe"} }),
		"bad escape":           authorize(func(q map[string][]string) { q["scope"] = []string{"%zz"} }),
		"huge scope":           authorize(func(q map[string][]string) { q["scope"] = []string{huge[:20000]} }),
		"unknown client":       authorize(func(q map[string][]string) { q["client_id"] = []string{"nope"} }),
		"unknown response":     authorize(func(q map[string][]string) { q["response_type"] = []string{"token"} }),
		"challenge too short":  authorize(func(q map[string][]string) { q["code_challenge"] = []string{"abc"} }),
		"plain PKCE":           authorize(func(q map[string][]string) { q["code_challenge_method"] = []string{"plain"} }),
		"unregistered return":  authorize(func(q map[string][]string) { q["redirect_uri"] = []string{"https://evil.example/cb"} }),
		"request object":       authorize(func(q map[string][]string) { q["request"] = []string{"eyJhbGciOiJub25lIn0.e30."} }),
		"resource with anchor": authorize(func(q map[string][]string) { q["resource"] = []string{"https://api.example/%23x"} }),
	} {
		cases["authorize: "+name] = request{"GET", target, http.Header{"Accept": {"text/html"}}, "", false}
	}
	cases["consent: forged form"] = request{"POST", "/oauth/authorize", http.Header{"Content-Type": {"application/x-www-form-urlencoded"}},
		"decision=approve&client_id=" + pubID + "&redirect_uri=https://app.example/cb&csrf=forged", false}
	cases["consent: oversized form"] = request{"POST", "/oauth/authorize", http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, "decision=approve&x=" + huge, false}
	cases["grants: revoke with bad escape"] = request{"DELETE", "/oauth/grants/%25zz%00", nil, "", false}
	cases["grants: revoke unknown"] = request{"DELETE", "/oauth/grants/nope", nil, "", false}
	cases["grants: forged form"] = request{"POST", "/oauth/grants/" + id, http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, "csrf=forged", false}

	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			before := ts.snapshot()
			status, body := ts.raw(c.method, c.target, c.header, c.body)
			if status < 400 || status > 499 {
				t.Fatalf("status %d, want a 4xx; body %.300q", status, body)
			}
			if c.oauthJSON {
				var m map[string]any
				if err := json.Unmarshal([]byte(body), &m); err != nil || m["error"] == nil || m["error"] == "" {
					t.Fatalf("status %d without an OAuth error body: %.300q", status, body)
				}
			}
			if after := ts.snapshot(); after != before {
				t.Fatalf("the store changed")
			}
		})
	}
}
