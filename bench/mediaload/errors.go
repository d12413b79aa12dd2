package mediaload

import "errors"

// ErrInvalidConfig wraps every reason a Config is refused.
var ErrInvalidConfig = errors.New("mediaload: invalid config")

// ErrRecording is a recording of a scenario that records which stopped
// during the run.
var ErrRecording = errors.New("mediaload: recording stopped")
