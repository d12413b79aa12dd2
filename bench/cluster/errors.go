package cluster

import "errors"

var (
	// ErrNoEtcd: no etcd binary was found, neither at TROUPE_ETCD_BIN nor
	// on PATH.
	ErrNoEtcd = errors.New("cluster: no etcd binary (set TROUPE_ETCD_BIN or put etcd on PATH; Debian: apt-get install etcd-server)")
	// ErrNotReady: a process exited, or did not answer, before it was ready.
	ErrNotReady = errors.New("cluster: process not ready")
)
