package rtc

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/interceptor/pkg/report"
	"github.com/pion/interceptor/pkg/twcc"
	"github.com/pion/sdp/v3"
	"github.com/pion/transport/v5/stdnet"
	"github.com/pion/webrtc/v4"
)

// Engine is the server's one pion API: the codecs and RTCP feedback it
// negotiates, the interceptors every peer connection runs, and the UDP port
// they all share.
type Engine struct {
	api  *webrtc.API
	conn net.PacketConn
	mux  io.Closer
	// sends batches the fan-out writers' datagrams; nil where the
	// platform cannot.
	sends sendBatcher
	cfg   Config
	log   *slog.Logger

	mu     sync.Mutex // guards the following
	closed bool
	// cert is the DTLS certificate every peer connection presents, made
	// once and again when it nears expiry: generating a key pair and
	// signing a certificate for each connection costs more CPU than the
	// rest of making the connection.
	cert *webrtc.Certificate
}

// certRenewBefore is how long before its expiry the shared certificate is
// replaced (pion's certificates are valid for a month). A connection keeps
// the certificate it was made with.
const certRenewBefore = 24 * time.Hour

// interceptorSet selects the interceptors an Engine runs; benchmarks use it
// to measure what each one costs per packet.
type interceptorSet uint8

const (
	withNACKGenerator interceptorSet = 1 << iota
	withReceiverReports
	withTWCC

	defaultInterceptors = withNACKGenerator | withReceiverReports | withTWCC
)

// NewEngine opens the UDP port and builds the pion API.
func NewEngine(cfg Config) (*Engine, error) {
	return newEngine(cfg, defaultInterceptors)
}

func newEngine(cfg Config, set interceptorSet) (*Engine, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	m := &webrtc.MediaEngine{}
	if err := registerCodecs(m); err != nil {
		return nil, fmt.Errorf("rtc: register codecs: %w", err)
	}
	reg := &interceptor.Registry{}
	if err := registerInterceptors(reg, set); err != nil {
		return nil, fmt.Errorf("rtc: register interceptors: %w", err)
	}

	addr := net.JoinHostPort(cfg.BindAddr, strconv.Itoa(cfg.UDPPort))
	conn, err := net.ListenPacket("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("rtc: listen on UDP %s: %w", addr, err)
	}
	logs := pionLoggerFactory{l: cfg.Logger}
	shared := newSharedUDPConn(conn, cfg.Logger)
	mux := webrtc.NewICEUDPMux(logs.NewLogger("udpmux"), shared)

	var s webrtc.SettingEngine
	s.LoggerFactory = logs
	s.SetICEUDPMux(mux)
	// The mux may be bound to 127.0.0.1, which pion leaves out by default.
	s.SetIncludeLoopbackCandidate(true)
	// mDNS would open a socket per peer connection; the server's
	// candidates are plain addresses.
	s.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	// One table of the host's interfaces for every connection: left to
	// itself, pion's ICE agent dumps the interfaces over netlink for each
	// peer connection and keeps its own copy. The mux is bound once, so
	// the table it was bound with is the one that counts.
	hostNet, err := stdnet.NewNet()
	if err != nil {
		_ = mux.Close()
		return nil, fmt.Errorf("rtc: network interfaces: %w", err)
	}
	s.SetNet(hostNet)
	if cfg.LoopbackOnly {
		s.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
		s.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	}
	if len(cfg.AnnounceIPs) > 0 {
		err := s.SetICEAddressRewriteRules(webrtc.ICEAddressRewriteRule{
			External:        cfg.AnnounceIPs,
			AsCandidateType: webrtc.ICECandidateTypeHost,
			Mode:            webrtc.ICEAddressRewriteReplace,
		})
		if err != nil {
			_ = mux.Close()
			return nil, fmt.Errorf("%w: announce addresses: %w", ErrBadConfig, err)
		}
	}
	sends, _ := shared.(sendBatcher)
	e := &Engine{
		sends: sends,
		api: webrtc.NewAPI(
			webrtc.WithMediaEngine(m),
			webrtc.WithInterceptorRegistry(reg),
			webrtc.WithSettingEngine(s),
		),
		conn: conn,
		mux:  mux,
		cfg:  cfg,
		log:  cfg.Logger,
	}
	e.log.Info("rtc engine listening", "udp", conn.LocalAddr().String(), "announce", cfg.AnnounceIPs)
	return e, nil
}

// Video RTCP feedback: NACK for losses, PLI and FIR for keyframes, and
// transport-cc for the publisher's bandwidth estimate. goog-remb is not
// offered: Troupe sends no REMB, and browsers prefer transport-cc.
var videoFeedback = []webrtc.RTCPFeedback{
	{Type: webrtc.TypeRTCPFBNACK},
	{Type: webrtc.TypeRTCPFBNACK, Parameter: "pli"},
	{Type: webrtc.TypeRTCPFBCCM, Parameter: "fir"},
	{Type: webrtc.TypeRTCPFBTransportCC},
}

