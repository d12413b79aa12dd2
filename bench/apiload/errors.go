package apiload

import "errors"

// ErrInvalidConfig: the Config cannot describe a run.
var ErrInvalidConfig = errors.New("apiload: invalid config")
