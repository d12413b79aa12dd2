package client

import "errors"

var (
	// ErrClosed is returned by calls on a client whose socket has ended.
	ErrClosed = errors.New("client: closed")
	// ErrServer wraps an error message from the server.
	ErrServer = errors.New("client: server error")
	// ErrRefused is returned by Dial when the server refuses the join.
	ErrRefused = errors.New("client: join refused")
)
