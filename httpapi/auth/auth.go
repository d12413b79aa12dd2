package auth

import (
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
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
// AutoSubscribe.
type Claims struct {
	Admin bool   `json:"admin,omitempty"`
	Room  string `json:"room,omitempty"`
	Name  string `json:"name,omitempty"`
	Role  Role   `json:"role,omitempty"`
	// AutoSubscribe false has the participant receive only the tracks it
	// subscribes to; absent (nil) or true, it receives every track.
	AutoSubscribe *bool `json:"auto_subscribe,omitempty"`
	jwt.RegisteredClaims
}

// Subscribes reports whether a join token's participant subscribes to
// every track of its room by itself: unless auto_subscribe says false.
func (c *Claims) Subscribes() bool { return c.AutoSubscribe == nil || *c.AutoSubscribe }

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

// Verifier checks tokens against a set of keys.
type Verifier struct {
	secrets map[string][]byte
	parser  *jwt.Parser
}

// NewVerifier returns a verifier that accepts tokens signed by any of keys.
func NewVerifier(keys ...Key) (*Verifier, error) {
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: no keys", ErrInvalidKey)
	}
	v := &Verifier{
		secrets: make(map[string][]byte, len(keys)),
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
			jwt.WithExpirationRequired(),
			jwt.WithLeeway(5*time.Second),
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

// Verify parses token and returns its claims. Errors wrap ErrInvalidToken or
// ErrExpiredToken.
func (v *Verifier) Verify(token string) (*Claims, error) {
	var c Claims
	_, err := v.parser.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		iss, _ := t.Claims.GetIssuer()
		secret, ok := v.secrets[iss]
		if !ok {
			return nil, fmt.Errorf("unknown api key %q", iss)
		}
		return secret, nil
	})
	switch {
	case err == nil:
	case errors.Is(err, jwt.ErrTokenExpired):
		return nil, fmt.Errorf("%w: %v", ErrExpiredToken, err)
	default:
		return nil, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	if c.Room != "" || c.Role != "" {
		if c.Subject == "" || c.Room == "" {
			return nil, fmt.Errorf("%w: join token needs room and sub", ErrInvalidToken)
		}
		if _, err := ParseRole(string(c.Role)); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidToken, err)
		}
	}
	return &c, nil
}
