package auth

import (
	"bytes"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Role is what a join token allows in its room.
type Role string

const (
	RolePublisher  Role = "publisher"
	RoleSubscriber Role = "subscriber"
	RoleModerator  Role = "moderator"
)

// ParseRole returns the role named s, or an error naming the valid ones.
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case RolePublisher, RoleSubscriber, RoleModerator:
		return r, nil
	}
	return "", fmt.Errorf("role must be publisher, subscriber or moderator, not %q", s)
}

// MinSecretLen is the shortest API secret accepted: HS256 wants at least 256 bits.
const MinSecretLen = 32

// Key is an API key (public, the token issuer) and its secret.
type Key struct {
	ID     string `json:"api_key"`
	Secret string `json:"api_secret"`
}

// Validate reports whether k can sign tokens.
func (k Key) Validate() error {
	if k.ID == "" {
		return fmt.Errorf("%w: empty api key", ErrInvalidKey)
	}
	if len(k.Secret) < MinSecretLen {
		return fmt.Errorf("%w: api secret shorter than %d bytes", ErrInvalidKey, MinSecretLen)
	}
	return nil
}

// GenerateKey returns a new random key pair.
func GenerateKey() (Key, error) {
	id, err := randomString(10)
	if err != nil {
		return Key{}, err
	}
	secret, err := randomString(32)
	if err != nil {
		return Key{}, err
	}
	return Key{ID: "TK" + id, Secret: secret}, nil
}

func randomString(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("auth: random: %w", err)
	}
	return base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b), nil
}

// Claims are the claims Troupe reads. Admin tokens set Admin; join tokens set
// Room, Subject (the participant identity), Name and Role, and may set
// AutoSubscribe, Grants and Metadata.
type Claims struct {
	Admin bool   `json:"admin,omitempty"`
	Room  string `json:"room,omitempty"`
	Name  string `json:"name,omitempty"`
	Role  Role   `json:"role,omitempty"`
	// Grants change the role's preset field by field; nil: the preset.
	Grants *Grants `json:"grants,omitempty"`
	// Metadata is the participant's own, for the others to read.
	Metadata string `json:"metadata,omitempty"`
	// AutoSubscribe false has the participant receive only the tracks it
	// subscribes to; absent (nil) or true, it receives every track.
	AutoSubscribe *bool `json:"auto_subscribe,omitempty"`
	jwt.RegisteredClaims
}

// Subscribes reports whether a join token's participant subscribes to
// every track of its room by itself: unless auto_subscribe says false.
func (c *Claims) Subscribes() bool { return c.AutoSubscribe == nil || *c.AutoSubscribe }

// Grants are what a join token allows beyond (or short of) its role: each
// field set replaces the role's. The source names are checked where they
// are used; a grant this version does not know makes the token invalid,
// rather than one that silently grants less, or more, than its issuer
// meant.
type Grants struct {
	Publish *bool `json:"publish,omitempty"`
	// PublishSources names the sources a publisher may publish: camera,
	// microphone, screen_share, screen_share_audio.
	PublishSources []string `json:"publish_sources,omitempty"`
	Subscribe      *bool    `json:"subscribe,omitempty"`
	PublishData    *bool    `json:"publish_data,omitempty"`
	Hidden         *bool    `json:"hidden,omitempty"`
}

// UnmarshalJSON refuses grants it does not know.
func (g *Grants) UnmarshalJSON(b []byte) error {
	type plain Grants // without this method
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var v plain
	if err := dec.Decode(&v); err != nil {
		return fmt.Errorf("grants: %w", err)
	}
	*g = Grants(v)
	return nil
}

// IsJoin reports whether c is a join token (for one room).
func (c *Claims) IsJoin() bool { return c.Room != "" && c.Subject != "" }

// AdminClaims returns claims for an admin token valid for ttl from now.
func AdminClaims(now time.Time, ttl time.Duration) Claims {
	return Claims{Admin: true, RegisteredClaims: jwt.RegisteredClaims{
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
	}}
}

// JoinClaims returns claims for a join token to room as identity.
func JoinClaims(now time.Time, ttl time.Duration, room, identity, name string, role Role) Claims {
	return Claims{Room: room, Name: name, Role: role, RegisteredClaims: jwt.RegisteredClaims{
		Subject:   identity,
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
	}}
}

