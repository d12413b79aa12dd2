//go:build !unix

package recorder

import "errors"

// systemFree cannot measure free space here; only a failed write stops a
// recording for a full disk.
func systemFree(string) (uint64, error) { return 0, errors.ErrUnsupported }
