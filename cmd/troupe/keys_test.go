package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/troupe-media/troupe/httpapi/auth"
)

// loadOrCreateKey is what a first start does in two steps (resolveKey,
// then saveNewKey once serving), at once: the key saved in dataDir, else a
// new one saved there.
func loadOrCreateKey(dataDir string) (key auth.Key, created bool, err error) {
	k, err := loadKey(dataDir)
	if err == nil || !errors.Is(err, ErrNoKey) {
		return k, false, err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return auth.Key{}, false, err
	}
	if k, err = auth.GenerateKey(); err != nil {
		return auth.Key{}, false, err
	}
	saved, err := saveKeyOnce(dataDir, k)
	if err != nil || saved {
		return k, saved, err
	}
	k, err = loadKey(dataDir) // another caller saved its key first
	return k, false, err
}

func TestLoadOrCreateKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	k1, created, err := loadOrCreateKey(dir)
	if err != nil || !created {
		t.Fatalf("first call: created=%v err=%v", created, err)
	}
	if err := k1.Validate(); err != nil {
		t.Fatal(err)
	}
	assertMode(t, dir, 0o700|os.ModeDir)
	assertMode(t, filepath.Join(dir, keysFile), 0o600)

	k2, created, err := loadOrCreateKey(dir)
	if err != nil || created || k2 != k1 {
		t.Fatalf("second call: key %v created=%v err=%v, want the first key", k2.ID, created, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("data dir holds %d entries, want only %s", len(entries), keysFile)
	}
}

// Two servers started at once on a fresh data dir end up with one key.
func TestLoadOrCreateKeyRace(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	const n = 8
	keys := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			k, _, err := loadOrCreateKey(dir)
			if err != nil {
				t.Error(err)
			}
			keys[i] = k.ID + k.Secret
		})
	}
	wg.Wait()
	for _, k := range keys[1:] {
		if k != keys[0] {
			t.Fatal("concurrent starts produced different keys")
		}
	}
}

func TestLoadKeyErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		content string // "" = no file
		noKey   bool
	}{
		{"missing", "", true},
		{"not json", "{", false},
		{"short secret", `{"api_key":"TK1","api_secret":"short"}`, false},
		{"no key id", `{"api_secret":"0123456789012345678901234567890123"}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.content != "" {
				if err := os.WriteFile(filepath.Join(dir, keysFile), []byte(tc.content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			_, err := loadKey(dir)
			if err == nil || errors.Is(err, ErrNoKey) != tc.noKey {
				t.Fatalf("err = %v, want ErrNoKey: %v", err, tc.noKey)
			}
			// A broken key file is never replaced by a new key.
			if _, _, err := loadOrCreateKey(dir); !tc.noKey && err == nil {
				t.Fatal("loadOrCreateKey accepted a broken key file")
			}
		})
	}
}

// A key file open to group or others, or owned by another user, is refused
// as it is, by the server and by troupe token alike, and left unchanged:
// never replaced by a new key.
func TestLoadKeyRefusesExposedFile(t *testing.T) {
	key, err := auth.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	content, err := json.Marshal(key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(t *testing.T, mode os.FileMode) string {
		t.Helper()
		dir := t.TempDir()
		path := filepath.Join(dir, keysFile)
		if err := os.WriteFile(path, content, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil { // past the umask
			t.Fatal(err)
		}
		return dir
	}
	refused := func(t *testing.T, dir, want string) {
		t.Helper()
		if _, err := loadKey(dir); !errors.Is(err, ErrKeyExposed) || !strings.Contains(err.Error(), want) {
			t.Fatalf("loadKey: %v, want %v saying %q", err, ErrKeyExposed, want)
		}
		if _, _, err := loadOrCreateKey(dir); !errors.Is(err, ErrKeyExposed) {
			t.Fatalf("loadOrCreateKey: %v, want %v", err, ErrKeyExposed)
		}
		if out, err := runCLI(t, "token", "--data-dir", dir, "--admin"); !errors.Is(err, ErrKeyExposed) {
			t.Fatalf("troupe token: %v, want %v (output %q)", err, ErrKeyExposed, out)
		}
		if got, err := os.ReadFile(filepath.Join(dir, keysFile)); err != nil || !bytes.Equal(got, content) {
			t.Fatalf("the key file after a refusal: %q, %v", got, err)
		}
	}
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o620, 0o602, 0o666} {
		t.Run(mode.String(), func(t *testing.T) {
			refused(t, write(t, mode), fmt.Sprintf("mode %04o", mode))
		})
	}
	t.Run("owner only", func(t *testing.T) {
		for _, mode := range []os.FileMode{0o600, 0o400} {
			if got, err := loadKey(write(t, mode)); err != nil || got != key {
				t.Fatalf("mode %v: %v, %v", mode, got, err)
			}
		}
	})
	t.Run("not a file", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.Mkdir(filepath.Join(dir, keysFile), 0o700); err != nil {
			t.Fatal(err)
		}
		if _, err := loadKey(dir); !errors.Is(err, ErrKeyExposed) {
			t.Fatalf("loadKey: %v, want %v", err, ErrKeyExposed)
		}
	})
	t.Run("another owner", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("giving a file to another user needs root")
		}
		dir := write(t, 0o600)
		path := filepath.Join(dir, keysFile)
		if err := os.Chown(path, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		// Another user's process is refused; root, which trusts that
		// user's key already (sudo troupe token), is not.
		if err := checkKeyOwnerAs(path, fi, 1000); !errors.Is(err, ErrKeyExposed) || !strings.Contains(err.Error(), "owned by uid 65534") {
			t.Fatalf("a key owned by uid 65534 read as uid 1000: %v, want %v", err, ErrKeyExposed)
		}
		if _, err := loadKey(dir); err != nil {
			t.Fatalf("a key owned by the service user read as root: %v", err)
		}
	})
}

func assertMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != want {
		t.Fatalf("%s: mode %v, want %v", path, fi.Mode(), want)
	}
}

// A first start that fails (its media port is taken) leaves no key file, so
// the first start that succeeds generates the key and prints its token.
func TestFailedFirstStartLeavesNoKey(t *testing.T) {
	busyUDP, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busyUDP.Close()
	dir := filepath.Join(t.TempDir(), "data")
	cfg := testConfig(dir)
	cfg.RTCUDPPort = busyUDP.LocalAddr().(*net.UDPAddr).Port
	if _, err := NewServer(cfg, nil, io.Discard, io.Discard); err == nil {
		t.Fatal("NewServer with the media port taken succeeded")
	}
	if _, err := loadKey(dir); !errors.Is(err, ErrNoKey) {
		t.Fatalf("key file after the failed start: %v, want none", err)
	}

	s := startServer(t, testConfig(dir))
	if !strings.Contains(s.out.String(), "export TOKEN=") {
		t.Fatalf("the first successful start printed no token:\n%s", s.out.String())
	}
	if _, err := loadKey(dir); err != nil {
		t.Fatal(err)
	}
}
