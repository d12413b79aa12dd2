package rtc

import (
	"sync"
	"testing"

	"github.com/troupe-media/troupe/internal/poll"
)

// panicOnceSink makes sinks for a Track, the second of which panics as
// it is made.
type panicOnceSink struct {
	mu   sync.Mutex
	made int
}

func (p *panicOnceSink) newSink() Sink {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.made++
	if p.made == 2 {
		panic("the sink could not be made")
	}
	return nopSink{}
}

func (p *panicOnceSink) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.made
}

// TestTrackCheckPanicRecovered: a panic in a Track's layer check, on the
// clock's timer (here the recording sink's, made as the sink follows the
// top layer), is recovered, and the checks go on: the next one moves the
// sink where it belongs.
func TestTrackCheckPanicRecovered(t *testing.T) {
	fx := newSimulcastFixture(t)
	fx.tick(0, 1, 2)
	sinks := &panicOnceSink{}
	fx.track.SetSink(sinks.newSink)
	if fx.track.SinkLayer() != fx.layers[2] {
		t.Fatal("the sink does not take the top layer")
	}
	for range LayerIdleChecks { // the top layer stops: the sink moves, and panics
		fx.tick(0, 1)
	}
	if sinks.count() != 2 {
		t.Fatalf("%d sinks made, want the one that panicked second", sinks.count())
	}
	fx.tick(0, 1)
	if fx.track.SinkLayer() != fx.layers[1] || sinks.count() != 3 {
		t.Fatalf("after the panic: sink on %v, %d made; want it on layer 1, made again", fx.track.SinkLayer(), sinks.count())
	}
}

// TestTrackLayerEndPanicRecovered: a panic as a Track follows a layer's
// end, on that layer's watcher (here the recording sink's, made as the
// sink leaves the layer that ended), is recovered, and the next check
// places the sink.
func TestTrackLayerEndPanicRecovered(t *testing.T) {
	fx := newSimulcastFixture(t)
	fx.tick(0, 1, 2)
	sinks := &panicOnceSink{}
	fx.track.SetSink(sinks.newSink)
	if err := fx.layers[2].Close(); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "the sink made again as the top layer ended", func() bool { return sinks.count() == 2 })
	fx.tick(0, 1) // the next check places the sink
	if fx.track.SinkLayer() != fx.layers[1] || sinks.count() != 3 {
		t.Fatalf("after the panic: sink on %v, %d made; want it on layer 1, made again", fx.track.SinkLayer(), sinks.count())
	}
}
