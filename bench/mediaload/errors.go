package mediaload

import "errors"

// ErrInvalidConfig wraps every reason a Config is refused.
var ErrInvalidConfig = errors.New("mediaload: invalid config")