// registerCodecs registers the codecs Troupe forwards. RTX is not offered:
// retransmissions come on the media SSRC, so one packet cache per track
// answers every subscriber.
func registerCodecs(m *webrtc.MediaEngine) error {
	const h264 = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id="
	audio := []webrtc.RTPCodecParameters{{
		RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2,
			SDPFmtpLine:  "minptime=10;useinbandfec=1",
			RTCPFeedback: []webrtc.RTCPFeedback{{Type: webrtc.TypeRTCPFBTransportCC}},
		},
		PayloadType: 111,
	}}
	video := []webrtc.RTPCodecParameters{
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, PayloadType: 96},
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP9, ClockRate: 90000, SDPFmtpLine: "profile-id=0"}, PayloadType: 98},
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP9, ClockRate: 90000, SDPFmtpLine: "profile-id=2"}, PayloadType: 100},
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000, SDPFmtpLine: h264 + "42001f"}, PayloadType: 102},
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000, SDPFmtpLine: h264 + "42e01f"}, PayloadType: 104},
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000, SDPFmtpLine: h264 + "4d001f"}, PayloadType: 106},
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000, SDPFmtpLine: h264 + "64001f"}, PayloadType: 108},
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeAV1, ClockRate: 90000}, PayloadType: 41},
	}
	for _, c := range audio {
		if err := m.RegisterCodec(c, webrtc.RTPCodecTypeAudio); err != nil {
			return err
		}
	}
	for _, c := range video {
		c.RTCPFeedback = videoFeedback
		if err := m.RegisterCodec(c, webrtc.RTPCodecTypeVideo); err != nil {
			return err
		}
	}
	exts := []struct {
		uri  string
		kind webrtc.RTPCodecType
	}{
		// mid lets pion route a publisher's packets that arrive before
		// their SSRC is known; rid and repaired-rid carry simulcast layers.
		{sdp.SDESMidURI, webrtc.RTPCodecTypeAudio},
		{sdp.SDESMidURI, webrtc.RTPCodecTypeVideo},
		{sdp.SDESRTPStreamIDURI, webrtc.RTPCodecTypeVideo},
		{sdp.SDESRepairRTPStreamIDURI, webrtc.RTPCodecTypeVideo},
		{sdp.TransportCCURI, webrtc.RTPCodecTypeAudio},
		{sdp.TransportCCURI, webrtc.RTPCodecTypeVideo},
	}
	for _, x := range exts {
		if err := m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: x.uri}, x.kind); err != nil {
			return err
		}
	}
	return nil
}

// registerInterceptors adds what the server needs per packet and nothing
// more, all on the receiving side: NACK generation, receiver reports and
// transport-cc feedback (the publisher's congestion control). Each starts
// its ticker only once the connection receives a stream (lazyFactory).
// Nothing is added on the sending side. pion's NACK responder would copy
// every packet sent to every subscriber, where the per-track packet cache
// answers NACKs for all of them with one copy; and its sender reports would
// take a lock and read the clock per packet and run a ticker per
// subscriber, where the fan-out writers send them from what the down-tracks
// already know (DownTrack.senderReport).
func registerInterceptors(reg *interceptor.Registry, set interceptorSet) error {
	receiving := func(f interceptor.Factory, err error) error {
		if err != nil {
			return err
		}
		reg.Add(&lazyFactory{inner: f})
		return nil
	}
	if set&withNACKGenerator != 0 {
		if err := receiving(nack.NewGeneratorInterceptor()); err != nil {
			return err
		}
	}
	if set&withReceiverReports != 0 {
		if err := receiving(report.NewReceiverInterceptor()); err != nil {
			return err
		}
	}
	if set&withTWCC != 0 {
		if err := receiving(twcc.NewSenderInterceptor()); err != nil {
			return err
		}
	}
	return nil
}

// API returns the pion API, for callers that need more than
// NewPeerConnection.
func (e *Engine) API() *webrtc.API { return e.api }

// sendBatcher returns what batches the fan-out writers' sends, or nil.
func (e *Engine) sendBatcher() sendBatcher {
	if e == nil {
		return nil
	}
	return e.sends
}

// LocalAddr returns the address of the shared UDP port.
func (e *Engine) LocalAddr() net.Addr { return e.conn.LocalAddr() }

// NewPeerConnection returns a peer connection on the shared UDP port, with
// every media in one bundle.
func (e *Engine) NewPeerConnection() (*webrtc.PeerConnection, error) {
	cert, err := e.certificate()
	if err != nil {
		return nil, err
	}
	pc, err := e.api.NewPeerConnection(webrtc.Configuration{
		BundlePolicy:  webrtc.BundlePolicyMaxBundle,
		RTCPMuxPolicy: webrtc.RTCPMuxPolicyRequire,
		Certificates:  []webrtc.Certificate{*cert},
	})
	if err != nil {
		return nil, fmt.Errorf("rtc: new peer connection: %w", err)
	}
	return pc, nil
}

// certificate returns the shared DTLS certificate, renewed if it expires
// within certRenewBefore.
func (e *Engine) certificate() (*webrtc.Certificate, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, ErrEngineClosed
	}
	if e.cert != nil && time.Until(e.cert.Expires()) > certRenewBefore {
		return e.cert, nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("rtc: DTLS key: %w", err)
	}
	cert, err := webrtc.GenerateCertificate(key)
	if err != nil {
		return nil, fmt.Errorf("rtc: DTLS certificate: %w", err)
	}
	e.cert = cert
	return cert, nil
}

// ICEServers returns the STUN and TURN servers to hand to clients.
func (e *Engine) ICEServers() []webrtc.ICEServer {
	var out []webrtc.ICEServer
	for _, u := range e.cfg.ICEURLs {
		s := webrtc.ICEServer{URLs: []string{u}}
		if scheme, _, _ := strings.Cut(u, ":"); scheme == "turn" || scheme == "turns" {
			s.Username = e.cfg.TURNUsername
			s.Credential = e.cfg.TURNCredential
		}
		out = append(out, s)
	}
	return out
}

// Close closes the shared UDP port. Close the peer connections first: once
// the port is gone they can no longer send or receive.
func (e *Engine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	if err := e.mux.Close(); err != nil {
		return fmt.Errorf("rtc: close UDP mux: %w", err)
	}
	return nil
}
