package handlers

import (
	"encoding/base64"
	"testing"
)

func TestParseBasicDecodesBothHalves(t *testing.T) {
	enc := func(s string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(s)) }
	cases := []struct{ header, id, secret string }{
		{enc("abc:def"), "abc", "def"},
		{enc("a%3Ab:c%2Bd"), "a:b", "c+d"},
		{enc("a+b:c"), "a b", "c"},
		{enc("pub:"), "pub", ""},
		{"basic " + base64.StdEncoding.EncodeToString([]byte("x:y")), "x", "y"},
	}
	for _, tc := range cases {
		id, secret, ok := parseBasic(tc.header)
		if !ok || id != tc.id || secret != tc.secret {
			t.Errorf("parseBasic(%q) = %q %q %v", tc.header, id, secret, ok)
		}
	}
	for _, bad := range []string{"Basic !!!", enc("nocolon"), enc(":secret"), enc("a%zz:b"), "Bearer abc"} {
		if _, _, ok := parseBasic(bad); ok {
			t.Errorf("parseBasic(%q) accepted", bad)
		}
	}
}

// A client id never starts with "-" (an option to a command line) or "_".
func TestClientIDStartsWithALetterOrDigit(t *testing.T) {
	for range 5000 {
		id := newClientID()
		if len(id) != 22 || id[0] == '-' || id[0] == '_' {
			t.Fatalf("client id %q", id)
		}
	}
}
