// Run by integration/oauth4webapi_test.go: oauth4webapi does OpenID
// Connect discovery against caddy-dcr, validates the authorization
// response, exchanges the code and validates the ID token
// (processAuthorizationCodeResponse with the expected nonce). It prints the
// validated claims as JSON, or exits 1 with the library's error.
import * as oauth from 'oauth4webapi'

const [issuerURL, clientId, redirectUri, callbackURL, verifier, nonce, state] = process.argv.slice(2)
const insecure = { [oauth.allowInsecureRequests]: true } // the test server is plain http on loopback
try {
  const issuer = new URL(issuerURL)
  const as = await oauth.processDiscoveryResponse(issuer,
    await oauth.discoveryRequest(issuer, { ...insecure, algorithm: 'oidc' }))
  const client = { client_id: clientId }
  const params = oauth.validateAuthResponse(as, client, new URL(callbackURL), state)
  const response = await oauth.authorizationCodeGrantRequest(as, client, oauth.None(), params, redirectUri, verifier, insecure)
  const result = await oauth.processAuthorizationCodeResponse(as, client, response, { expectedNonce: nonce, requireIdToken: true })
  console.log(JSON.stringify({ claims: oauth.getValidatedIdTokenClaims(result), scope: result.scope }))
} catch (err) {
  console.error(`${err.name}: ${err.message}${err.code ? ` (${err.code})` : ''}`)
  process.exit(1)
}
