package handlers

import (
	"net/http"
	"strings"
	"testing"
)

// nested returns a member x holding depth arrays, one inside the other.
func nested(depth int) string {
	return `{"x":` + strings.Repeat("[", depth) + strings.Repeat("]", depth) + `}`
}

// stringArray returns a JSON array of n copies of the string s.
func stringArray(n int, s string) string {
	return "[" + strings.TrimSuffix(strings.Repeat(`"`+s+`",`, n), ",") + "]"
}

func TestCheckIJSONRefusesWhatParsersDisagreeOn(t *testing.T) {
	cases := []struct {
		name, body, want string // want: a fragment of the error
	}{
		{"invalid UTF-8 in a string", "{\"client_name\":\"a\xffb\"}", "UTF-8"},
		{"invalid UTF-8 between tokens", "{\"a\":1}\xc0", "UTF-8"},
		{"truncated UTF-8 sequence", "{\"a\":\"\xe2\x82\"}", "UTF-8"},
		{"escaped NUL in a value", `{"client_name":"a\u0000b"}`, "U+0000"},
		{"escaped NUL in a member name", `{"a\u0000":1}`, "U+0000"},
		{"lone high surrogate", `{"client_name":"\ud800"}`, "U+FFFD"},
		{"lone low surrogate in a member name", `{"\udc00":1}`, "U+FFFD"},
		{"reversed surrogate pair", `{"a":"\udc00\ud800"}`, "U+FFFD"},
		{"escaped replacement character", `{"a":["\ufffd"]}`, "U+FFFD"},
		{"raw replacement character", "{\"a\":\"\xef\xbf\xbd\"}", "U+FFFD"},
		{"repeated member", `{"redirect_uris":["https://a.example/cb"],"redirect_uris":["https://b.example/cb"]}`,
			`member "redirect_uris" is repeated`},
		{"repeated member deep inside", `{"jwks":{"keys":[{"kty":"EC","kty":"RSA"}]}}`, `member "kty" is repeated`},
		{"repeated member spelled with an escape", `{"a":1,"\u0061":2}`, `member "a" is repeated`},
		{"nesting one level too deep", nested(maxJSONDepth), "deeper than 10"},
		{"nesting far too deep", nested(6000), "deeper than 10"},
		{"array one element too long", `{"contacts":` + stringArray(maxJSONArrayLen+1, "a@b.c") + `}`, `"contacts" has more than 100`},
		{"long nameless array", `[` + strings.Repeat("[1],", 100) + `[1]]`, "more than 100"},
		{"number beyond a double", `{"x_limit":1e400}`, "too large for a double"},
		{"negative number beyond a double", `[-2e308]`, "too large for a double"},
		{"trailing object", `{} {}`, "after the JSON value"},
		{"trailing garbage", `{"a":1}x`, "after the JSON value"},
		{"trailing close", `{"a":1}}`, "after the JSON value"},
		{"empty", ``, "no JSON value"},
		{"only whitespace", " \n", "no JSON value"},
		{"syntax error", `{"a":}`, "not valid JSON"},
		{"unclosed object", `{"a":1`, "not valid JSON"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := checkIJSON([]byte(tc.body))
			if err == nil {
				t.Fatalf("accepted %q", tc.body)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestCheckIJSONAcceptsRealisticMetadata(t *testing.T) {
	cases := map[string]string{
		"registration with a jwks extension": `{
			"redirect_uris": ["https://app.example/cb", "com.example.app:/oauth2redirect"],
			"client_name": "Exemple \u00e9t\u00e9 \ud83d\ude00",
			"client_name#ja": "アプリ",
			"token_endpoint_auth_method": "client_secret_basic",
			"grant_types": ["authorization_code", "refresh_token"],
			"contacts": ["ops@app.example"],
			"jwks": {"keys": [{"kty": "EC", "crv": "P-256", "kid": "1", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
				"y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0", "x5c": ["MIIB", "MIIC"]}]},
			"x_limits": {"rate": 1.5e3, "burst": 10, "on": true, "note": null}
		}`,
		"exactly the depth limit":      nested(maxJSONDepth - 1),
		"exactly the array limit":      `{"contacts":` + stringArray(maxJSONArrayLen, "a@b.c") + `}`,
		"top-level scalar":             `"x"`,
		"the same name in two objects": `{"a":{"k":1},"b":{"k":1},"k":[{"k":1},{"k":2}]}`,
		"trailing whitespace":          "{}\r\n\t ",
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			if err := checkIJSON([]byte(body)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestRegisterRefusesHostileShapes sends bodies that fit within the body
// limit but that another JSON parser could choke on or read differently.
func TestRegisterRefusesHostileShapes(t *testing.T) {
	ts := newTestServer(t, Config{})
	cases := map[string]string{
		"6,000-level nested extension": `{"grant_types":["client_credentials"],"x":` +
			strings.Repeat("[", 6000) + strings.Repeat("]", 6000) + `}`,
		"5,000 contacts":         `{"grant_types":["client_credentials"],"contacts":` + stringArray(5000, "a@b.c") + `}`,
		"repeated redirect_uris": `{"redirect_uris":["https://a.example/cb"],"redirect_uris":["https://b.example/cb"]}`,
		"lone surrogate":         `{"grant_types":["client_credentials"],"client_name":"\ud800"}`,
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			w, m := ts.do("POST", "/oauth/register", "", "application/json", body)
			assertOAuthJSON(t, w, m, http.StatusBadRequest, "invalid_client_metadata")
		})
	}
	if list, _, _ := ts.store.Clients(t.Context(), "", 10); len(list) != 0 {
		t.Fatalf("refused requests stored %d clients", len(list))
	}
}
