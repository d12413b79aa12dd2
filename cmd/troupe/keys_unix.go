//go:build unix

package main

import (
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// checkKeyOwner refuses a key file another user owns: that user could
// replace the key this server trusts.
func checkKeyOwner(path string, fi fs.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if uid := os.Geteuid(); int(st.Uid) != uid {
		return fmt.Errorf("%w: %s is owned by uid %d, not by this process's uid %d; chown it", ErrKeyExposed, path, st.Uid, uid)
	}
	return nil
}
