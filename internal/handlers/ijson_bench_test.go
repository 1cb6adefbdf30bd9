package handlers

import "testing"

// BenchmarkCheckIJSON measures checkIJSON on what it sees most: the header
// and claims of an access token (on the gate's path, once per new token)
// and, less often, a registration body.
func BenchmarkCheckIJSON(b *testing.B) {
	cases := []struct{ name, body string }{
		{"jwt-header", `{"alg":"ES256","kid":"k-2025-06-01T00:00:00Z","typ":"at+jwt"}`},
		{"jwt-claims", `{"aud":"https://api.example.com","client_id":"c_9f3a1c2e7b4d4e0f","exp":1767225600,` +
			`"fam":"f_0a1b2c3d4e5f","iat":1767222000,"iss":"https://auth.example.com","jti":"t_5d41402abc4b2a76b9719d911017c592",` +
			`"scope":"read:orders write:orders","sub":"c_9f3a1c2e7b4d4e0f"}`},
		{"registration", `{
			"redirect_uris": ["https://app.example/cb", "com.example.app:/oauth2redirect"],
			"client_name": "Exemple \u00e9t\u00e9 \ud83d\ude00",
			"client_name#ja": "アプリ",
			"client_uri": "https://app.example/",
			"logo_uri": "https://app.example/logo.png",
			"token_endpoint_auth_method": "private_key_jwt",
			"grant_types": ["authorization_code", "refresh_token"],
			"response_types": ["code"],
			"scope": "openid profile email offline_access",
			"contacts": ["ops@app.example", "security@app.example"],
			"software_id": "4NRB1-0XZABZI9E6-5SM3R",
			"software_version": "2.1.0",
			"jwks": {"keys": [{"kty": "EC", "crv": "P-256", "kid": "1", "use": "sig", "alg": "ES256",
				"x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
				"y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0", "x5c": ["MIIB", "MIIC"]}]},
			"x_limits": {"rate": 1.5e3, "burst": 10, "on": true, "note": null}
		}`},
	}
	for _, tc := range cases {
		body := []byte(tc.body)
		if err := checkIJSON(body); err != nil {
			b.Fatalf("%s: %v", tc.name, err)
		}
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if checkIJSON(body) != nil {
					b.Fatal("refused")
				}
			}
		})
	}
}
