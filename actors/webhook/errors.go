package webhook

import "errors"

var (
	// ErrInvalidEndpoint is wrapped by errors about an endpoint that is not
	// an absolute http or https URL without credentials.
	ErrInvalidEndpoint = errors.New("webhook: invalid endpoint")
	// ErrForbiddenAddress is wrapped by errors about an endpoint that
	// resolves to a loopback, private, link-local, unique-local, unspecified
	// or otherwise non-public address while private endpoints are not
	// allowed. Deliveries refused for it fail at once, without retries.
	ErrForbiddenAddress = errors.New("webhook: endpoint address not allowed")
	// ErrInvalidEvent is wrapped by errors about an event that cannot be
	// delivered: an unknown name or data that is not a JSON object.
	ErrInvalidEvent = errors.New("webhook: invalid event")
	// ErrSignatureMalformed is returned by Verify for a header that is not
	// "t=<unix>,v1=<hex>".
	ErrSignatureMalformed = errors.New("webhook: malformed signature header")
	// ErrSignatureMismatch is returned by Verify when no v1 signature
	// matches the body and secret.
	ErrSignatureMismatch = errors.New("webhook: signature mismatch")
	// ErrSignatureExpired is returned by Verify when the signature's time
	// is further from now than the tolerance: a replay, or a skewed clock.
	ErrSignatureExpired = errors.New("webhook: signature timestamp outside tolerance")
	// ErrRunning is returned by Run when the Deliverer is already running.
	ErrRunning = errors.New("webhook: deliverer already running")
)
