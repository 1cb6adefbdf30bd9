package handlers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
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

// ijsonTrickyCases are texts on which a hand-written scanner may part from
// encoding/json.
var ijsonTrickyCases = []string{
	// Member names spelled two ways.
	`{"a":1,"\u0061":2}`, `{"\u0061":1,"a":2}`, `{"\u0061":1,"\u0041":2}`, `{"\/":1,"/":2}`,
	`{"\u00e9":1,"é":2}`, `{"\u00E9":1,"\u00e9":2}`, `{"\ud83d\ude00":1,"😀":2}`, `{"\n":1,"\u000a":2}`,
	`{"\"":1,"\u0022":2}`, `{"\\":1,"\u005c":2}`, `{"ab":1,"a\u0062c":2}`, `{"a":1,"a\u0000":2}`,
	`{"a":{"a":1},"a":2}`, `{"a":[{"a":1,"a":2}]}`, `{"a":{},"b":{"a":1,"b":2},"a":3}`,
	// Surrogates.
	`"\ud83d\ude00"`, `"\ud83d"`, `"\ude00"`, `"\ude00\ud83d"`, `"\ud83d\ud83d\ude00"`, `"\ud83dx"`,
	`"\ud83d\u0041"`, `"\ud83d\uZZZZ"`, `"\ud83d\ude0"`, `"\ud83d\`, `"\ud83d\u`, `"\uDBFF\uDFFF"`, `"\uD800\uDC00"`,
	`"\ufffd"`, `"\uFFFD"`, "\"\xef\xbf\xbd\"", "\"\xef\xbf\xbe\"", `"\u0000"`, `"\u0000\ud800"`, `"\ud800\u0000"`,
	`"\u0000\x"`, `"\ud800\q"`, `"\u0000`, `{"\u0000":1,"\u0000":2}`, `{"\ud800":1,"\udc00":2}`,
	// Escapes and raw characters.
	`"\b\f\n\r\t\/\\\""`, `"\'"`, `"\a"`, `"\U0041"`, `"\u004"`, `"\u004g"`, "\"\x01\"", "\"\x1f\"", "\"\x7f\"",
	"\"a\tb\"", "\"\x00\"", `"`, `"\`, `"abc`,
	// Numbers.
	`1e400`, `-1e400`, `1e308`, `1.7976931348623157e308`, `1.7976931348623159e308`, `-0`, `0.1e-5`, `1e-400`,
	`-0.0e-400`, `0`, `-`, `--1`, `+1`, `01`, `-01`, `00`, `1.`, `.1`, `1.e5`, `1e`, `1e+`, `1E-2`, `1e05`,
	`[1e400]`, `[01]`, `[1.]`, `[-]`, `[1e]`, `{"a":1e400}`, `{"a":-}`, `1x`, `[1x]`, `123abc`, `0x10`,
	"1" + strings.Repeat("0", 308), "1" + strings.Repeat("0", 309), "0." + strings.Repeat("0", 400) + "1",
	strings.Repeat("9", 400) + ".5", "1" + strings.Repeat("0", 400) + "e-100", "0e" + strings.Repeat("9", 30),
	// Literals.
	`true`, `false`, `null`, `tru`, `nul`, `truex`, `[truex]`, `[true,false,null]`, `nulll`, `True`, `[t]`,
	// Structure.
	``, ` `, "\t\r\n", "\f1", "\v1", "\u00a01", `{`, `[`, `{}`, `[]`, `{ }`, `[ ]`, `{,}`, `[,]`, `[1,]`, `{"a":1,}`,
	`{"a"}`, `{"a":}`, `{"a" 1}`, `{"a"::1}`, `{1:2}`, `{"a":1 "b":2}`, `[1 2]`, `[1:2]`, `{"a":1]`, `[1}`, `}`, `]`,
	`{} {}`, `{}}`, `[]]`, `{}x`, `"x"y`, `1 2`, `{}` + "\n\t ", `{"a":[1,2,3],"b":{"c":[]}}`, `{"":1}`, `{"":1,"":2}`,
	`{"":"\u0000"}`, `["\u0000"]`, `{"a":["\u0000"]}`, `{"a":[["\ud800"]]}`, `{"a":{"":"\ufffd"}}`,
	// Depth and length.
	nested(maxJSONDepth - 1), nested(maxJSONDepth), nested(6000), strings.Repeat("[", 10) + strings.Repeat("]", 10),
	strings.Repeat("[", 11) + strings.Repeat("]", 11), strings.Repeat("[", 11), strings.Repeat(`{"a":`, 10) + "1" + strings.Repeat("}", 10),
	stringArray(maxJSONArrayLen, "a"), stringArray(maxJSONArrayLen+1, "a"), `{"x":` + stringArray(maxJSONArrayLen+1, `\u0000`) + `}`,
	"[" + strings.Repeat("1,", 100) + "1e400]", "[" + strings.Repeat("1,", 100) + "[]]", "[" + strings.Repeat("1,", 100) + "1x]",
	"[" + strings.Repeat("1,", 100) + "]", "[" + strings.Repeat("1,", 99) + "1]", `{"a":[` + strings.Repeat("[", 9) + strings.Repeat("]", 9) + "]}",
	// UTF-8.
	"\xff", "\"\xc0\x80\"", "\"\xed\xa0\x80\"", "{\"a\":1}\xc0", "{\"é\":1,\"é\":2}", "{\"é\":1}",
	"\xef\xbf\xbd", "[\"a\",\xe2\x80\xa8]",
}

