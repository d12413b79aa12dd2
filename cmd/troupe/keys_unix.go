//go:build unix

package main

import (
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// checkKeyOwner refuses a key file another user owns: that user could
// replace the key this server trusts. Root may read the service user's
// (`sudo troupe token`): it trusts that user's key already.
func checkKeyOwner(path string, fi fs.FileInfo) error {
	return checkKeyOwnerAs(path, fi, os.Geteuid())
}

// checkKeyOwnerAs is checkKeyOwner for a process running as uid.
func checkKeyOwnerAs(path string, fi fs.FileInfo, uid int) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if uid != 0 && int(st.Uid) != uid {
		return fmt.Errorf("%w: %s is owned by uid %d, not by this process's uid %d; chown it", ErrKeyExposed, path, st.Uid, uid)
	}
	return nil
}
