package rtctest

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
	"github.com/pion/webrtc/v4"

	"github.com/troupe-media/troupe/internal/poll"
)

func rtpHeader(first, second byte, seq uint16, ssrc uint32) []byte {
	b := make([]byte, 12, 40)
	b[0], b[1] = first, second
	binary.BigEndian.PutUint16(b[2:], seq)
	binary.BigEndian.PutUint32(b[8:], ssrc)
	return append(b, make([]byte, 28)...)
}

// Only RTP datagrams have a key; the first-byte ranges of RFC 7983 and the
// RTCP packet types of RFC 5761 sort out the rest.
func TestRTPKey(t *testing.T) {
	for _, c := range []struct {
		name string
		b    []byte
		ok   bool
	}{
		{"empty", nil, false},
		{"one byte", []byte{0x80}, false},
		{"header minus one", rtpHeader(0x80, 96, 1, 7)[:11], false},
		{"bare header", rtpHeader(0x80, 96, 1, 7)[:12], true},
		{"VP8 with marker", rtpHeader(0x80, 0x80|96, 1, 7), true},
		{"payload type 0", rtpHeader(0x80, 0, 1, 7), true},
		{"payload type 63", rtpHeader(0x80, 63, 1, 7), true},
		{"payload type 96", rtpHeader(0x80, 96, 1, 7), true},
		{"padding, extension, CSRCs", rtpHeader(0xbf, 111, 1, 7), true},
		{"RTCP SR", rtpHeader(0x80, 200, 1, 7), false},
		{"RTCP first type", rtpHeader(0x81, 192, 1, 7), false},
		{"RTCP last type", rtpHeader(0x81, 223, 1, 7), false},
		{"RTCP PLI", rtpHeader(0x81, 206, 1, 7), false},
		{"STUN binding request", rtpHeader(0x00, 0x01, 1, 7), false},
		{"DTLS record", rtpHeader(22, 0xfe, 1, 7), false},
		{"TURN channel", rtpHeader(0x40, 0x00, 1, 7), false},
		{"version 3", rtpHeader(0xc0, 96, 1, 7), false},
		{"all ones", []byte{255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255}, false},
	} {
		ssrc, seq, ok := rtpKey(c.b)
		if ok != c.ok {
			t.Errorf("%s: ok %v, want %v", c.name, ok, c.ok)
		}
		if ok && (ssrc != 7 || seq != 1) {
			t.Errorf("%s: ssrc %d seq %d", c.name, ssrc, seq)
		}
	}
}

// The ring keeps the last arrivalRing sequence numbers of an SSRC and
// tells an overwritten slot from the packet asked for.
func TestArrivalsRing(t *testing.T) {
	a := NewArrivals()
	t0 := time.Unix(1000, 0)
	for i := range 3 * arrivalRing {
		seq := uint16(65000 + i) // wraps
		a.observe(rtpHeader(0x80, 96, seq, 5), t0.Add(time.Duration(i)))
	}
	last := uint16(65000 + 3*arrivalRing - 1 - 65536)
	if at, ok := a.Lookup(5, last); !ok || !at.Equal(t0.Add(3*arrivalRing-1)) {
		t.Errorf("last packet: %v %v", at, ok)
	}
	if _, ok := a.Lookup(5, last-arrivalRing); ok {
		t.Error("an overwritten packet was found")
	}
	if _, ok := a.Lookup(6, last); ok {
		t.Error("an unknown SSRC was found")
	}
	for ssrc := range uint32(2 * maxArrivalSSRCs) {
		a.observe(rtpHeader(0x80, 96, 1, 100+ssrc), t0)
	}
	if len(a.rings) != maxArrivalSSRCs {
		t.Errorf("%d rings, want at most %d", len(a.rings), maxArrivalSSRCs)
	}
}

