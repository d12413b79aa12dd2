//go:build unix

package recorder

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// systemFree is the bytes of dir's file system available to an
// unprivileged writer.
func systemFree(dir string) (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs: %w", err)
	}
	return st.Bavail * uint64(st.Bsize), nil //nolint:gosec // Bsize is positive
}
