//go:build !unix

package recorder

// checkFree cannot measure free space here; only a failed write stops a
// recording for a full disk.
func checkFree(string, uint64) error { return nil }
