package proc

import "errors"

var (
	// ErrNoProcess: the process's /proc entry cannot be read.
	ErrNoProcess = errors.New("proc: cannot read the server process")
	// ErrNotReady: a child process exited, or did not answer /readyz in
	// time, before it was ready.
	ErrNotReady = errors.New("proc: server not ready")
	// ErrNoMetric: a server's /metrics does not carry the figure asked for.
	ErrNoMetric = errors.New("proc: metric not found")
)
