package rtc

import (
	"testing"

	"github.com/troupe-media/troupe/rtc/rtctest"
)

// TestLoopbackSimulcastVP9 is TestLoopbackSimulcast with a VP9 camera
// whose layers number their pictures on their own, the top layer's ids
// ahead of the low one's: the switching subscriber's picture ids and
// TL0PICIDX go on one by one from the low layer's keyframe, rather than
// back to the low layer's own, and the layers' sizes come from their
// keyframes' scalability structures.
func TestLoopbackSimulcastVP9(t *testing.T) {
	loopbackSimulcast(t, rtctest.AddSimulcastVP9, rtctest.VP9, nil)
}
