package rtctest

import (
	"io"
	"strings"
	"sync"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// ClientAPIWithAudioDelay is ClientAPI whose peers send their audio RTP
// delay late: after pion's sender reports have mapped its timestamps to
// the time it was written, as if the audio's path to the server were that
// much longer than the video's. Sender reports go every srInterval (zero:
// pion's second), so that a test need not wait for the first.
func ClientAPIWithAudioDelay(delay, srInterval time.Duration) (*webrtc.API, error) {
	types := []webrtc.NetworkType{webrtc.NetworkTypeUDP4}
	return newClientAPIWith(nil, types, pathOptions{first: []interceptor.Factory{delayFactory{delay}}, senderReports: srInterval})
}

// delayFactory makes a peer's audio delayer.
type delayFactory struct{ d time.Duration }

func (f delayFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &delayInterceptor{d: f.d, queue: make(chan delayed, 1024), done: make(chan struct{})}, nil
}

// delayed is a packet waiting for its time.
type delayed struct {
	due     time.Time
	w       interceptor.RTPWriter
	h       rtp.Header
	payload []byte
}

// delayInterceptor holds a peer's audio packets for d, in order, and
// sends them from its own goroutine, which Close (the peer's) stops.
type delayInterceptor struct {
	interceptor.NoOp
	d     time.Duration
	queue chan delayed
	start sync.Once
	stop  sync.Once
	done  chan struct{}
	wg    sync.WaitGroup
}

func (i *delayInterceptor) BindLocalStream(info *interceptor.StreamInfo, w interceptor.RTPWriter) interceptor.RTPWriter {
	if !strings.HasPrefix(info.MimeType, "audio/") {
		return w
	}
	i.start.Do(func() {
		i.wg.Add(1)
		go i.run()
	})
	return interceptor.RTPWriterFunc(func(h *rtp.Header, payload []byte, _ interceptor.Attributes) (int, error) {
		p := delayed{due: time.Now().Add(i.d), w: w, h: h.Clone(), payload: append([]byte(nil), payload...)}
		select {
		case i.queue <- p:
			return len(payload), nil
		case <-i.done:
			return 0, io.ErrClosedPipe
		}
	})
}

func (i *delayInterceptor) run() {
	defer i.wg.Done()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		var p delayed
		select {
		case p = <-i.queue:
		case <-i.done:
			return
		}
		// The packet's own time on the path, not a synchronisation.
		timer.Reset(time.Until(p.due))
		select {
		case <-timer.C:
		case <-i.done:
			return
		}
		// A write error is the connection's end: Close follows.
		_, _ = p.w.Write(&p.h, p.payload, nil)
	}
}

func (i *delayInterceptor) Close() error {
	i.stop.Do(func() { close(i.done) })
	i.wg.Wait()
	return nil
}
