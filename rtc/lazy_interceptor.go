package rtc

import (
	"sync"
	"sync/atomic"

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
//
// Until then it also keeps the connection's RTCP from the inner
// interceptor: pion's receiver reports parse every RTCP packet of a
// connection for the sender reports of the streams it receives, and a
// connection that receives nothing has only feedback on what it sends
// (a subscriber's transport-cc, ten reports a second), which the
// estimator reads in place.
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
	// receiving: a remote stream has been bound; the connection's RTCP
	// goes through inner from then on.
	receiving atomic.Bool

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
	inner := l.inner.BindRTCPReader(r)
	return interceptor.RTCPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		if l.receiving.Load() {
			return inner.Read(b, a)
		}
		return r.Read(b, a)
	})
}

func (l *lazyInterceptor) BindLocalStream(info *interceptor.StreamInfo, w interceptor.RTPWriter) interceptor.RTPWriter {
	return l.inner.BindLocalStream(info, w)
}

func (l *lazyInterceptor) UnbindLocalStream(info *interceptor.StreamInfo) {
	l.inner.UnbindLocalStream(info)
}

func (l *lazyInterceptor) BindRemoteStream(info *interceptor.StreamInfo, r interceptor.RTPReader) interceptor.RTPReader {
	l.receiving.Store(true)
	l.start()
	return l.inner.BindRemoteStream(info, r)
}

func (l *lazyInterceptor) UnbindRemoteStream(info *interceptor.StreamInfo) {
	l.inner.UnbindRemoteStream(info)
}

func (l *lazyInterceptor) Close() error { return l.inner.Close() }
