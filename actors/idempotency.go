package actors

import (
	"context"
	"errors"
	"fmt"

	"github.com/troupe-media/troupe/persistence"
)

// IdempotentResponse is a response the API sent for a request that carried
// an Idempotency-Key. It is the store's record, named here so that the HTTP
// edge keeps to its one dependency below it.
type IdempotentResponse = persistence.IdempotentResponse

// IdempotentHeader is a header of an IdempotentResponse.
type IdempotentHeader = persistence.Header

// IdempotencyStore is what Idempotency needs of storage; *persistence.Store
// is one.
type IdempotencyStore interface {
	GetIdempotent(ctx context.Context, scope, key string) (*persistence.IdempotentResponse, error)
	PutIdempotent(ctx context.Context, scope, key string, r persistence.IdempotentResponse) error
}

// Idempotency keeps the API's responses to requests made with an
// Idempotency-Key, by scope (the API key) and key, for the store's
// idempotency TTL. It holds no room state: no actor is involved.
type Idempotency struct {
	store IdempotencyStore
}

// NewIdempotency keeps responses in store.
func NewIdempotency(store IdempotencyStore) *Idempotency {
	return &Idempotency{store: store}
}

// Response returns the response kept under scope and key; found is false if
// there is none or it has expired.
func (i *Idempotency) Response(ctx context.Context, scope, key string) (_ *IdempotentResponse, found bool, err error) {
	r, err := i.store.GetIdempotent(ctx, scope, key)
	if errors.Is(err, persistence.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("get idempotent response: %w", err)
	}
	return r, true, nil
}

// Keep stores r under scope and key, replacing any earlier response; it is
// synced before Keep returns.
func (i *Idempotency) Keep(ctx context.Context, scope, key string, r IdempotentResponse) error {
	if err := i.store.PutIdempotent(ctx, scope, key, r); err != nil {
		return fmt.Errorf("keep idempotent response: %w", err)
	}
	return nil
}
