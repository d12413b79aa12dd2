package main

import (
	"fmt"
	"log/slog"
	"os"
)

// prepareDataDir makes dir private to this process's user whatever was
// there before: created with mode 0700 when missing, an existing one
// tightened to 0700 (logged once at INFO), and one another user owns
// refused. The database below it (room webhook secrets, the join tokens
// kept for idempotent replay) is written by Pebble, which creates its files
// 0644 and its directories 0755 with no option to say otherwise; the umask
// is the whole process's, so the data dir's own mode is what keeps other
// users out of them.
func prepareDataDir(dir string, log *slog.Logger) error {
	return prepareDataDirAs(dir, os.Geteuid(), log)
}

// prepareDataDirAs is prepareDataDir for a process running as uid.
func prepareDataDirAs(dir string, uid int, log *slog.Logger) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%w: %s is not a directory", ErrDataDir, dir)
	}
	if owner, ok := fileOwner(fi); ok && owner != uid {
		// Another user could read what the server writes there, and
		// tightening its mode is not ours to do.
		return fmt.Errorf("%w: %s is owned by uid %d, not by this process's uid %d; chown it or choose another --data-dir",
			ErrDataDir, dir, owner, uid)
	}
	perm := fi.Mode().Perm()
	if perm&0o077 == 0 {
		return nil
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("data dir: make %s private: %w", dir, err)
	}
	log.Info("data dir was open to other users; made it private", "dir", dir,
		"mode_was", fmt.Sprintf("%04o", perm), "mode", "0700")
	return nil
}
