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

func TestLazyInterceptorStartsWithItsFirstStream(t *testing.T) {
	w := interceptor.RTCPWriterFunc(func([]rtcp.Packet, interceptor.Attributes) (int, error) { return 0, nil })
	for _, c := range []struct {
		name       string
		local      bool
		start, not func(interceptor.Interceptor)
	}{
		{"receiving", false,
			func(i interceptor.Interceptor) { i.BindRemoteStream(&interceptor.StreamInfo{}, nil) },
			func(i interceptor.Interceptor) { i.BindLocalStream(&interceptor.StreamInfo{}, nil) }},
		{"sending", true,
			func(i interceptor.Interceptor) { i.BindLocalStream(&interceptor.StreamInfo{}, nil) },
			func(i interceptor.Interceptor) { i.BindRemoteStream(&interceptor.StreamInfo{}, nil) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			inner := &startCounter{}
			l, err := (&lazyFactory{inner: inner, local: c.local}).NewInterceptor("pc")
			if err != nil {
				t.Fatal(err)
			}
			if got := l.BindRTCPWriter(w); got == nil {
				t.Fatal("BindRTCPWriter returned nil")
			}
			c.not(l)
			if inner.bound != 0 {
				t.Fatalf("started by a stream of the other direction")
			}
			c.start(l)
			c.start(l)
			if inner.bound != 1 {
				t.Fatalf("RTCP writer bound %d times, want once", inner.bound)
			}
			if err := l.Close(); err != nil || !inner.closed {
				t.Fatalf("Close: %v, inner closed %v", err, inner.closed)
			}
		})
	}
}
