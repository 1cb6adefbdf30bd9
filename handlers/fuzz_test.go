package handlers

import (
	"encoding/json"
	"testing"
)

// FuzzMetadata drives registration metadata parsing and validation with
// arbitrary bodies. Whatever the input, the parser must not panic, an
// accepted body must encode to JSON without nulls that decodes again, and a
// refusal must be one of the RFC 7591 error codes.
func FuzzMetadata(f *testing.F) {
	for _, seed := range []string{
		`{}`,
		`{"redirect_uris":["https://a.example/cb"],"client_name":"A","scope":"read write"}`,
		`{"grant_types":["client_credentials"],"token_endpoint_auth_method":"client_secret_post","x":{"y":[1,null]}}`,
		`{"redirect_uris":null,"response_types":null,"client_name":""}`,
		`{"token_endpoint_auth_method":"none","redirect_uris":["http://[::1]:8080/cb","com.example:/cb"]}`,
		`{"jwks":{"keys":[]},"grant_types":["client_credentials"]}`,
		`{"redirect_uris":["javascript:alert(1)"]}`,
		`[1,2]`, `null`, `"x"`, `{"a":`,
	} {
		f.Add([]byte(seed))
	}
	pol := metadataPolicy{scopes: []string{"read", "write"}}
	codes := map[string]bool{
		"invalid_client_metadata": true, "invalid_redirect_uri": true,
		"invalid_software_statement": true, "unapproved_software_statement": true,
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, oerr := parseMetadata(body)
		if oerr == nil {
			oerr = pol.validateMetadata(&req.meta)
		}
		if oerr != nil {
			if !codes[oerr.Code] || oerr.Status != 400 {
				t.Fatalf("unexpected error %v (status %d)", oerr, oerr.Status)
			}
			return
		}
		out, err := json.Marshal(req.meta)
		if err != nil {
			t.Fatalf("accepted metadata does not encode: %v", err)
		}
		var back map[string]any
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("encoded metadata does not decode: %v\n%s", err, out)
		}
		for k, v := range back {
			if v == nil {
				t.Fatalf("%s encoded as null: %s", k, out)
			}
		}
		for _, u := range req.meta.RedirectURIs {
			if checkRedirectURI(u) != nil {
				t.Fatalf("accepted bad redirect URI %q", u)
			}
		}
	})
}

// FuzzParseBearer checks that whatever the Authorization header holds, an
// accepted token is a non-empty b64token.
func FuzzParseBearer(f *testing.F) {
	for _, seed := range []string{"Bearer abc", "bearer a.b.c", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer a==", "Bearer  x"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, v string) {
		token, ok := parseBearer(v)
		if ok != (token != "") {
			t.Fatalf("ok=%v with token %q", ok, token)
		}
		if ok && !isB64Token(token) {
			t.Fatalf("accepted %q", token)
		}
	})
}
