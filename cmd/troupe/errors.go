package main

import "errors"

var (
	// ErrInvalidConfig: a flag, environment variable or YAML file sets a
	// value that cannot be used. Nothing has been started.
	ErrInvalidConfig = errors.New("invalid configuration")
	// ErrNoKey: no API key was configured and none is saved in the data dir.
	ErrNoKey = errors.New("no API key")
)
