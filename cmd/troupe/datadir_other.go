//go:build !unix

package main

import "io/fs"

// fileOwner has no uid to give outside Unix: a file's access there is its
// ACL's, which the data dir's checks leave to the operator.
func fileOwner(fs.FileInfo) (int, bool) { return 0, false }
