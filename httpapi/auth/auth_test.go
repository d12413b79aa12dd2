package auth

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func testKey(t *testing.T) Key {
	t.Helper()
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestMintVerify(t *testing.T) {
	k := testKey(t)
	v, err := NewVerifier(k)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()

	admin, err := Mint(k, AdminClaims(now, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	c, err := v.Verify(admin)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Admin || c.IsJoin() || c.Issuer != k.ID {
		t.Fatalf("admin claims = %+v", c)
	}

	join, err := Mint(k, JoinClaims(now, time.Hour, "room_1", "alice", "Alice", RoleModerator))
	if err != nil {
		t.Fatal(err)
	}
	c, err = v.Verify(join)
	if err != nil {
		t.Fatal(err)
	}
	if c.Admin || !c.IsJoin() || c.Room != "room_1" || c.Subject != "alice" || c.Role != RoleModerator {
		t.Fatalf("join claims = %+v", c)
	}
}

func TestVerifyRejects(t *testing.T) {
	k := testKey(t)
	other := testKey(t)
	v, err := NewVerifier(k)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	mint := func(k Key, c Claims) string {
		t.Helper()
		s, err := Mint(k, c)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	// A token signed with the right secret but the none/HS512 family must fail too.
	hs512, err := jwt.NewWithClaims(jwt.SigningMethodHS512, Claims{Admin: true,
		RegisteredClaims: jwt.RegisteredClaims{Issuer: k.ID, ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour))}}).
		SignedString([]byte(k.Secret))
	if err != nil {
		t.Fatal(err)
	}
	noExp, err := jwt.NewWithClaims(jwt.SigningMethodHS256, Claims{Admin: true,
		RegisteredClaims: jwt.RegisteredClaims{Issuer: k.ID}}).SignedString([]byte(k.Secret))
	if err != nil {
		t.Fatal(err)
	}
	badRole := JoinClaims(now, time.Hour, "r", "alice", "", "owner")
	badRoleTok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, func() Claims { c := badRole; c.Issuer = k.ID; return c }()).
		SignedString([]byte(k.Secret))
	if err != nil {
		t.Fatal(err)
	}
	valid := mint(k, AdminClaims(now, time.Hour))

	tests := []struct {
		name  string
		token string
		want  error
	}{
		{"empty", "", ErrInvalidToken},
		{"garbage", "not.a.jwt", ErrInvalidToken},
		{"unknown key", mint(other, AdminClaims(now, time.Hour)), ErrInvalidToken},
		{"expired", mint(k, AdminClaims(now.Add(-2*time.Hour), time.Hour)), ErrExpiredToken},
		{"wrong alg", hs512, ErrInvalidToken},
		{"no exp", noExp, ErrInvalidToken},
		{"bad role", badRoleTok, ErrInvalidToken},
		{"tampered", valid[:len(valid)-2] + strings.Repeat("A", 2), ErrInvalidToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := v.Verify(tt.token); !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestKeyValidate(t *testing.T) {
	if err := (Key{ID: "k", Secret: "short"}).Validate(); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("short secret: %v", err)
	}
	if _, err := Mint(Key{}, AdminClaims(time.Now(), time.Hour)); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("mint with empty key: %v", err)
	}
	if _, err := ParseRole("admin"); err == nil {
		t.Fatal("ParseRole(admin) succeeded")
	}
}

// A join token's grants come back as minted; a grant this version does
// not know makes the token invalid rather than silently ignored.
func TestGrantsClaims(t *testing.T) {
	k := testKey(t)
	v, err := NewVerifier(k)
	if err != nil {
		t.Fatal(err)
	}
	hidden := true
	c := JoinClaims(time.Now(), time.Hour, "r", "obs", "", RoleSubscriber)
	c.Grants, c.Metadata = &Grants{Hidden: &hidden, PublishSources: []string{"microphone"}}, `{"seat":3}`
	tok, err := Mint(k, c)
	if err != nil {
		t.Fatal(err)
	}
	got, err := v.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	if got.Grants == nil || got.Grants.Hidden == nil || !*got.Grants.Hidden || got.Grants.Publish != nil ||
		len(got.Grants.PublishSources) != 1 || got.Metadata != `{"seat":3}` {
		t.Fatalf("claims = %+v, grants %+v", got, got.Grants)
	}

	unknown, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": k.ID, "exp": time.Now().Add(time.Hour).Unix(), "room": "r", "sub": "x", "role": "publisher",
		"grants": map[string]any{"publish": true, "record": true},
	}).SignedString([]byte(k.Secret))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(unknown); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("a token with an unknown grant: %v", err)
	}
}
