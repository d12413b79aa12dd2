package mediaload

import "errors"

var (
	// ErrInvalidConfig wraps every reason a Config is refused.
	ErrInvalidConfig = errors.New("mediaload: invalid config")
	// ErrNoProcess is returned when the server's /proc entry cannot be read.
	ErrNoProcess = errors.New("mediaload: cannot read the server process")
)
