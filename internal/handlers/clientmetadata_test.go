package handlers

import (
	"errors"
	"slices"
	"testing"
)

func TestValidateMetadata(t *testing.T) {
	cases := []struct {
		name   string
		body   string
		scopes []string
		want   *Error // nil: valid
		check  func(t *testing.T, r *metadataRequest)
	}{
		{name: "empty object gets defaults, then needs a redirect", body: `{}`, want: ErrInvalidClientMetadata},
		{name: "minimal web client", body: `{"redirect_uris":["https://app.example/cb"]}`,
			check: func(t *testing.T, r *metadataRequest) {
				m := r.meta
				if m.TokenEndpointAuthMethod != "client_secret_basic" || !slices.Equal(m.GrantTypes, []string{"authorization_code"}) ||
					!slices.Equal(m.ResponseTypes, []string{"code"}) {
					t.Fatalf("defaults: %+v", m)
				}
			}},
		{name: "client_credentials only gets no response types", body: `{"grant_types":["client_credentials"]}`,
			check: func(t *testing.T, r *metadataRequest) {
				if r.meta.ResponseTypes == nil || len(r.meta.ResponseTypes) != 0 || r.meta.RedirectURIs == nil {
					t.Fatalf("got %+v", r.meta)
				}
			}},
		{name: "nulls and empty strings mean not sent",
			body: `{"redirect_uris":null,"response_types":null,"client_name":"","grant_types":["client_credentials"],"logo_uri":null,"jwks":null}`,
			check: func(t *testing.T, r *metadataRequest) {
				if r.meta.ClientName != "" || r.meta.LogoURI != "" || r.meta.JWKS != nil {
					t.Fatalf("got %+v", r.meta)
				}
			}},
		// RFC 7591 §2: metadata the server does not understand is
		// ignored, and not echoed as if registered.
		{name: "unknown members dropped", body: `{"grant_types":["client_credentials"],"x_team":{"id":7},"client_name#fr":"Appli",` +
			`"dpop_bound_access_tokens":true,"require_pushed_authorization_requests":true,"userinfo_signed_response_alg":"RS256"}`,
			check: func(t *testing.T, r *metadataRequest) {
				if len(r.meta.Extra) != 0 {
					t.Fatalf("extras: %v", r.meta.Extra)
				}
			}},
		{name: "understood extensions kept", body: `{"grant_types":["client_credentials"],"id_token_signed_response_alg":"ES256","subject_type":"public"}`,
			check: func(t *testing.T, r *metadataRequest) {
				if string(r.meta.Extra["id_token_signed_response_alg"]) != `"ES256"` || string(r.meta.Extra["subject_type"]) != `"public"` || len(r.meta.Extra) != 2 {
					t.Fatalf("extras: %v", r.meta.Extra)
				}
			}},
		{name: "understood extension null means not sent", body: `{"grant_types":["client_credentials"],"id_token_signed_response_alg":null,"subject_type":""}`,
			check: func(t *testing.T, r *metadataRequest) {
				if len(r.meta.Extra) != 0 {
					t.Fatalf("extras: %v", r.meta.Extra)
				}
			}},
		{name: "ID tokens signed otherwise", body: `{"grant_types":["client_credentials"],"id_token_signed_response_alg":"HS256"}`, want: ErrInvalidClientMetadata},
		{name: "unsigned ID tokens", body: `{"grant_types":["client_credentials"],"id_token_signed_response_alg":"none"}`, want: ErrInvalidClientMetadata},
		{name: "pairwise subjects", body: `{"grant_types":["client_credentials"],"subject_type":"pairwise"}`, want: ErrInvalidClientMetadata},
		{name: "signing alg not a string", body: `{"grant_types":["client_credentials"],"id_token_signed_response_alg":["ES256"]}`, want: ErrInvalidClientMetadata},
		{name: "server members are not extensions",
			body: `{"grant_types":["client_credentials"],"client_id":"mine","registration_access_token":"x","client_id_issued_at":1}`,
			check: func(t *testing.T, r *metadataRequest) {
				if len(r.meta.Extra) != 0 || r.clientID != "mine" {
					t.Fatalf("extras %v, client_id %q", r.meta.Extra, r.clientID)
				}
			}},
		{name: "private-use scheme", body: `{"token_endpoint_auth_method":"none","redirect_uris":["com.example.app:/oauth2redirect"]}`},
		{name: "loopback IPv4 with a port", body: `{"token_endpoint_auth_method":"none","redirect_uris":["http://127.0.0.1:8080/cb"]}`},
		{name: "loopback IPv6 without a port", body: `{"token_endpoint_auth_method":"none","redirect_uris":["http://[::1]/cb"]}`},
		{name: "https", body: `{"redirect_uris":["https://app.example/cb"]}`},
		{name: "https with the largest port", body: `{"redirect_uris":["https://app.example:65535/cb"]}`},
		{name: "scheme case is ignored and kept", body: `{"redirect_uris":["HTTPS://app.example/cb","Com.Example.App:/cb","HTTP://LOCALHOST:1/cb"]}`,
			check: func(t *testing.T, r *metadataRequest) {
				if !slices.Equal(r.meta.RedirectURIs, []string{"HTTPS://app.example/cb", "Com.Example.App:/cb", "HTTP://LOCALHOST:1/cb"}) {
					t.Fatalf("stored %q", r.meta.RedirectURIs)
				}
			}},
		{name: "public native client", body: `{"token_endpoint_auth_method":"none","redirect_uris":["com.example.app:/oauth2redirect","http://127.0.0.1:49152/cb","http://[::1]/cb","http://localhost:3000/cb"]}`},
		{name: "duplicate values collapse", body: `{"grant_types":["client_credentials","client_credentials"],"scope":"a a b"}`,
			check: func(t *testing.T, r *metadataRequest) {
				if len(r.meta.GrantTypes) != 1 || r.meta.Scope != "a b" {
					t.Fatalf("got %+v", r.meta)
				}
			}},
		{name: "all URL fields", body: `{"redirect_uris":["https://a.example/cb"],"client_uri":"https://a.example","logo_uri":"https://a.example/l.png","tos_uri":"https://a.example/tos","policy_uri":"http://a.example/p","jwks_uri":"https://a.example/jwks","contacts":["ops@a.example"],"software_id":"x","software_version":"1.0"}`},
		{name: "jwks object", body: `{"grant_types":["client_credentials"],"jwks":{"keys":[{"kty":"OKP"}]}}`},

		{name: "malformed JSON", body: `{"redirect_uris":`, want: ErrInvalidClientMetadata},
		{name: "not an object", body: `["https://a.example/cb"]`, want: ErrInvalidClientMetadata},
		{name: "top-level null", body: `null`, want: ErrInvalidClientMetadata},
		{name: "trailing value", body: `{} {}`, want: ErrInvalidClientMetadata},
		{name: "redirect_uris not an array", body: `{"redirect_uris":"https://a.example/cb"}`, want: ErrInvalidClientMetadata},
		{name: "redirect_uris of numbers", body: `{"redirect_uris":[1]}`, want: ErrInvalidClientMetadata},
		{name: "client_name a number", body: `{"grant_types":["client_credentials"],"client_name":5}`, want: ErrInvalidClientMetadata},
		{name: "jwks a string", body: `{"grant_types":["client_credentials"],"jwks":"x"}`, want: ErrInvalidClientMetadata},
		{name: "jwks without keys", body: `{"grant_types":["client_credentials"],"jwks":{}}`, want: ErrInvalidClientMetadata},
		{name: "jwks and jwks_uri", body: `{"grant_types":["client_credentials"],"jwks":{"keys":[]},"jwks_uri":"https://a.example/j"}`, want: ErrInvalidClientMetadata},
		{name: "unknown auth method", body: `{"grant_types":["client_credentials"],"token_endpoint_auth_method":"private_key_jwt"}`, want: ErrInvalidClientMetadata},
		{name: "unknown grant", body: `{"grant_types":["implicit"],"response_types":["token"]}`, want: ErrInvalidClientMetadata},
		{name: "unknown response type", body: `{"redirect_uris":["https://a.example/cb"],"response_types":["code","token"]}`, want: ErrInvalidClientMetadata},
		{name: "code without authorization_code", body: `{"redirect_uris":["https://a.example/cb"],"grant_types":["client_credentials"],"response_types":["code"]}`, want: ErrInvalidClientMetadata},
		{name: "authorization_code without code", body: `{"redirect_uris":["https://a.example/cb"],"grant_types":["authorization_code"],"response_types":[]}`, want: ErrInvalidClientMetadata},
		{name: "empty grant types", body: `{"grant_types":[],"response_types":[]}`, want: ErrInvalidClientMetadata},
		{name: "authorization_code without redirect", body: `{"grant_types":["authorization_code"]}`, want: ErrInvalidClientMetadata},
		{name: "public client_credentials", body: `{"grant_types":["client_credentials"],"token_endpoint_auth_method":"none"}`, want: ErrInvalidClientMetadata},
		{name: "client_uri not http", body: `{"grant_types":["client_credentials"],"client_uri":"ftp://a.example"}`, want: ErrInvalidClientMetadata},
		{name: "logo_uri relative", body: `{"grant_types":["client_credentials"],"logo_uri":"/logo.png"}`, want: ErrInvalidClientMetadata},
		{name: "javascript tos_uri", body: `{"grant_types":["client_credentials"],"tos_uri":"javascript:alert(1)"}`, want: ErrInvalidClientMetadata},
		{name: "empty contact", body: `{"grant_types":["client_credentials"],"contacts":[" "]}`, want: ErrInvalidClientMetadata},
		{name: "scope with a quote", body: `{"grant_types":["client_credentials"],"scope":"a\"b"}`, want: ErrInvalidClientMetadata},

		{name: "relative redirect", body: `{"redirect_uris":["/cb"]}`, want: ErrInvalidRedirectURI},
		{name: "redirect with fragment", body: `{"redirect_uris":["https://a.example/cb#x"]}`, want: ErrInvalidRedirectURI},
		{name: "redirect with empty fragment", body: `{"redirect_uris":["https://a.example/cb#"]}`, want: ErrInvalidRedirectURI},
		{name: "javascript redirect", body: `{"redirect_uris":["javascript:alert(1)"]}`, want: ErrInvalidRedirectURI},
		{name: "data redirect", body: `{"redirect_uris":["data:text/html,hi"]}`, want: ErrInvalidRedirectURI},
		{name: "plain http to a remote host", body: `{"redirect_uris":["http://a.example/cb"]}`, want: ErrInvalidRedirectURI},
		{name: "plain http to a private address", body: `{"redirect_uris":["http://10.0.0.1/cb"]}`, want: ErrInvalidRedirectURI},
		{name: "https without host", body: `{"redirect_uris":["https:///cb"]}`, want: ErrInvalidRedirectURI},
		{name: "credentials in redirect", body: `{"redirect_uris":["https://u:p@a.example/cb"]}`, want: ErrInvalidRedirectURI},
		{name: "one bad redirect among good", body: `{"redirect_uris":["https://a.example/cb","http://evil.example/cb"]}`, want: ErrInvalidRedirectURI},
		{name: "websocket redirect", body: `{"redirect_uris":["ws://x.example/cb"]}`, want: ErrInvalidRedirectURI},
		{name: "ftp redirect", body: `{"redirect_uris":["ftp://x.example/cb"]}`, want: ErrInvalidRedirectURI},
		{name: "mailto redirect", body: `{"redirect_uris":["mailto:a@x.example"]}`, want: ErrInvalidRedirectURI},
		{name: "browser scheme wrapping https", body: `{"redirect_uris":["microsoft-edge:https://x.example"]}`, want: ErrInvalidRedirectURI},
		{name: "view-source redirect", body: `{"redirect_uris":["view-source:https://x.example"]}`, want: ErrInvalidRedirectURI},
		{name: "jar redirect", body: `{"redirect_uris":["jar:https://x.example!/"]}`, want: ErrInvalidRedirectURI},
		{name: "vbscript redirect", body: `{"redirect_uris":["vbscript:msgbox(1)"]}`, want: ErrInvalidRedirectURI},
		{name: "private-use scheme without a dot", body: `{"redirect_uris":["myapp:/cb"]}`, want: ErrInvalidRedirectURI},
		{name: "private-use scheme with an empty label", body: `{"redirect_uris":["com..app:/cb"]}`, want: ErrInvalidRedirectURI},
		{name: "private-use scheme alone", body: `{"redirect_uris":["com.example.app:"]}`, want: ErrInvalidRedirectURI},
		{name: "credentials in a private-use redirect", body: `{"redirect_uris":["com.example.app://u@host/cb"]}`, want: ErrInvalidRedirectURI},
		{name: "trailing space", body: `{"redirect_uris":["https://x.example/cb "]}`, want: ErrInvalidRedirectURI},
		{name: "leading space", body: `{"redirect_uris":[" https://x.example/cb"]}`, want: ErrInvalidRedirectURI},
		{name: "tab inside", body: `{"redirect_uris":["https://x.example/c\tb"]}`, want: ErrInvalidRedirectURI},
		{name: "line break inside", body: `{"redirect_uris":["https://x.example/cb\n"]}`, want: ErrInvalidRedirectURI},
		{name: "C1 control character", body: `{"redirect_uris":["https://x.example/\u0085cb"]}`, want: ErrInvalidRedirectURI},
		{name: "no-break space", body: `{"redirect_uris":["https://x.example/\u00a0cb"]}`, want: ErrInvalidRedirectURI},
		{name: "port 0", body: `{"redirect_uris":["http://127.0.0.1:0/cb"]}`, want: ErrInvalidRedirectURI},
		{name: "port above 65535", body: `{"redirect_uris":["http://127.0.0.1:99999/cb"]}`, want: ErrInvalidRedirectURI},
		{name: "https port above 65535", body: `{"redirect_uris":["https://x.example:65536/cb"]}`, want: ErrInvalidRedirectURI},
		{name: "empty port", body: `{"redirect_uris":["http://127.0.0.1:/cb"]}`, want: ErrInvalidRedirectURI},
		{name: "user in a loopback redirect", body: `{"redirect_uris":["http://user@127.0.0.1:9999/callback"]}`, want: ErrInvalidRedirectURI},
		{name: "empty userinfo", body: `{"redirect_uris":["https://@x.example/cb"]}`, want: ErrInvalidRedirectURI},

		{name: "scope within the supported list", scopes: []string{"read", "write"}, body: `{"grant_types":["client_credentials"],"scope":"read"}`},
		{name: "no scope gets every supported scope", scopes: []string{"read", "write"}, body: `{"grant_types":["client_credentials"]}`,
			check: func(t *testing.T, r *metadataRequest) {
				if r.meta.Scope != "read write" {
					t.Fatalf("scope %q", r.meta.Scope)
				}
			}},
		{name: "scope outside the supported list", scopes: []string{"read"}, body: `{"grant_types":["client_credentials"],"scope":"read admin"}`, want: ErrInvalidClientMetadata},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, err := parseMetadata([]byte(tc.body))
			if err == nil {
				err = metadataPolicy{scopes: tc.scopes}.validateMetadata(&req.meta)
			}
			if tc.want == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if tc.check != nil {
					tc.check(t, req)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted; want %s", tc.want.Code)
			}
			if !errors.Is(err, tc.want) || err.Description == "" {
				t.Fatalf("got %v; want %s with a description", err, tc.want.Code)
			}
		})
	}
}

