package client

import (
	"errors"
	"fmt"
	"time"
)

var (
	// ErrClosed is returned by calls on a client whose socket has ended.
	ErrClosed = errors.New("client: closed")
	// ErrServer wraps an error message from the server.
	ErrServer = errors.New("client: server error")
	// ErrRefused is returned by Dial when the server refuses the join.
	ErrRefused = errors.New("client: join refused")
	// ErrGaveUp is a Session's error when its reconnection attempts ran
	// out.
	ErrGaveUp = errors.New("client: gave up reconnecting")
	// ErrFinal is a Session's error when the server ended its
	// participation for good: it was kicked, replaced, left, or the room
	// ended, or a join was refused for a reason that a retry cannot
	// change.
	ErrFinal = errors.New("client: ended for good")
)

// RefusedError is a join the server refused: an HTTP error before the
// WebSocket upgrade (token in the URL), or an error message and a 4000 +
// status close (token in the join message). It matches ErrRefused.
type RefusedError struct {
	// Status is the HTTP status (from the close code 4000 + status when
	// the join was in a message); 0 when not known.
	Status int
	// Code is the API's error code, like room_unavailable.
	Code string
	// RetryAfter is the server's Retry-After (or the retry_after_ms of a
	// refused join message), zero when it sent none.
	RetryAfter time.Duration
	// Detail is the status line or the error message.
	Detail string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("client: join refused: %d %s: %s", e.Status, e.Code, e.Detail)
}

// Is makes errors.Is(err, ErrRefused) hold.
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

// Retryable reports whether joining again may succeed: the room is
// unavailable for now (503, as while another node takes a room over) or
// the server asks to slow down (429).
func (e *RefusedError) Retryable() bool {
	return e.Status == 503 || e.Status == 429 || e.Status == 502 || e.Status == 504
}
