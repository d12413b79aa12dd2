package auth

import (
	"errors"
	"strconv"
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
	reasons := map[string]string{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := v.Verify(tt.token)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
			// Every refusal has a reason to show its bearer.
			var re *RefusedError
			if !errors.As(err, &re) || re.Reason == "" || strings.Contains(re.Reason, k.Secret) {
				t.Fatalf("Verify = %v, want a *RefusedError with a reason", err)
			}
			reasons[tt.name] = re.Reason
		})
	}
	// An unknown key and a bad signature read the same: the difference
	// would tell anyone which key ids exist.
	forged := mint(Key{ID: k.ID, Secret: other.Secret}, AdminClaims(now, time.Hour))
	var re *RefusedError
	if _, err := v.Verify(forged); !errors.As(err, &re) || re.Reason != reasons["unknown key"] || re.Reason != reasons["tampered"] {
		t.Fatalf("a known key id with a wrong secret: %v; an unknown key: %q; tampered: %q", err, reasons["unknown key"], reasons["tampered"])
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

// A token's lifetime is bounded at verification: an exp further ahead than
// the verifier's MaxLifetime, an iat in the future, or a date that is not
// a JSON number is refused, however well signed; a token within the bound
// passes.
func TestVerifyBoundsLifetime(t *testing.T) {
	k := testKey(t)
	v, err := NewVerifierWith(VerifierConfig{MaxLifetime: 48 * time.Hour}, k)
	if err != nil {
		t.Fatal(err)
	}
	def, err := NewVerifier(k)
	if err != nil {
		t.Fatal(err)
	}
	if def.MaxLifetime() != DefaultMaxLifetime || v.MaxLifetime() != 48*time.Hour {
		t.Fatalf("max lifetimes %v and %v", def.MaxLifetime(), v.MaxLifetime())
	}
	for _, bad := range []time.Duration{-time.Second, 500 * time.Millisecond, MinMaxLifetime - time.Second} {
		if _, err := NewVerifierWith(VerifierConfig{MaxLifetime: bad}, k); err == nil {
			t.Fatalf("MaxLifetime %v accepted", bad)
		}
	}
	if v, err := NewVerifierWith(VerifierConfig{MaxLifetime: MinMaxLifetime}, k); err != nil || v.MaxLifetime() != MinMaxLifetime {
		t.Fatalf("MaxLifetime %v: %v", MinMaxLifetime, err)
	}
	for _, tc := range []struct{ ttl, max, want time.Duration }{
		{time.Hour, 0, time.Hour},
		{time.Hour, 30 * time.Minute, 30 * time.Minute},
		{10 * time.Minute, 30 * time.Minute, 10 * time.Minute},
		{DefaultMaxLifetime + time.Hour, 0, DefaultMaxLifetime},
	} {
		if got := CutLifetime(tc.ttl, tc.max); got != tc.want {
			t.Errorf("CutLifetime(%v, %v) = %v, want %v", tc.ttl, tc.max, got, tc.want)
		}
	}
	now := time.Now()
	signed := func(c jwt.MapClaims) string {
		t.Helper()
		c["iss"], c["admin"] = k.ID, true
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(k.Secret))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	exp := now.Add(time.Hour).Unix()
	for _, tc := range []struct {
		name  string
		token string
		v     *Verifier
		ok    bool
	}{
		{"within the bound", signed(jwt.MapClaims{"exp": now.Add(47 * time.Hour).Unix(), "iat": now.Unix()}), v, true},
		{"a hundred years", signed(jwt.MapClaims{"exp": now.AddDate(100, 0, 0).Unix(), "iat": now.Unix()}), def, false},
		{"past the bound", signed(jwt.MapClaims{"exp": now.Add(49 * time.Hour).Unix()}), v, false},
		{"past the default", signed(jwt.MapClaims{"exp": now.Add(DefaultMaxLifetime + time.Hour).Unix()}), def, false},
		{"issued a year ahead", signed(jwt.MapClaims{"exp": exp, "iat": now.AddDate(1, 0, 0).Unix()}), def, false},
		{"issued a minute ahead", signed(jwt.MapClaims{"exp": exp, "iat": now.Add(time.Minute).Unix()}), def, false},
		{"issued within the leeway", signed(jwt.MapClaims{"exp": exp, "iat": now.Add(Leeway / 5).Unix()}), def, true},
		{"exp a string", signed(jwt.MapClaims{"exp": strconv.FormatInt(exp, 10)}), def, false},
		{"iat a string", signed(jwt.MapClaims{"exp": exp, "iat": strconv.FormatInt(now.Unix(), 10)}), def, false},
		{"nbf a string", signed(jwt.MapClaims{"exp": exp, "nbf": strconv.FormatInt(now.Unix(), 10)}), def, false},
		{"exp a fraction", signed(jwt.MapClaims{"exp": float64(exp) + 0.5}), def, true},
	} {
		_, err := tc.v.Verify(tc.token)
		if tc.ok && err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
		if !tc.ok && !errors.Is(err, ErrInvalidToken) {
			t.Errorf("%s: %v, want %v", tc.name, err, ErrInvalidToken)
		}
	}
}
