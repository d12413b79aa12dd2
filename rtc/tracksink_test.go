package rtc

import (
	"encoding/binary"
	"slices"
	"sync"
	"testing"
)

// layerLog is what a Track's sinks received: the layer of each packet
// (its last byte) and how many sinks were made.
type layerLog struct {
	mu     sync.Mutex
	layers []int
	ssrcs  []uint32
	made   int
}

func (l *layerLog) newSink() Sink {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.made++
	return &layerLogSink{l}
}

type layerLogSink struct{ l *layerLog }

func (s *layerLogSink) WriteRTP(b []byte) {
	s.l.mu.Lock()
	defer s.l.mu.Unlock()
	s.l.layers = append(s.l.layers, int(b[len(b)-1]-'0'))
	s.l.ssrcs = append(s.l.ssrcs, binary.BigEndian.Uint32(b[8:]))
}

func (l *layerLog) snapshot() (layers []int, made int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.layers), l.made
}

// A Track's sink takes its highest layer, moves down when that layer
// stops, asking the layer it moves to for a keyframe, and back up when it
// comes again; each layer it takes has a sink of its own.
func TestTrackSinkFollowsTopLayer(t *testing.T) {
	fx := newSimulcastFixture(t)
	fx.sizeLayers([][2]int{{320, 180}, {640, 360}, {1280, 720}})
	log := &layerLog{}
	fx.track.SetSink(log.newSink)
	if fx.track.SinkLayer() != fx.layers[2] {
		t.Fatal("the sink does not take the top layer")
	}
	tick := fx.tick
	tick(0, 1, 2)
	plis := fx.plis.count()
	for range LayerIdleChecks {
		tick(0, 1) // the publisher stopped its top layer
	}
	if fx.track.SinkLayer() != fx.layers[1] {
		t.Fatal("the sink stayed on a layer that stopped")
	}
	if got := fx.plis.since(plis); !slices.Contains(got, layerSSRC(1)) {
		t.Fatalf("keyframes asked of %v, want of layer 1 (%d)", got, layerSSRC(1))
	}
	tick(0, 1, 2) // back
	if fx.track.SinkLayer() != fx.layers[2] {
		t.Fatal("the sink did not come back to the top layer")
	}
	tick(0, 1, 2)
	fx.track.SetSink(nil)
	before, _ := log.snapshot()
	tick(0, 1, 2) // settled: read and forwarded, to no sink
	layers, made := log.snapshot()
	// At most the packet being forwarded as it was removed (settle saw it
	// counted, which comes before the sink) reaches it.
	if len(layers) > len(before)+1 {
		t.Fatalf("the sink got %d packets after it was removed", len(layers)-len(before))
	}
	// Layer 2, then 1 from the check that found 2 stopped, then 2 again.
	var runs []int
	for _, l := range layers {
		if len(runs) == 0 || runs[len(runs)-1] != l {
			runs = append(runs, l)
		}
	}
	if !slices.Equal(runs, []int{2, 1, 2}) || made != 3 {
		t.Fatalf("the sinks got layers %v (runs %v) from %d sinks, want runs 2 1 2 from 3", layers, runs, made)
	}
}
