package auth

import "errors"

var (
	// ErrInvalidToken: the token is malformed, badly signed, from an unknown
	// key, or lacks a required claim. Callers answer 401.
	ErrInvalidToken = errors.New("auth: invalid token")
	// ErrExpiredToken: the token was valid but its exp has passed. Callers answer 401.
	ErrExpiredToken = errors.New("auth: token expired")
	// ErrInvalidKey: an API key or secret that cannot sign.
	ErrInvalidKey = errors.New("auth: invalid key")
)