// TestCheckRedirectURIRefusesWhatJSONCannotCarry covers inputs that reach
// checkRedirectURI from a query string rather than a JSON body: raw control
// bytes and invalid UTF-8.
func TestCheckRedirectURIRefusesWhatJSONCannotCarry(t *testing.T) {
	for _, raw := range []string{
		"https://x.example/cb\x00", "https://x.example/\x7fcb", "https://x.example/\xffcb",
		"https://x.example/cb\r\n", "\x0bhttps://x.example/cb", "https://x.example/\u2028cb",
	} {
		if err := checkRedirectURI(raw); err == nil {
			t.Errorf("accepted %q", raw)
		}
	}
}

func TestSoftwareStatement(t *testing.T) {
	if err := checkSoftwareStatement("not-a-jwt"); !errors.Is(err, ErrInvalidSoftwareStatement) {
		t.Fatalf("malformed: %v", err)
	}
	// {"alg":"none"} . {"software_id":"x"} . (empty signature)
	jwt := "eyJhbGciOiJub25lIn0.eyJzb2Z0d2FyZV9pZCI6IngifQ."
	if err := checkSoftwareStatement(jwt); !errors.Is(err, ErrUnapprovedSoftwareStatement) {
		t.Fatalf("well-formed: %v", err)
	}
}

func TestParseBearer(t *testing.T) {
	cases := map[string]string{
		"Bearer abc":          "abc",
		"bearer abc":          "abc",
		"BEARER  a.b-c_d~+/=": "a.b-c_d~+/=",
		"Bearer abc==":        "abc==",
		"Bearer ":             "",
		"Bearer":              "",
		"Basic abc":           "",
		"Bearer a b":          "",
		"Bearer =abc":         "",
		"Bearer ab=c":         "",
		"Bearer \tabc":        "",
		"":                    "",
	}
	for in, want := range cases {
		got, ok := parseBearer(in)
		if got != want || ok != (want != "") {
			t.Errorf("parseBearer(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
}
