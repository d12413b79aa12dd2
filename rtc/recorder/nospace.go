package recorder

import (
	"errors"
	"fmt"
	"syscall"
)

// checkFree fails with ErrDiskFull when the file system of cfg.Dir has
// less than cfg.MinFreeBytes free; a minimum of zero checks nothing.
func checkFree(cfg *Config) error {
	if cfg.MinFreeBytes == 0 {
		return nil
	}
	measure := cfg.FreeSpace
	if measure == nil {
		measure = systemFree
	}
	free, err := measure(cfg.Dir)
	switch {
	case errors.Is(err, errors.ErrUnsupported):
		return nil
	case err != nil:
		return fmt.Errorf("recorder: free space of %s: %w", cfg.Dir, err)
	case free < cfg.MinFreeBytes:
		return fmt.Errorf("%w: %d bytes free in %s, below the minimum of %d", ErrDiskFull, free, cfg.Dir, cfg.MinFreeBytes)
	}
	return nil
}

func isNoSpace(err error) bool { return errors.Is(err, syscall.ENOSPC) }
