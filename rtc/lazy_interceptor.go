package rtc

import (
	"sync"

	"github.com/pion/interceptor"
)

// lazyFactory makes interceptors that start only once they have work.
//
// pion's NACK generator, receiver reports and transport-cc feedback each
// start a goroutine with a ticker when a peer connection binds its RTCP
// writer, whether or not a stream ever comes in: a subscriber's
// connection, which receives nothing, would run three tickers (ten
// wake-ups a second each for two of them) for nothing. A lazy interceptor
// hands the RTCP writer on only when the first remote (received) stream is
// bound.
//
// It suits interceptors whose BindRTCPWriter returns the writer it was
// given, as those three do.
type lazyFactory struct {
	inner interceptor.Factory
}

func (f *lazyFactory) NewInterceptor(id string) (interceptor.Interceptor, error) {
	in, err := f.inner.NewInterceptor(id)
	if err != nil {
		return nil, err
	}
	return &lazyInterceptor{inner: in}, nil
}

type lazyInterceptor struct {
	inner interceptor.Interceptor

	mu      sync.Mutex
	writer  interceptor.RTCPWriter
	started bool
}

// start binds the RTCP writer to the inner interceptor, once.
func (l *lazyInterceptor) start() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.started || l.writer == nil {
		return
	}
	l.started = true
	l.inner.BindRTCPWriter(l.writer)
}

func (l *lazyInterceptor) BindRTCPWriter(w interceptor.RTCPWriter) interceptor.RTCPWriter {
	l.mu.Lock()
	l.writer = w
	l.mu.Unlock()
	return w
}

func (l *lazyInterceptor) BindRTCPReader(r interceptor.RTCPReader) interceptor.RTCPReader {
	return l.inner.BindRTCPReader(r)
}

func (l *lazyInterceptor) BindLocalStream(info *interceptor.StreamInfo, w interceptor.RTPWriter) interceptor.RTPWriter {
	return l.inner.BindLocalStream(info, w)
}

func (l *lazyInterceptor) UnbindLocalStream(info *interceptor.StreamInfo) {
	l.inner.UnbindLocalStream(info)
}

func (l *lazyInterceptor) BindRemoteStream(info *interceptor.StreamInfo, r interceptor.RTPReader) interceptor.RTPReader {
	l.start()
	return l.inner.BindRemoteStream(info, r)
}

func (l *lazyInterceptor) UnbindRemoteStream(info *interceptor.StreamInfo) {
	l.inner.UnbindRemoteStream(info)
}

func (l *lazyInterceptor) Close() error { return l.inner.Close() }
