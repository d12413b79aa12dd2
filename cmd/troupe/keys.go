package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/troupe-media/troupe/httpapi/auth"
)

// keysFile is the name, inside the data dir, of the saved API key pair.
const keysFile = "keys.json"

// keySource says where the key pair in use came from.
type keySource int

const (
	keyConfigured keySource = iota // --api-key and --api-secret
	keyLoaded                      // the data dir's key file
	keyCreated                     // the data dir's key file, written by this start
)

// resolveKey returns the key pair to run with: the configured one, else the
// one saved in the data dir, else a new one, which saveNewKey writes once
// the server holds its ports: a first start that fails before then leaves
// no key file behind, so the first start that succeeds prints the token.
func resolveKey(cfg Config, log *slog.Logger) (auth.Key, keySource, error) {
	if k, ok := cfg.configuredKey(); ok {
		log.Info("using the configured API key", "api_key", k.ID,
			"mint_token", "troupe token --api-key "+k.ID+" --api-secret ... --admin")
		return k, keyConfigured, nil
	}
	k, err := loadKey(cfg.DataDir)
	if errors.Is(err, ErrNoKey) {
		k, err = auth.GenerateKey()
		return k, keyCreated, err
	}
	if err != nil {
		return auth.Key{}, keyConfigured, err
	}
	// The admin token is printed on the first start only: later starts
	// would leave a live credential in whatever collects the output.
	log.Info("loaded API key", "api_key", k.ID, "file", filepath.Join(cfg.DataDir, keysFile),
		"mint_token", "troupe token --data-dir "+cfg.DataDir+" --admin")
	return k, keyLoaded, nil
}

// saveNewKey writes the key pair resolveKey generated to the data dir
// (which exists by then), unless another process saved one first.
func saveNewKey(dataDir string, k auth.Key, log *slog.Logger) error {
	path := filepath.Join(dataDir, keysFile)
	saved, err := saveKeyOnce(dataDir, k)
	if err != nil {
		return err
	}
	if !saved {
		return fmt.Errorf("save key: another process wrote %s meanwhile; start again to use it", path)
	}
	log.Info("generated a new API key", "api_key", k.ID, "file", path)
	return nil
}

// loadKey reads dataDir/keys.json. A missing file wraps ErrNoKey. A file
// that others than its owner may read or write, or that another user
// owns, is refused (ErrKeyExposed): its secret signs admin tokens, so
// whoever reads it runs the server, and whoever writes it chooses the key.
func loadKey(dataDir string) (auth.Key, error) {
	path := filepath.Join(dataDir, keysFile)
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return auth.Key{}, fmt.Errorf("%w: %s does not exist", ErrNoKey, path)
	}
	if err != nil {
		return auth.Key{}, fmt.Errorf("read key: %w", err)
	}
	if err := checkKeyFile(path, fi); err != nil {
		return auth.Key{}, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return auth.Key{}, fmt.Errorf("read key: %w", err)
	}
	var k auth.Key
	if err := json.Unmarshal(data, &k); err != nil {
		return auth.Key{}, fmt.Errorf("%s: %w", path, err)
	}
	if err := k.Validate(); err != nil {
		return auth.Key{}, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// checkKeyFile refuses a key file (path, fi) that is not a regular file,
// that group or others may use, or that another user owns.
func checkKeyFile(path string, fi fs.FileInfo) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%w: %s is not a regular file", ErrKeyExposed, path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%w: %s has mode %04o, open to group or others; run chmod 600 %s", ErrKeyExposed, path, perm, path)
	}
	return checkKeyOwner(path, fi)
}

// saveKeyOnce writes k to dataDir/keys.json unless that file exists, in
// which case it reports false. The file appears whole or not at all: it is
// written and synced under a temporary name, then hard-linked into place
// (link, unlike rename, refuses to replace a key someone else just saved).
func saveKeyOnce(dataDir string, k auth.Key) (bool, error) {
	data, err := json.MarshalIndent(k, "", "  ")
	if err != nil {
		return false, err
	}
	tmp, err := os.CreateTemp(dataDir, ".keys-*.json") // mode 0600
	if err != nil {
		return false, fmt.Errorf("save key: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(append(data, '\n'))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return false, fmt.Errorf("save key: %w", err)
	}
	if err := os.Link(tmp.Name(), filepath.Join(dataDir, keysFile)); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return false, nil
		}
		return false, fmt.Errorf("save key: %w", err)
	}
	return true, syncDir(dataDir)
}

// syncDir makes a new directory entry durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
