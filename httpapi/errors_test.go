package httpapi

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/troupe-media/troupe/actors"
)

// A 422 names the field to blame in details.field, as the contract's
// Errors say: the domain errors of a request's fields are mapped so, the
// offer's refusals naming sdp.
func TestUnprocessableNamesField(t *testing.T) {
	for _, tt := range []struct {
		err         error
		code, field string
	}{
		{&actors.ValidationError{Field: "config.fps", Reason: "too high"}, codeValidationFailed, "config.fps"},
		{&actors.NotProvidedError{Field: "layout", Reason: "needs decoding"}, codeNotProvided, "layout"},
		{fmt.Errorf("join: %w: only G.722 offered", actors.ErrNoAcceptableMedia), codeNoAcceptableMedia, "sdp"},
		{fmt.Errorf("join: %w: the room is in VP8", actors.ErrNoCommonCodec), codeNoCommonCodec, "sdp"},
		{fmt.Errorf("send: %w", &actors.DataFieldError{Field: "topic", Reason: "is required"}), codeInvalidDataMessage, "topic"},
		{fmt.Errorf("send: %w: %q", actors.ErrUnknownTarget, "PA_x"), codeUnknownTarget, "to"},
	} {
		ae, unexpected := toAPIError(tt.err)
		if unexpected || ae.status != http.StatusUnprocessableEntity || ae.code != tt.code || ae.details["field"] != tt.field {
			t.Errorf("%v: %d %s %v, want 422 %s on %s", tt.err, ae.status, ae.code, ae.details, tt.code, tt.field)
		}
		if ae.message != tt.err.Error() && tt.code != codeValidationFailed && tt.code != codeNotProvided {
			t.Errorf("%v: message %q, want the error's own", tt.err, ae.message)
		}
	}
}
