package httpapi

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"testing"

	"github.com/troupe-media/troupe/httpapi/auth"
	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/rtc/rtctest"
)

// narrowLink is a UDP relay between a browser and the media server's UDP
// port, standing for a narrow link: what the server sends the browser
// goes through the link's rtctest.Shaper, whose rate (SetRate; none
// until then) cuts the RTP and lets the rest (STUN, DTLS, RTCP) through
// whole, so that the connection stays up and its feedback flows. Each of
// the browser's sockets gets a socket of its own toward the server,
// which sees them as the browser's addresses.
type narrowLink struct {
	rtctest.Shaper
	front  *net.UDPConn // where the browser sends, instead of the server
	server netip.AddrPort
	wg     sync.WaitGroup

	mu     sync.Mutex // guards the following
	backs  map[netip.AddrPort]*net.UDPConn
	closed bool
}

// newNarrowLink starts a relay to the server's UDP address, unlimited
// until SetRate; it stops when the test ends.
func newNarrowLink(t *testing.T, server netip.AddrPort) *narrowLink {
	t.Helper()
	front, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	l := &narrowLink{front: front, server: server, backs: map[netip.AddrPort]*net.UDPConn{}}
	l.wg.Go(l.fromBrowser)
	t.Cleanup(l.close)
	return l
}

// Port is the relay's port on 127.0.0.1.
func (l *narrowLink) Port() int { return l.front.LocalAddr().(*net.UDPAddr).Port }

// fromBrowser forwards what the browser sends to the server, each of its
// addresses through a socket of its own.
func (l *narrowLink) fromBrowser() {
	buf := make([]byte, 1600)
	for {
		n, from, err := l.front.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		back, err := l.backFor(from)
		if err != nil {
			return
		}
		_, _ = back.Write(buf[:n]) // a datagram lost on loopback is lost
	}
}

// backFor is the socket toward the server of the browser's address from.
func (l *narrowLink) backFor(from netip.AddrPort) (*net.UDPConn, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, net.ErrClosed
	}
	if back := l.backs[from]; back != nil {
		return back, nil
	}
	back, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(l.server))
	if err != nil {
		return nil, err
	}
	l.backs[from] = back
	l.wg.Go(func() { l.toBrowser(back, from) })
	return back, nil
}

// toBrowser forwards what the server sends to back's socket on to the
// browser's address to, through the bucket.
func (l *narrowLink) toBrowser(back *net.UDPConn, to netip.AddrPort) {
	buf := make([]byte, 1600)
	for {
		n, err := back.Read(buf)
		if errors.Is(err, syscall.ECONNREFUSED) {
			continue // an earlier datagram found no socket: the next may
		}
		if err != nil {
			return // closed
		}
		if l.Pass(buf[:n]) {
			_, _ = l.front.WriteToUDPAddrPort(buf[:n], to)
		}
	}
}

func (l *narrowLink) close() {
	l.mu.Lock()
	l.closed = true
	_ = l.front.Close()
	for _, back := range l.backs {
		_ = back.Close()
	}
	l.mu.Unlock()
	l.wg.Wait()
}

// throughLink makes the page in tab reach the media server only through
// the relay on port: the server's UDP candidates it is given (in
// descriptions and trickled) are rewritten to the relay, its TCP ones
// dropped, and its own candidates are kept from the server, which learns
// the page's addresses from the relay's checks. The page's code is left
// alone: what changes is what it hears and sends.
const throughLink = `(() => {
	const port = %d;
	const rewrite = (line) => {
		const prefix = line.startsWith("a=") ? "a=" : "";
		const f = line.slice(prefix.length).split(" ");
		if (f.length < 8 || !f[0].startsWith("candidate:")) return line;
		if (f[2].toLowerCase() !== "udp") return null;
		f[4] = "127.0.0.1";
		f[5] = String(port);
		return prefix + f.join(" ");
	};
	const remote = (sdp) => sdp.split("\r\n").map(rewrite).filter((l) => l !== null).join("\r\n");
	const setRemote = RTCPeerConnection.prototype.setRemoteDescription;
	RTCPeerConnection.prototype.setRemoteDescription = function (d) {
		return setRemote.call(this, d && d.sdp ? {type: d.type, sdp: remote(d.sdp)} : d);
	};
	const addCandidate = RTCPeerConnection.prototype.addIceCandidate;
	RTCPeerConnection.prototype.addIceCandidate = function (c) {
		if (!c || !c.candidate) return addCandidate.call(this, c);
		const line = rewrite(c.candidate);
		return line === null ? Promise.resolve() : addCandidate.call(this, {...c, candidate: line});
	};
	const send = WebSocket.prototype.send;
	WebSocket.prototype.send = function (data) {
		const msg = JSON.parse(data);
		if (msg.type === "candidate") return;
		if (msg.sdp) msg.sdp = msg.sdp.split("\r\n").filter((l) => !l.startsWith("a=candidate:")).join("\r\n");
		return send.call(this, JSON.stringify(msg));
	};
	return true;
})()`

// TestBrowserBandwidthPause: a viewer's page receives a three-layer
// camera over a link that is then cut to less than the lowest layer
// needs. The server's estimate pauses the camera for it and says so; the
// tile shows "Paused: low bandwidth" and the sound goes on. The link
// restored, the camera resumes and the page decodes it again.
func TestBrowserBandwidthPause(t *testing.T) {
	r := startCameraRoom(t, "narrow")
	s, aliceID, camera := r.s, r.aliceID, r.camera
	t.Logf("alice's layers: %+v", r.layers)

	link := newNarrowLink(t, s.engine.LocalAddr().(*net.UDPAddr).AddrPort())
	slow := openPage(t, r.browser, s.srv.URL+"/rooms/narrow?token="+s.joinToken(t, "narrow", "slow", auth.RoleSubscriber))
	evalJS[bool](t, slow, fmt.Sprintf(throughLink, link.Port()))
	clickJS(t, slow, "join")
	waitPageMedia(t, slow, "the slow viewer's video and audio", true)

	// Cut to 60 kbps: audio fits, the lowest layer (up to 150 kbps) does not.
	link.SetRate(60_000)
	poll.Within(pageWait{TB: t, Tab: slow}, browserDeadline, "alice's tile paused for bandwidth on the slow page, as REST says", func() bool {
		return tilePaused(t, slow, aliceID) == "Paused: low bandwidth" && s.pausedFor(t, "narrow", "slow", camera, "bandwidth")
	})
	t.Logf("paused after %d datagrams dropped", link.Dropped())
	audio := evalJS[pageStats](t, slow, `window.troupe.stats()`).AudioPacketsReceived
	poll.Within(t, browserDeadline, "alice's sound to go on over the narrow link", func() bool {
		return evalJS[pageStats](t, slow, `window.troupe.stats()`).AudioPacketsReceived > audio+50
	})

	// The link whole again: the estimate recovers and the camera resumes.
	link.SetRate(0)
	var st pageStats
	frames := -1
	poll.Within(pageWait{TB: t, Tab: slow, More: func() string { return fmt.Sprintf("stats %+v", st) }}, browserDeadline, "the slow page to decode alice's camera again", func() bool {
		st = evalJS[pageStats](t, slow, `window.troupe.stats()`)
		if tilePaused(t, slow, aliceID) != "" {
			frames = -1
			return false
		}
		if frames < 0 {
			frames = st.VideoFramesDecoded
		}
		return st.VideoFramesDecoded > frames+30
	})
}