// Mint signs c with k, setting iss to the key id.
func Mint(k Key, c Claims) (string, error) {
	if err := k.Validate(); err != nil {
		return "", err
	}
	if c.ExpiresAt == nil {
		return "", fmt.Errorf("%w: exp is required", ErrInvalidToken)
	}
	c.Issuer = k.ID
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(k.Secret))
}

// DefaultMaxLifetime is VerifierConfig.MaxLifetime's default: 30 days.
const DefaultMaxLifetime = 30 * 24 * time.Hour

// MinMaxLifetime is the shortest VerifierConfig.MaxLifetime. Tokens live
// whole seconds from a time cut to the second, and a client needs a while
// to use one: under a minute, the tokens minted by default would be dead
// on arrival, and no ttl a token request may ask for would be left.
const MinMaxLifetime = time.Minute

// CutLifetime is a default lifetime cut to maxLifetime (0 meaning
// DefaultMaxLifetime), so that a token minted by default is one a
// Verifier with that MaxLifetime accepts. A lifetime asked for explicitly
// is not cut but refused when longer.
func CutLifetime(ttl, maxLifetime time.Duration) time.Duration {
	if maxLifetime <= 0 {
		maxLifetime = DefaultMaxLifetime
	}
	return min(ttl, maxLifetime)
}

// Leeway is how far the clocks of a token's minter and its verifier may
// disagree: on exp, nbf and iat.
const Leeway = 5 * time.Second

// VerifierConfig configures a Verifier; its zero value is the default.
type VerifierConfig struct {
	// MaxLifetime refuses a token whose exp is further ahead than this:
	// a leaked token that would never expire is worth refusing even when
	// it is signed with a valid key. 0 means DefaultMaxLifetime; else at
	// least MinMaxLifetime.
	MaxLifetime time.Duration
}

// Verifier checks tokens against a set of keys.
type Verifier struct {
	secrets     map[string][]byte
	parser      *jwt.Parser
	maxLifetime time.Duration
}

// NewVerifier returns a verifier with the default VerifierConfig that
// accepts tokens signed by any of keys.
func NewVerifier(keys ...Key) (*Verifier, error) {
	return NewVerifierWith(VerifierConfig{}, keys...)
}

// NewVerifierWith returns a verifier configured by cfg that accepts tokens
// signed by any of keys.
func NewVerifierWith(cfg VerifierConfig, keys ...Key) (*Verifier, error) {
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: no keys", ErrInvalidKey)
	}
	if cfg.MaxLifetime < 0 || (cfg.MaxLifetime > 0 && cfg.MaxLifetime < MinMaxLifetime) {
		return nil, fmt.Errorf("auth: VerifierConfig.MaxLifetime %v: must be 0 (the default) or at least %v", cfg.MaxLifetime, MinMaxLifetime)
	}
	if cfg.MaxLifetime == 0 {
		cfg.MaxLifetime = DefaultMaxLifetime
	}
	v := &Verifier{
		secrets:     make(map[string][]byte, len(keys)),
		maxLifetime: cfg.MaxLifetime,
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(), // an iat ahead of now (beyond Leeway) is refused
			jwt.WithLeeway(Leeway),
		),
	}
	for _, k := range keys {
		if err := k.Validate(); err != nil {
			return nil, err
		}
		v.secrets[k.ID] = []byte(k.Secret)
	}
	return v, nil
}

// MaxLifetime is how far ahead a token's exp may be.
func (v *Verifier) MaxLifetime() time.Duration { return v.maxLifetime }

