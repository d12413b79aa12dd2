package rtc

import (
	"testing"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
)

// startCounter counts how often its RTCP writer was bound.
type startCounter struct {
	interceptor.NoOp
	bound  int
	closed bool
}

func (s *startCounter) NewInterceptor(string) (interceptor.Interceptor, error) { return s, nil }

func (s *startCounter) BindRTCPWriter(w interceptor.RTCPWriter) interceptor.RTCPWriter {
	s.bound++
	return w
}

func (s *startCounter) Close() error { s.closed = true; return nil }

func TestLazyInterceptorStartsWithItsFirstRemoteStream(t *testing.T) {
	w := interceptor.RTCPWriterFunc(func([]rtcp.Packet, interceptor.Attributes) (int, error) { return 0, nil })
	inner := &startCounter{}
	l, err := (&lazyFactory{inner: inner}).NewInterceptor("pc")
	if err != nil {
		t.Fatal(err)
	}
	if got := l.BindRTCPWriter(w); got == nil {
		t.Fatal("BindRTCPWriter returned nil")
	}
	l.BindLocalStream(&interceptor.StreamInfo{}, nil)
	if inner.bound != 0 {
		t.Fatalf("started by a local stream")
	}
	l.BindRemoteStream(&interceptor.StreamInfo{}, nil)
	l.BindRemoteStream(&interceptor.StreamInfo{}, nil)
	if inner.bound != 1 {
		t.Fatalf("RTCP writer bound %d times, want once", inner.bound)
	}
	if err := l.Close(); err != nil || !inner.closed {
		t.Fatalf("Close: %v, inner closed %v", err, inner.closed)
	}
}
