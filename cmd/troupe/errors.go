package main

import (
	"errors"
	"fmt"
)

var (
	// ErrInvalidConfig: a flag, environment variable or YAML file sets a
	// value that cannot be used. Nothing has been started.
	ErrInvalidConfig = errors.New("invalid configuration")
	// ErrNoKey: no API key was configured and none is saved in the data dir.
	ErrNoKey = errors.New("no API key")
	// ErrKeyExposed: the data dir's key file is open to other users (its
	// mode or its owner), so it is not used.
	ErrKeyExposed = errors.New("API key file exposed")
	// ErrDataDir: the data dir cannot be made private to this process's
	// user (it is not a directory, or another user owns it).
	ErrDataDir = errors.New("data dir refused")
	// ErrKeyMismatch: the cluster this node joins was started with another
	// API key pair.
	ErrKeyMismatch = errors.New("API key pair differs from the cluster's")
)

// usageError is a command line that cannot be understood: an unknown
// command or flag, a flag value of the wrong type, a missing or conflicting
// option. The process exits with exitUsage for it, as Go's flag package
// and most Unix tools do, so that scripts can tell a mistyped command from
// a failure.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// Exit statuses of the process.
const (
	exitFailure = 1
	exitUsage   = 2
)

// exitStatus is the process's exit status for err, which is not nil.
func exitStatus(err error) int {
	var ue usageError
	if errors.As(err, &ue) {
		return exitUsage
	}
	return exitFailure
}

// storeLockedError is a start refused because another process has the
// data dir's database open.
type storeLockedError struct {
	dir string
	err error
}

func (e *storeLockedError) Error() string {
	return "open store: the database in " + e.dir + " is locked by another process: is another troupe server running on this --data-dir?"
}

func (e *storeLockedError) Unwrap() error { return e.err }
