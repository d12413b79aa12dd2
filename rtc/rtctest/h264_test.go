package rtctest

import (
	"bytes"
	"testing"

	"github.com/troupe-media/troupe/internal/h264"
)

// TestH264SPSSizes reads the sizes back from the SPS a SimulcastSender
// sends, as the server does.
func TestH264SPSSizes(t *testing.T) {
	for _, size := range append(SimulcastSizes, [2]int{1920, 1080}, [2]int{176, 144}) {
		w, h, ok := h264.SPSSize(h264SPS(size[0], size[1])[1:])
		if !ok || w != size[0] || h != size[1] {
			t.Fatalf("the SPS of %dx%d reads as %dx%d, %v", size[0], size[1], w, h, ok)
		}
	}
}

func TestNALUnitPreventsStartCodes(t *testing.T) {
	got := NALUnit(0x67, []byte{0, 0, 0, 0, 3, 1, 0, 0, 4})
	want := []byte{0x67, 0, 0, 3, 0, 0, 3, 3, 1, 0, 0, 4}
	if !bytes.Equal(got, want) {
		t.Fatalf("NALUnit = %x, want %x", got, want)
	}
}