// A socket of the wrapped network records when RTP datagrams arrived, as
// the kernel saw them and not when they were read, and ignores RTCP,
// STUN and DTLS.
func TestStampConnRecordsRTP(t *testing.T) {
	base, err := stdnet.NewNet()
	if err != nil {
		t.Fatal(err)
	}
	a := NewArrivals()
	n := &wrappedNet{Net: base, wrap: func(c *net.UDPConn) transport.UDPConn { return newStampConn(c, a) }}
	rc, err := n.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	conn := rc.(*stampConn)
	if runtime.GOOS == "linux" && !conn.kernel {
		t.Error("no kernel timestamps on Linux")
	}
	tx, err := net.DialUDP("udp4", nil, rc.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()

	buf := make([]byte, 1500)
	if conn.kernel {
		waitKernelStamps(t, conn, tx, buf)
	}

	dgrams := [][]byte{
		rtpHeader(0x80, 96, 10, 42),
		rtpHeader(0x81, 201, 11, 42),  // RTCP RR
		rtpHeader(0x00, 0x01, 12, 42), // STUN-like
		rtpHeader(22, 0xfe, 13, 42),   // DTLS-like
		rtpHeader(0x80, 0x80|96, 14, 42),
	}
	before := time.Now()
	for _, d := range dgrams {
		if _, err := tx.Write(d); err != nil {
			t.Fatal(err)
		}
	}
	sent := time.Now()
	// A late read: the kernel's timestamps stay at the arrival. The pause
	// is what the test measures, so it stays a sleep.
	const late = 50 * time.Millisecond
	time.Sleep(late)
	if err := conn.SetReadDeadline(time.Now().Add(poll.Timeout)); err != nil {
		t.Fatal(err)
	}
	for i := range dgrams {
		var (
			n   int
			err error
		)
		switch i % 3 { // each read path records
		case 0:
			n, _, err = conn.ReadFromAddrPort(buf)
		case 1:
			n, _, err = conn.ReadFrom(buf)
		case 2:
			n, err = conn.Read(buf)
		}
		if err != nil || n != len(dgrams[i]) {
			t.Fatalf("read %d: %d bytes, %v", i, n, err)
		}
	}
	read := time.Now()
	for _, seq := range []uint16{11, 12, 13} {
		if _, ok := a.Lookup(42, seq); ok {
			t.Errorf("seq %d: a datagram that is not RTP was recorded", seq)
		}
	}
	for _, seq := range []uint16{10, 14} {
		at, ok := a.Lookup(42, seq)
		if !ok {
			t.Fatalf("seq %d: RTP arrival not recorded", seq)
		}
		if at.Before(before.Add(-time.Millisecond)) || at.After(read) {
			t.Errorf("seq %d: arrival %v outside [%v, %v]", seq, at, before, read)
		}
		if conn.kernel && at.After(sent.Add(late/2)) {
			t.Errorf("seq %d: arrival %v after the send ended (%v): the read time, not the kernel's", seq, at, sent)
		}
	}
	// Writes pass through.
	if _, err := conn.WriteToAddrPort([]byte("pong"), netip.MustParseAddrPort(tx.LocalAddr().String())); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.WriteTo([]byte("pong"), tx.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := tx.SetReadDeadline(time.Now().Add(poll.Timeout)); err != nil {
			t.Fatal(err)
		}
		if n, err := tx.Read(buf); err != nil || string(buf[:n]) != "pong" {
			t.Fatalf("reply: %q %v", buf[:n], err)
		}
	}
}

// waitKernelStamps waits until the kernel stamps datagrams as they come
// in: it turns that on for the whole stack some time after the first
// socket asks (a deferred static-key switch), and stamps at the read
// until then.
func waitKernelStamps(t *testing.T, conn *stampConn, tx *net.UDPConn, buf []byte) {
	t.Helper()
	probe := rtpHeader(0x80, 96, 0, 1)
	for try := range 100 {
		binary.BigEndian.PutUint16(probe[2:], uint16(try))
		if _, err := tx.Write(probe); err != nil {
			t.Fatal(err)
		}
		sent := time.Now()
		// A late read tells a stamp taken on arrival from one taken at
		// the read: the pause is the measurement, not a wait.
		time.Sleep(20 * time.Millisecond)
		if err := conn.SetReadDeadline(time.Now().Add(poll.Timeout)); err != nil {
			t.Fatal(err)
		}
		if _, _, err := conn.ReadFromAddrPort(buf); err != nil {
			t.Fatal(err)
		}
		if at, ok := conn.arrivals.Lookup(1, uint16(try)); ok && at.Before(sent.Add(10*time.Millisecond)) {
			return
		}
	}
	t.Fatal("the kernel never stamped a datagram on arrival")
}

// Reading a datagram through the wrapper allocates nothing once its SSRC
// has a ring.
func TestStampConnReadDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	base, err := stdnet.NewNet()
	if err != nil {
		t.Fatal(err)
	}
	a := NewArrivals()
	rc, err := (&wrappedNet{Net: base, wrap: func(c *net.UDPConn) transport.UDPConn { return newStampConn(c, a) }}).ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	conn := rc.(*stampConn)
	tx, err := net.DialUDP("udp4", nil, rc.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	d, buf := rtpHeader(0x80, 96, 1, 9), make([]byte, 1500)
	seq := uint16(0)
	allocs := testing.AllocsPerRun(100, func() {
		seq++
		binary.BigEndian.PutUint16(d[2:], seq)
		if _, err := tx.Write(d); err != nil {
			t.Fatal(err)
		}
		if _, _, err := conn.ReadFromAddrPort(buf); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 0 {
		t.Errorf("%v allocations a read", allocs)
	}
}

// Through a real pion connection over loopback, a receiver's samples
// carry a path latency, which ends before the end-to-end one does.
func TestReceiverPathLatency(t *testing.T) {
	if testing.Short() {
		t.Skip("runs WebRTC peers")
	}
	sendAPI, err := ClientAPI()
	if err != nil {
		t.Fatal(err)
	}
	recvAPI, arrivals, err := ClientAPIWithArrivals()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := sendAPI.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	sub, err := recvAPI.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()

	track, err := webrtc.NewTrackLocalStaticRTP(VP8, "video", "pub")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pub.AddTrack(track); err != nil {
		t.Fatal(err)
	}
	got := make(chan *Receiver, 1)
	done := make(chan struct{})
	sub.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		r := NewReceiverWithArrivals(tr, arrivals)
		got <- r
		r.Run()
		close(done)
	})
	signal(t, pub, sub)

	ctx, cancel := context.WithTimeout(context.Background(), poll.Timeout)
	defer cancel()
	s := &Sender{Track: track, PayloadSize: 1000, PacketsPerFrame: 3, TimestampStep: 3000, KeyframeEvery: 30}
	go func() { _ = s.RunFrames(ctx, 10*time.Millisecond) }()
	var r *Receiver
	select {
	case r = <-got:
	case <-ctx.Done():
		t.Fatal("no track arrived")
	}
	poll.Until(t, "100 packets", func() bool { return r.Stats().Packets >= 100 })
	cancel()
	samples := r.Drain()
	if len(samples) < 100 {
		t.Fatalf("%d samples", len(samples))
	}
	withPath := 0
	for _, smp := range samples {
		if smp.PathLatency == 0 {
			continue
		}
		withPath++
		if smp.PathLatency < 0 || smp.PathLatency > smp.Latency {
			t.Errorf("packet %d: path latency %v, end-to-end %v", smp.Counter, smp.PathLatency, smp.Latency)
		}
	}
	if withPath < len(samples)*9/10 {
		t.Errorf("%d of %d samples have a path latency", withPath, len(samples))
	}
	pub.Close()
	sub.Close()
	<-done
}

// signal connects two peer connections, offer from a, with every
// candidate in the descriptions.
func signal(t *testing.T, a, b *webrtc.PeerConnection) {
	t.Helper()
	offer, err := a.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(a)
	if err := a.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	if err := b.SetRemoteDescription(*a.LocalDescription()); err != nil {
		t.Fatal(err)
	}
	answer, err := b.CreateAnswer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered = webrtc.GatheringCompletePromise(b)
	if err := b.SetLocalDescription(answer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	if err := a.SetRemoteDescription(*b.LocalDescription()); err != nil {
		t.Fatal(err)
	}
}
