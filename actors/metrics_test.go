package actors

import (
	"errors"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// Every reason a refused join is counted with has its series from the
// start, at 0, as has every leave reason.
func TestRefusalAndLeaveSeriesStartAtZero(t *testing.T) {
	m, err := newMetrics(nil, func() float64 { return 0 })
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []error{ErrRoomNotFound, ErrRoomEnded, ErrRoomLocked, ErrRoomFull, ErrOutsideJoinWindow,
		ErrForbidden, ErrDraining, ErrRoomFailed, ErrUnavailable, errors.New("anything else")} {
		if r := refusalReason(e); !slices.Contains(refusalReasons, r) {
			t.Errorf("refusal reason %q of %v has no series from the start", r, e)
		}
	}
	if n := testutil.CollectAndCount(m.joinsRefused); n != len(refusalReasons) {
		t.Errorf("%d refused-join series, want %d", n, len(refusalReasons))
	}
	if n := testutil.CollectAndCount(m.leaves); n != len(leaveReasons) {
		t.Errorf("%d leave series, want %d", n, len(leaveReasons))
	}
}
