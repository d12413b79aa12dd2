//go:build unix

package recorder

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// checkFree fails with ErrDiskFull when dir's file system has less than
// minFree bytes available to an unprivileged writer.
func checkFree(dir string, minFree uint64) error {
	if minFree == 0 {
		return nil
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return fmt.Errorf("recorder: statfs %s: %w", dir, err)
	}
	free := st.Bavail * uint64(st.Bsize) //nolint:gosec // Bsize is positive
	if free < minFree {
		return fmt.Errorf("%w: %d bytes free in %s, below the minimum of %d", ErrDiskFull, free, dir, minFree)
	}
	return nil
}