// Verify parses token and returns its claims. Errors are *RefusedError,
// wrapping ErrInvalidToken or ErrExpiredToken.
func (v *Verifier) Verify(token string) (*Claims, error) {
	var c Claims
	t, err := v.parser.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		iss, _ := t.Claims.GetIssuer()
		secret, ok := v.secrets[iss]
		if !ok {
			return nil, errUnknownIssuer
		}
		return secret, nil
	})
	if err != nil {
		return nil, refusal(err, &c)
	}
	if err := v.numericDates(t); err != nil {
		return nil, err
	}
	if ahead := time.Until(c.ExpiresAt.Time); ahead > v.maxLifetime+Leeway {
		return nil, refused(ErrInvalidToken, fmt.Sprintf("its exp is %v ahead, more than the %v a token may live on this server (token max lifetime)",
			ahead.Round(time.Second), v.maxLifetime))
	}
	if c.Room != "" || c.Role != "" {
		if c.Subject == "" || c.Room == "" {
			return nil, refused(ErrInvalidToken, "a join token needs room and sub")
		}
		if _, err := ParseRole(string(c.Role)); err != nil {
			return nil, refused(ErrInvalidToken, err.Error())
		}
	}
	return &c, nil
}

// RefusedError is a token that was refused, with a reason its bearer may
// read: what is wrong with the token, in Troupe's words, never a secret.
// It wraps ErrInvalidToken or ErrExpiredToken.
type RefusedError struct {
	// Reason says why, as in "invalid token: <Reason>".
	Reason string
	kind   error
}

// Refuse is the refusal of a token whose signature and dates hold but
// whose claims its verifier's caller cannot use, for reason.
func Refuse(reason string) *RefusedError { return refused(ErrInvalidToken, reason) }

func refused(kind error, reason string) *RefusedError {
	return &RefusedError{Reason: reason, kind: kind}
}

func (e *RefusedError) Error() string { return e.kind.Error() + ": " + e.Reason }
func (e *RefusedError) Unwrap() error { return e.kind }

// reasonMalformed: a token that is not a JWT Troupe can read.
const reasonMalformed = "not a well-formed token (a JWT whose claims Troupe reads)"

// reasonUnverified: a token whose iss names no key here, or whose
// signature that key does not verify.
const reasonUnverified = "its signature does not verify: its iss must name an API key of this server and the token be signed with that key's secret (HS256)"

// errUnknownIssuer is the key lookup's failure: an iss with no key here.
var errUnknownIssuer = errors.New("unknown issuer")

// refusal words the parser's error. Claims are only checked once the
// signature verifies, so a reason about them goes to a bearer whose
// token was signed by a key of this server.
func refusal(err error, c *Claims) *RefusedError {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return refused(ErrInvalidToken, reasonMalformed)
	case errors.Is(err, errUnknownIssuer), errors.Is(err, jwt.ErrTokenSignatureInvalid):
		// One reason for both: telling them apart would let anyone learn
		// which API key ids exist by trying iss values.
		return refused(ErrInvalidToken, reasonUnverified)
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return refused(ErrInvalidToken, "it has no exp")
	case errors.Is(err, jwt.ErrTokenExpired):
		return refused(ErrExpiredToken, "its exp passed at "+c.ExpiresAt.UTC().Format(time.RFC3339))
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return refused(ErrInvalidToken, "it was issued in the future: its iat is ahead of the server's clock")
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return refused(ErrInvalidToken, "it is not valid yet: its nbf is ahead of the server's clock")
	}
	return refused(ErrInvalidToken, "its claims cannot be read")
}

// numericDates refuses a token whose exp, nbf or iat is not a JSON number
// (RFC 7519's NumericDate): the parser would take a string holding digits.
func (v *Verifier) numericDates(t *jwt.Token) error {
	parts := strings.Split(t.Raw, ".")
	if len(parts) != 3 {
		return refused(ErrInvalidToken, reasonMalformed)
	}
	payload, err := v.parser.DecodeSegment(parts[1])
	if err != nil {
		return refused(ErrInvalidToken, reasonMalformed)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(payload, &raw); err != nil {
		return refused(ErrInvalidToken, reasonMalformed)
	}
	for _, name := range []string{"exp", "nbf", "iat"} {
		b, ok := raw[name]
		if !ok {
			continue
		}
		var n json.Number
		// A JSON number starts with a digit or a minus; a string, null,
		// or anything else is not a NumericDate.
		if len(b) == 0 || (b[0] != '-' && (b[0] < '0' || b[0] > '9')) || json.Unmarshal(b, &n) != nil {
			return refused(ErrInvalidToken, name+" must be a number of seconds (NumericDate)")
		}
	}
	return nil
}
