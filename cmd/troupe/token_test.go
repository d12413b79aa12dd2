package main

import (
	"strings"
	"testing"
	"time"

	"github.com/troupe-media/troupe/httpapi/auth"
	"github.com/troupe-media/troupe/internal/syncbuf"
)

// runCLI runs the command tree with args, returning stdout and the error.
func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	// One buffer takes both streams; it must lock, since `bench api` copies
	// its child's stderr into it from another goroutine.
	var out syncbuf.Buffer
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&out)
	err := root.ExecuteContext(t.Context())
	return out.String(), err
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func TestTokenCommand(t *testing.T) {
	dir := t.TempDir()
	key, _, err := loadOrCreateKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := auth.NewVerifier(key)
	if err != nil {
		t.Fatal(err)
	}
	flagKey := auth.Key{ID: "TKflag", Secret: strings.Repeat("f", 40)}
	flagVerifier, _ := auth.NewVerifier(flagKey)

	for _, tc := range []struct {
		name     string
		args     []string
		verifier *auth.Verifier
		check    func(*auth.Claims) bool
	}{
		{"admin", []string{"--admin"}, verifier, func(c *auth.Claims) bool {
			return c.Admin && !c.IsJoin() && c.Issuer == key.ID && time.Until(c.ExpiresAt.Time) > 23*time.Hour
		}},
		{"admin ttl", []string{"--admin", "--ttl", "5m"}, verifier, func(c *auth.Claims) bool {
			return c.Admin && time.Until(c.ExpiresAt.Time) <= 5*time.Minute
		}},
		{"join", []string{"--room", "room_a", "--identity", "alice", "--name", "Alice", "--role", "publisher"}, verifier,
			func(c *auth.Claims) bool {
				return !c.Admin && c.Room == "room_a" && c.Subject == "alice" && c.Name == "Alice" && c.Role == auth.RolePublisher
			}},
		{"join name defaults to identity", []string{"--room", "r", "--identity", "bob", "--role", "subscriber"}, verifier,
			func(c *auth.Claims) bool { return c.Name == "bob" && c.Role == auth.RoleSubscriber }},
		{"explicit key", []string{"--admin", "--api-key", flagKey.ID, "--api-secret", flagKey.Secret}, flagVerifier,
			func(c *auth.Claims) bool { return c.Admin && c.Issuer == flagKey.ID }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runCLI(t, append([]string{"token", "--data-dir", dir}, tc.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			claims, err := tc.verifier.Verify(lastLine(out))
			if err != nil {
				t.Fatalf("token does not verify: %v\n%s", err, out)
			}
			if !tc.check(claims) {
				t.Fatalf("unexpected claims %+v", claims)
			}
		})
	}
}

func TestTokenCommandErrors(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := loadOrCreateKey(dir); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no key file", []string{"--data-dir", t.TempDir() + "/none", "--admin"}, "run `troupe serve"},
		{"neither kind", []string{"--data-dir", dir}, "--admin, or --room"},
		{"both kinds", []string{"--data-dir", dir, "--admin", "--room", "r"}, "--admin and --room"},
		{"join without identity", []string{"--data-dir", dir, "--room", "r", "--role", "publisher"}, "--identity"},
		{"join without role", []string{"--data-dir", dir, "--room", "r", "--identity", "a"}, "--role"},
		{"bad role", []string{"--data-dir", dir, "--room", "r", "--identity", "a", "--role", "owner"}, "publisher, subscriber or moderator"},
		{"admin with identity", []string{"--data-dir", dir, "--admin", "--identity", "a"}, "--admin takes no"},
		{"zero ttl", []string{"--data-dir", dir, "--admin", "--ttl", "0s"}, "--ttl"},
		{"a hundred years", []string{"--data-dir", dir, "--admin", "--ttl", "876000h"}, "more than --token-max-lifetime 720h0m0s"},
		{"past a set max lifetime", []string{"--data-dir", dir, "--room", "r", "--identity", "a", "--role", "publisher", "--ttl", "2h", "--token-max-lifetime", "1h"}, "more than --token-max-lifetime 1h0m0s"},
		{"a max lifetime under a minute", []string{"--data-dir", dir, "--admin", "--token-max-lifetime", "500ms"}, "--token-max-lifetime 500ms: must be at least 1m"},
		{"half a key", []string{"--data-dir", dir, "--admin", "--api-key", "TK1"}, "set both or neither"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runCLI(t, append([]string{"token"}, tc.args...)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q (output %q)", err, tc.want, out)
			}
		})
	}
}

func TestVersionCommand(t *testing.T) {
	out, err := runCLI(t, "version")
	if err != nil || !strings.HasPrefix(out, "troupe ") || !strings.Contains(out, "go1.") {
		t.Fatalf("version output %q, err %v", out, err)
	}
	saved := version
	version = "v9.9.9"
	defer func() { version = saved }()
	if got := versionString(); !strings.HasPrefix(got, "troupe v9.9.9 ") {
		t.Fatalf("ldflags version not used: %q", got)
	}
}