// manyMembers returns an object of n members named m0, m1, … whose last
// member is named last; each name with escape spelt with \u escapes.
func manyMembers(n int, last string, escape func(int) bool) string {
	var sb strings.Builder
	sb.WriteByte('{')
	for i := range n {
		name := "m" + strconv.Itoa(i)
		if escape != nil && escape(i) {
			name = fmt.Sprintf(`\u%04x`, 'm') + name[1:]
		}
		fmt.Fprintf(&sb, `"%s":{"m0":%d},`, name, i)
	}
	sb.WriteString(`"` + last + `":0}`)
	return sb.String()
}

// TestCheckIJSONMatchesReference holds checkIJSON to checkIJSONReference
// on the tricky cases, including objects of more members than checkIJSON
// compares pairwise.
func TestCheckIJSONMatchesReference(t *testing.T) {
	cases := append([]string(nil), ijsonTrickyCases...)
	odd := func(i int) bool { return i%2 == 1 }
	for _, n := range []int{smallObjectMembers - 1, smallObjectMembers, smallObjectMembers + 1, 3 * smallObjectMembers} {
		for _, last := range []string{"z", "m0", `\u006d0`, "m" + strconv.Itoa(n-1), `m\u0031`, "m" + strconv.Itoa(n)} {
			cases = append(cases, manyMembers(n, last, nil), manyMembers(n, last, odd))
		}
		cases = append(cases, `{"a":`+manyMembers(n, "z", odd)+`,"b":`+manyMembers(n, "m1", nil)+`,"a":0}`)
	}
	for _, body := range cases {
		assertIJSONAgrees(t, []byte(body))
	}
}

