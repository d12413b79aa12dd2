package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/troupe-media/troupe/bench/proc"
)

// runBinary runs the test binary as the troupe binary with args and
// returns its exit status, stdout and stderr.
func runBinary(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(proc.WithoutTroupeEnv(os.Environ()), mainEnv+"=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, stdout.String(), stderr.String()
	case errors.As(err, &exit):
		return exit.ExitCode(), stdout.String(), stderr.String()
	}
	t.Fatalf("run %v: %v", args, err)
	return 0, "", ""
}

// A command line that cannot be understood exits 2, any other failure 1,
// each with one line on stderr.
func TestExitStatusUsageAndFailure(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := loadOrCreateKey(dir); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "none")
	for _, tc := range []struct {
		name string
		args []string
		want int
		msg  string
	}{
		{"unknown flag", []string{"--nope"}, exitUsage, "unknown flag: --nope"},
		{"unknown flag of a subcommand", []string{"token", "--bogus"}, exitUsage, "unknown flag: --bogus"},
		{"unknown command", []string{"nope"}, exitUsage, `unknown command "nope"`},
		{"unknown benchmark", []string{"bench", "nope"}, exitUsage, `unknown command "nope"`},
		{"flag value of the wrong type", []string{"serve", "--rtc-udp-port", "x", "--data-dir", missing}, exitUsage, "rtc-udp-port"},
		{"conflicting token kinds", []string{"token", "--data-dir", dir, "--admin", "--room", "r"}, exitUsage, "--admin and --room"},
		{"bad role", []string{"token", "--data-dir", dir, "--room", "r", "--identity", "a", "--role", "owner"}, exitUsage, "--role"},
		{"bench option", []string{"bench", "api", "--clients", "0"}, exitUsage, "--clients"},
		{"unknown bench scenario", []string{"bench", "media", "--scenario", "nope"}, exitUsage, `--scenario: unknown scenario "nope"`},
		{"missing argument", []string{"room", "get"}, exitUsage, "room get takes ROOM, was given 0 arguments; usage: troupe room get ROOM [flags]"},
		{"extra argument", []string{"room", "list", "x"}, exitUsage, `room list takes no arguments, was given 1 ("x"); usage: troupe room list [flags]`},
		{"arguments of a two-argument command", []string{"participant", "kick", "r1"}, exitUsage,
			"participant kick takes ROOM PARTICIPANT, was given 1 argument; usage: troupe participant kick ROOM PARTICIPANT [flags]"},
		{"unknown command of a group", []string{"room", "nope"}, exitUsage, `unknown command "nope" for "troupe room"; troupe room --help lists its commands`},
		{"no key file", []string{"token", "--admin", "--data-dir", missing}, exitFailure, "no API key: " + missing},
		{"invalid config value", []string{"serve", "--log-level", "loud", "--data-dir", missing}, exitFailure, "--log-level"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, stdout, stderr := runBinary(t, tc.args...)
			if status != tc.want {
				t.Errorf("exit status %d, want %d (stderr %q)", status, tc.want, stderr)
			}
			if strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "troupe: ") || !strings.Contains(stderr, tc.msg) {
				t.Errorf("stderr %q, want one line containing %q", stderr, tc.msg)
			}
			if strings.Count(stderr, "no API key") > 1 {
				t.Errorf("stderr says it twice: %q", stderr)
			}
			if stdout != "" {
				t.Errorf("stdout %q", stdout)
			}
		})
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a failed command created %s (%v)", missing, err)
	}
}

func TestBuildInfoFrom(t *testing.T) {
	const rev = "76844c4ae35a71eec8ab673840b6cdb2f39eeb25"
	vcs := func(modified string) []debug.BuildSetting {
		return []debug.BuildSetting{
			{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev},
			{Key: "vcs.time", Value: "2030-01-02T03:04:05Z"}, {Key: "vcs.modified", Value: modified},
		}
	}
	info := func(mainVersion string, settings []debug.BuildSetting) *debug.BuildInfo {
		return &debug.BuildInfo{Main: debug.Module{Path: "github.com/troupe-media/troupe", Version: mainVersion}, Settings: settings}
	}
	for _, tc := range []struct {
		name         string
		link         string
		info         *debug.BuildInfo
		version, rev string
		line         string // what String starts with
	}{
		{"devel with a clean tree", "", info("(devel)", vcs("false")), "76844c4ae35a", rev,
			"troupe 76844c4ae35a go"},
		{"devel with changes", "", info("(devel)", vcs("true")), "76844c4ae35a-dirty", rev + "-dirty",
			"troupe 76844c4ae35a-dirty go"},
		{"pseudo-version", "", info("v0.0.0-20300102030405-76844c4ae35a+dirty", vcs("true")),
			"v0.0.0-20300102030405-76844c4ae35a+dirty", rev + "-dirty", "troupe v0.0.0-20300102030405-76844c4ae35a+dirty go"},
		{"release", "v1.2.3", info("(devel)", vcs("false")), "v1.2.3", rev,
			"troupe v1.2.3 76844c4ae35a 2030-01-02T03:04:05Z go"},
		{"nothing stamped", "", info("(devel)", nil), "unknown", "", "troupe unknown go"},
		{"no build info", "", nil, "unknown", "", "troupe unknown go"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := buildInfoFrom(tc.link, tc.info)
			if b.Version != tc.version || b.Revision != tc.rev {
				t.Errorf("version %q revision %q, want %q and %q", b.Version, b.Revision, tc.version, tc.rev)
			}
			if s := b.String(); !strings.HasPrefix(s, tc.line) || strings.Contains(s, "(devel)") {
				t.Errorf("String() = %q, want it to start with %q", s, tc.line)
			}
		})
	}
}
