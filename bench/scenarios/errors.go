package scenarios

import "errors"

var (
	// ErrUnknown is returned for a name that is neither a built-in
	// scenario nor a YAML file.
	ErrUnknown = errors.New("unknown scenario")
	// ErrInvalid wraps every reason a scenario is refused.
	ErrInvalid = errors.New("invalid scenario")
)
