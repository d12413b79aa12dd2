package rtc

import (
	"testing"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
)

// startCounter counts how often its RTCP writer was bound, and the RTCP
// packets read through it.
type startCounter struct {
	interceptor.NoOp
	bound  int
	reads  int
	closed bool
}

func (s *startCounter) BindRTCPReader(r interceptor.RTCPReader) interceptor.RTCPReader {
	return interceptor.RTCPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		s.reads++
		return r.Read(b, a)
	})
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
	read := 0
	r := l.BindRTCPReader(interceptor.RTCPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		read++
		return len(b), a, nil
	}))
	l.BindLocalStream(&interceptor.StreamInfo{}, nil)
	if _, _, err := r.Read([]byte{1}, nil); err != nil || read != 1 {
		t.Fatalf("RTCP read %d times, %v", read, err)
	}
	if inner.bound != 0 || inner.reads != 0 {
		t.Fatalf("started by a local stream: writer bound %d times, %d RTCP reads through it", inner.bound, inner.reads)
	}
	l.BindRemoteStream(&interceptor.StreamInfo{}, nil)
	l.BindRemoteStream(&interceptor.StreamInfo{}, nil)
	if inner.bound != 1 {
		t.Fatalf("RTCP writer bound %d times, want once", inner.bound)
	}
	if _, _, err := r.Read([]byte{1}, nil); err != nil || read != 2 || inner.reads != 1 {
		t.Fatalf("after a remote stream: %d reads, %d through the inner interceptor, %v; want 2 and 1", read, inner.reads, err)
	}
	if err := l.Close(); err != nil || !inner.closed {
		t.Fatalf("Close: %v, inner closed %v", err, inner.closed)
	}
}