// TestCheckIJSONDoesNotAllocate keeps the gate's path free of allocations.
func TestCheckIJSONDoesNotAllocate(t *testing.T) {
	for _, body := range []string{
		`{"alg":"ES256","kid":"k1","typ":"at+jwt"}`,
		`{"aud":"https://api.example","client_id":"c1","exp":1767225600,"iat":1767222000,"iss":"https://as.example",` +
			`"jti":"t1","nbf":1767222000,"scope":"read write","sub":"c1","x":[1.5e3,-0,true,null,"\u00e9\ud83d\ude00"]}`,
		manyMembers(smallObjectMembers-1, "z", func(i int) bool { return i%2 == 1 }),
		nested(maxJSONDepth - 1),
	} {
		b := []byte(body)
		if n := testing.AllocsPerRun(100, func() {
			if err := checkIJSON(b); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("%d allocations checking %.40s", int(n), body)
		}
	}
}

// FuzzIJSONDifferential checks that checkIJSON accepts exactly what
// checkIJSONReference accepts, and refuses the rest for the same kind of
// reason.
func FuzzIJSONDifferential(f *testing.F) {
	for _, seed := range append([]string{
		`{"redirect_uris":["https://a.example/cb"],"jwks":{"keys":[{"kty":"EC","x5c":["MIIB"]}]}}`,
		`{"a":1,"a":2}`, `{"a":{"b":1},"b":{"a":1}}`, `[[[[[[[[[[1]]]]]]]]]]`,
		`{"a":"\ud800"}`, `{"\u0000":0}`, `"x"`, `1e400`, `{} {}`, `{"a":[1,2,}`,
	}, ijsonTrickyCases...) {
		if len(seed) <= 2048 { // long ones slow the fuzzer down; the test above has them
			f.Add([]byte(seed))
		}
	}
	f.Fuzz(assertIJSONAgrees)
}

// assertIJSONAgrees fails unless checkIJSON and checkIJSONReference agree
// on b: both accept it, or both refuse it for the same kind of reason.
func assertIJSONAgrees(t *testing.T, b []byte) {
	t.Helper()
	got, want := checkIJSON(b), checkIJSONReference(b)
	if (got == nil) != (want == nil) {
		t.Fatalf("%q: checkIJSON says %v, the reference %v", b, got, want)
	}
	if got != nil && ijsonErrorKind(got) != ijsonErrorKind(want) {
		t.Fatalf("%q: checkIJSON refuses with %q, the reference with %q", b, got, want)
	}
}

// ijsonErrorKind names the kind of a checkIJSON error, whatever member
// names it quotes.
func ijsonErrorKind(err error) string {
	msg := err.Error()
	for _, kind := range []string{
		"a string holds U+0000", "as an invalid escape decodes", "is repeated",
		"levels", "elements", "too large for a double",
	} {
		if strings.HasSuffix(msg, kind) {
			return kind
		}
	}
	for _, kind := range []string{
		"the JSON text is not valid UTF-8", "there is no JSON value", "there is data after the JSON value",
	} {
		if msg == kind {
			return kind
		}
	}
	if strings.HasPrefix(msg, "not valid JSON: ") {
		return "syntax"
	}
	return msg
}

// refJSONContainer is one open object or array while checkIJSONReference
// walks a text.
type refJSONContainer struct {
	object  bool
	name    string // the latest member name (objects) or the array's own, for errors
	names   map[string]struct{}
	n       int  // elements so far (arrays)
	wantKey bool // the next token is a member name (objects)
}

// checkIJSONReference is checkIJSON as it was first written, on
// encoding/json's Decoder.Token, which allocates for every token: the
// reference FuzzIJSONDifferential holds the scanner to.
//
// It returns an error unless b is one JSON value in the I-JSON
// profile of RFC 7493 and of a shape encoding/json handles cheaply. It
// refuses invalid UTF-8 (§2.1); strings holding U+0000, or U+FFFD, which
// encoding/json puts in place of a lone surrogate escape (§2.1 forbids
// surrogates; neither character has a use in metadata); a member name
// repeated in any object (§2.3), which parsers resolve differently; a
// number beyond a double (§2.2); nesting deeper than maxJSONDepth; an array
// longer than maxJSONArrayLen; and data after the value.
func checkIJSONReference(b []byte) error {
	if !utf8.Valid(b) {
		return errors.New("the JSON text is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var stack []*refJSONContainer
	for {
		tok, err := dec.Token()
		if err == io.EOF && len(stack) == 0 {
			return errors.New("there is no JSON value")
		}
		if err == io.EOF {
			return errors.New("not valid JSON: the text ends inside a value")
		}
		if err != nil {
			return fmt.Errorf("not valid JSON: %w", err)
		}
		var top *refJSONContainer
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			stack = stack[:len(stack)-1]
		} else if top != nil && top.object && top.wantKey {
			// Token returns only strings here.
			name := tok.(string)
			if err := refCheckJSONString(name); err != nil {
				return fmt.Errorf("member name %q: %w", name, err)
			}
			if _, dup := top.names[name]; dup {
				return fmt.Errorf("member %q is repeated", name)
			}
			if top.names == nil {
				top.names = make(map[string]struct{})
			}
			top.names[name] = struct{}{}
			top.name, top.wantKey = name, false
			continue
		} else {
			name := ""
			if top != nil {
				name = top.name
				if top.object {
					top.wantKey = true
				} else if top.n++; top.n > maxJSONArrayLen {
					if name != "" {
						return fmt.Errorf("%q has more than %d elements", name, maxJSONArrayLen)
					}
					return fmt.Errorf("an array has more than %d elements", maxJSONArrayLen)
				}
			}
			switch v := tok.(type) {
			case json.Delim:
				if len(stack) == maxJSONDepth {
					return fmt.Errorf("the JSON value is nested deeper than %d levels", maxJSONDepth)
				}
				stack = append(stack, &refJSONContainer{object: v == '{', wantKey: v == '{', name: name})
			case string:
				if err := refCheckJSONString(v); err != nil {
					if name != "" {
						return fmt.Errorf("member %q: %w", name, err)
					}
					return err
				}
			case json.Number:
				// §2.2: a number must fit an IEEE 754 double, or
				// encoding/json fails to decode it later.
				if _, err := strconv.ParseFloat(string(v), 64); err != nil {
					return fmt.Errorf("the number %.20s is too large for a double", v)
				}
			}
		}
		if len(stack) == 0 {
			break
		}
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("there is data after the JSON value")
	}
	return nil
}

// refCheckJSONString refuses the characters checkIJSONReference does not
// accept in a decoded string.
func refCheckJSONString(s string) error {
	if strings.IndexByte(s, 0) >= 0 {
		return errors.New("a string holds U+0000")
	}
	if strings.ContainsRune(s, utf8.RuneError) {
		return errors.New("a string holds U+FFFD, as an invalid escape decodes")
	}
	return nil
}
