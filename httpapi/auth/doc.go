// Package auth mints and verifies Troupe's tokens: HS256 JWTs signed with an
// API secret and naming the API key in "iss". Admin tokens carry admin=true
// and open the REST API; join tokens name one room, one identity and a role,
// may carry grants (changes to the role's preset) and the participant's
// metadata, and open signaling, WHIP and WHEP for that room. A grant this
// package does not know makes a token invalid.
//
// It knows nothing of HTTP: httpapi reads the bearer token and maps the
// errors here to status codes.
package auth
