package rtc

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
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

	"github.com/troupe-media/troupe/rtc/turnserver"
)

// Engine is the server's one pion API: the codecs and RTCP feedback it
// negotiates, the interceptors every peer connection runs, and the UDP port
// they all share.
type Engine struct {
	api  *webrtc.API
	conn net.PacketConn
	mux  io.Closer
	// tcp is the ICE TCP port's listener and tcpMux its mux; nil
	// without ICE over TCP.
	tcp    net.Listener
	tcpMux io.Closer
	// turn is the built-in TURN server; nil without it.
	turn *turnserver.Server
	// sends batches the fan-out writers' datagrams; nil where the
	// platform cannot.
	sends sendBatcher
	cfg   Config
	log   *slog.Logger
	// bwe makes each connection's bandwidth estimator; nil when the
	// engine estimates nothing.
	bwe *estimatorFactory
	// sim makes each connection's simulcast-by-SSRC interceptor
	// (simulcast_ssrc.go).
	sim *ssrcSimulcastFactory
	// pcMu makes a connection and claims its estimator as one step: the
	// estimator is found by the connection's id, which pion makes from
	// the clock and which two connections made at once could share.
	pcMu sync.Mutex

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
	// withBWE estimates each connection's bandwidth from the client's
	// feedback on what the server sends (estimator.go).
	withBWE

	defaultInterceptors = withNACKGenerator | withReceiverReports | withTWCC | withBWE
)

// NewEngine opens the UDP port and builds the pion API.
func NewEngine(cfg Config) (*Engine, error) {
	set := defaultInterceptors
	if cfg.NoBandwidthEstimation {
		set &^= withBWE
	}
	return newEngine(cfg, set)
}

func newEngine(cfg Config, set interceptorSet) (*Engine, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	m := &webrtc.MediaEngine{}
	if err := registerCodecs(m, !cfg.NoAudioLevel); err != nil {
		return nil, fmt.Errorf("rtc: register codecs: %w", err)
	}
	logs := pionLoggerFactory{l: cfg.Logger}
	reg := &interceptor.Registry{}
	var bwe *estimatorFactory
	if set&withBWE != 0 {
		bwe = newEstimatorFactory(cfg.BandwidthEstimationAlways)
	}
	// First, so that the packets it names are named for every other
	// interceptor too.
	sim := &ssrcSimulcastFactory{}
	reg.Add(sim)
	if err := registerInterceptors(reg, set, bwe); err != nil {
		return nil, fmt.Errorf("rtc: register interceptors: %w", err)
	}

	addr := net.JoinHostPort(cfg.BindAddr, strconv.Itoa(cfg.UDPPort))
	conn, err := net.ListenPacket("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("rtc: listen on UDP %s: %w", addr, err)
	}
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
	hostNet := cfg.Net
	if hostNet == nil {
		n, err := stdnet.NewNet()
		if err != nil {
			_ = mux.Close()
			return nil, fmt.Errorf("rtc: network interfaces: %w", err)
		}
		hostNet = n
	}
	s.SetNet(hostNet)
	e := &Engine{conn: conn, mux: mux, cfg: cfg, log: cfg.Logger, bwe: bwe, sim: sim}
	if cfg.TCP {
		tcpAddr := net.JoinHostPort(cfg.BindAddr, strconv.Itoa(cfg.TCPPort))
		e.tcp, err = net.Listen("tcp", tcpAddr)
		if err != nil {
			_ = mux.Close()
			return nil, fmt.Errorf("rtc: listen on TCP %s: %w", tcpAddr, err)
		}
		tcpMux := webrtc.NewICETCPMux(logs.NewLogger("tcpmux"), e.tcp, tcpReadBufferPackets)
		e.tcpMux = tcpMux
		s.SetICETCPMux(tcpMux)
	}
	// pion gathers UDP only unless told otherwise.
	types := []webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6}
	if cfg.TCP {
		types = append(types, webrtc.NetworkTypeTCP4, webrtc.NetworkTypeTCP6)
	}
	if cfg.LoopbackOnly {
		s.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
		types = slices.DeleteFunc(types, func(t webrtc.NetworkType) bool {
			return t == webrtc.NetworkTypeUDP6 || t == webrtc.NetworkTypeTCP6
		})
	}
	s.SetNetworkTypes(types)
	if len(cfg.AnnounceIPs) > 0 {
		err := s.SetICEAddressRewriteRules(webrtc.ICEAddressRewriteRule{
			External:        cfg.AnnounceIPs,
			AsCandidateType: webrtc.ICECandidateTypeHost,
			Mode:            webrtc.ICEAddressRewriteReplace,
		})
		if err != nil {
			_ = e.closePorts()
			return nil, fmt.Errorf("%w: announce addresses: %w", ErrBadConfig, err)
		}
	}
	if cfg.TURN != nil {
		if e.turn, err = startTURN(cfg, conn.LocalAddr().(*net.UDPAddr).AddrPort().Port(), logs); err != nil {
			_ = e.closePorts()
			return nil, err
		}
	}
	e.sends, _ = shared.(sendBatcher)
	e.api = webrtc.NewAPI(
		webrtc.WithMediaEngine(m),
		webrtc.WithInterceptorRegistry(reg),
		webrtc.WithSettingEngine(s),
	)
	tcpAddr := "off" // as the server's own start line says
	if e.tcp != nil {
		tcpAddr = e.tcp.Addr().String()
	}
	e.log.Info("rtc engine listening", "udp", conn.LocalAddr().String(), "tcp", tcpAddr, "announce", cfg.AnnounceIPs)
	return e, nil
}

// tcpReadBufferPackets is how many packets the ICE TCP mux queues per
// connection before its reader waits for the peer connection to read.
const tcpReadBufferPackets = 64

// startTURN starts the built-in TURN server of cfg, whose relays send to
// the engine's UDP port, udpPort, on the engine's addresses only.
func startTURN(cfg Config, udpPort uint16, logs pionLoggerFactory) (*turnserver.Server, error) {
	tc := *cfg.TURN
	if tc.BindAddr == "" {
		tc.BindAddr = cfg.BindAddr
	}
	if tc.RelayIP == "" {
		if len(cfg.AnnounceIPs) > 0 {
			tc.RelayIP = cfg.AnnounceIPs[0]
		} else if ip := net.ParseIP(cfg.BindAddr); ip != nil && !ip.IsUnspecified() {
			tc.RelayIP = cfg.BindAddr
		} else {
			return nil, &ConfigError{Field: "TURN.RelayIP", Reason: "required when the media port binds every interface and no address is announced"}
		}
	}
	ips, err := mediaIPs(cfg)
	if err != nil {
		return nil, err
	}
	tc.Peers = nil
	for _, ip := range ips {
		tc.Peers = append(tc.Peers, netip.AddrPortFrom(ip, udpPort))
	}
	tc.LoggerFactory = logs
	tc.Logger = cfg.Logger.With("component", "turn")
	s, err := turnserver.New(tc)
	if err != nil {
		return nil, fmt.Errorf("rtc: TURN server: %w", err)
	}
	return s, nil
}

// mediaIPs are the addresses the engine's UDP port is reached at: the
// bound one, or every interface's when it binds them all, and the
// announced ones.
func mediaIPs(cfg Config) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, s := range cfg.AnnounceIPs {
		if ip, err := netip.ParseAddr(s); err == nil {
			out = append(out, ip.Unmap())
		}
	}
	bind, err := netip.ParseAddr(cfg.BindAddr)
	if err != nil {
		return nil, &ConfigError{Field: "BindAddr", Value: fmt.Sprintf("%q", cfg.BindAddr), Reason: "not an IP address"}
	}
	if !bind.IsUnspecified() {
		return append(out, bind.Unmap()), nil
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("rtc: network interfaces: %w", err)
	}
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			out = append(out, p.Addr().Unmap())
		}
	}
	return out, nil
}

// closePorts closes the TURN server, the UDP mux and the TCP mux, which
// close their sockets.
func (e *Engine) closePorts() error {
	var errs []error
	if e.turn != nil {
		if err := e.turn.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := e.mux.Close(); err != nil {
		errs = append(errs, fmt.Errorf("rtc: close UDP mux: %w", err))
	}
	if e.tcpMux != nil {
		if err := e.tcpMux.Close(); err != nil {
			errs = append(errs, fmt.Errorf("rtc: close TCP mux: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Video RTCP feedback: NACK for losses, PLI and FIR for keyframes,
// transport-cc for the bandwidth estimates (the publisher's of its link
// to Troupe, Troupe's of its link to each subscriber), and goog-remb, so
// that a subscriber without transport-cc sends its own receiver estimate,
// which then picks its layers (estimator.go). Troupe sends no REMB: a
// publisher that has transport-cc uses it, as browsers prefer.
var videoFeedback = []webrtc.RTCPFeedback{
	{Type: webrtc.TypeRTCPFBNACK},
	{Type: webrtc.TypeRTCPFBNACK, Parameter: "pli"},
	{Type: webrtc.TypeRTCPFBCCM, Parameter: "fir"},
	{Type: webrtc.TypeRTCPFBTransportCC},
	{Type: webrtc.TypeRTCPFBGoogREMB},
}

// serverCodecs returns the codecs Troupe forwards, with their payload
// types and RTCP feedback. RTX is not offered: retransmissions come on the
// media SSRC, so one packet cache per track answers every subscriber.
func serverCodecs() []webrtc.RTPCodecParameters {
	const h264 = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id="
	video := func(pt webrtc.PayloadType, mime, fmtp string) webrtc.RTPCodecParameters {
		return webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: mime, ClockRate: 90000, SDPFmtpLine: fmtp, RTCPFeedback: videoFeedback},
			PayloadType:        pt,
		}
	}
	return []webrtc.RTPCodecParameters{
		{
			RTPCodecCapability: webrtc.RTPCodecCapability{
				MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2,
				SDPFmtpLine:  "minptime=10;useinbandfec=1",
				RTCPFeedback: []webrtc.RTCPFeedback{{Type: webrtc.TypeRTCPFBTransportCC}},
			},
			PayloadType: 111,
		},
		video(96, webrtc.MimeTypeVP8, ""),
		video(98, webrtc.MimeTypeVP9, "profile-id=0"),
		video(100, webrtc.MimeTypeVP9, "profile-id=2"),
		video(102, webrtc.MimeTypeH264, h264+"42001f"),
		video(104, webrtc.MimeTypeH264, h264+"42e01f"),
		video(106, webrtc.MimeTypeH264, h264+"4d001f"),
		video(108, webrtc.MimeTypeH264, h264+"64001f"),
		video(41, webrtc.MimeTypeAV1, ""),
	}
}

// ForwardedCodecs returns the codecs Troupe forwards.
func ForwardedCodecs() []webrtc.RTPCodecCapability {
	codecs := serverCodecs()
	out := make([]webrtc.RTPCodecCapability, len(codecs))
	for i, c := range codecs {
		out[i] = c.RTPCodecCapability
	}
	return out
}

// registerCodecs registers the codecs Troupe forwards and the header
// extensions it uses; audioLevel adds the audio level's.
func registerCodecs(m *webrtc.MediaEngine, audioLevel bool) error {
	for _, c := range serverCodecs() {
		kind := webrtc.RTPCodecTypeVideo
		if strings.HasPrefix(c.MimeType, "audio/") {
			kind = webrtc.RTPCodecTypeAudio
		}
		if err := m.RegisterCodec(c, kind); err != nil {
			return err
		}
	}
	type ext struct {
		uri  string
		kind webrtc.RTPCodecType
	}
	exts := []ext{
		// mid lets pion route a publisher's packets that arrive before
		// their SSRC is known; rid and repaired-rid carry simulcast layers.
		{sdp.SDESMidURI, webrtc.RTPCodecTypeAudio},
		{sdp.SDESMidURI, webrtc.RTPCodecTypeVideo},
		{sdp.SDESRTPStreamIDURI, webrtc.RTPCodecTypeVideo},
		{sdp.SDESRepairRTPStreamIDURI, webrtc.RTPCodecTypeVideo},
		{sdp.TransportCCURI, webrtc.RTPCodecTypeAudio},
		{sdp.TransportCCURI, webrtc.RTPCodecTypeVideo},
		// Read by the forwarders and forwarded to subscribers (hdrext.go).
		{VideoOrientationURI, webrtc.RTPCodecTypeVideo},
	}
	if audioLevel {
		exts = append(exts, ext{AudioLevelURI, webrtc.RTPCodecTypeAudio})
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
// On the sending side, only the bandwidth estimator (bwe, when set),
// which writes the transport-cc header extension it needs while it is
// active. pion's NACK responder would copy
// every packet sent to every subscriber, where the per-track packet cache
// answers NACKs for all of them with one copy; and its sender reports would
// take a lock and read the clock per packet and run a ticker per
// subscriber, where the fan-out writers send them from what the down-tracks
// already know (DownTrack.senderReport).
func registerInterceptors(reg *interceptor.Registry, set interceptorSet, bwe *estimatorFactory) error {
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
	if bwe != nil {
		reg.Add(bwe) // it writes the transport-cc extension itself
	}
	return nil
}

// AudioLevels reports whether the engine negotiates the audio level
// header extension, so that published audio tracks have levels
// (Forwarder.AudioLevel).
func (e *Engine) AudioLevels() bool { return e != nil && !e.cfg.NoAudioLevel }

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

// TCPAddr returns the address of the ICE TCP port, or nil without ICE
// over TCP.
func (e *Engine) TCPAddr() net.Addr {
	if e.tcp == nil {
		return nil
	}
	return e.tcp.Addr()
}

// NewPeerConnection returns a peer connection on the shared UDP port, with
// every media in one bundle.
func (e *Engine) NewPeerConnection() (*webrtc.PeerConnection, error) {
	pc, _, err := e.newPeerConnection()
	return pc, err
}

// newPeerConnection is NewPeerConnection that also returns the
// connection's bandwidth estimator, nil when the engine makes none.
func (e *Engine) newPeerConnection() (*webrtc.PeerConnection, *estimator, error) {
	pc, est, _, err := e.newPeerConn()
	return pc, est, err
}

// newPeerConn is newPeerConnection that also returns the connection's
// simulcast-by-SSRC interceptor.
func (e *Engine) newPeerConn() (*webrtc.PeerConnection, *estimator, *ssrcSimulcast, error) {
	cert, err := e.certificate()
	if err != nil {
		return nil, nil, nil, err
	}
	e.pcMu.Lock()
	defer e.pcMu.Unlock()
	pc, err := e.api.NewPeerConnection(webrtc.Configuration{
		BundlePolicy:  webrtc.BundlePolicyMaxBundle,
		RTCPMuxPolicy: webrtc.RTCPMuxPolicyRequire,
		Certificates:  []webrtc.Certificate{*cert},
	})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("rtc: new peer connection: %w", err)
	}
	var est *estimator
	if e.bwe != nil {
		est = e.bwe.claim(pc.ID())
	}
	sim := e.sim.made.claim(pc.ID())
	if sim == nil {
		// pion builds every registered interceptor for each connection.
		_ = pc.Close()
		return nil, nil, nil, fmt.Errorf("rtc: new peer connection: its simulcast-by-SSRC interceptor was not made")
	}
	return pc, est, sim, nil
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

// TURN returns the built-in TURN server, or nil.
func (e *Engine) TURN() *turnserver.Server { return e.turn }

// ICEServers returns the STUN and TURN servers to hand to a client: those
// configured, and the built-in TURN server with credentials for user (a
// participant id), valid for its credential TTL from now.
func (e *Engine) ICEServers(user string) []webrtc.ICEServer {
	var out []webrtc.ICEServer
	if e.turn != nil {
		out = append(out, e.turn.ICEServers(user)...)
	}
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

// Close closes the shared UDP and TCP ports. Close the peer connections first: once
// the port is gone they can no longer send or receive.
func (e *Engine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	return e.closePorts()
}

// Codec negotiation of the sections that send a track to a subscriber.
//
// pion keeps one list of codecs per media kind for a whole peer
// connection: the first remote description that has a section of a kind
// narrows the list to that section's codecs, and every later offer offers
// nothing else in any section of that kind. A client that publishes H.264
// only (setCodecPreferences on its camera) would then be offered its
// subscriptions in H.264 only, answer them in H.264, and no VP8 track could
// be sent to it. So the sections that send tracks are rewritten before the
// offer leaves (OfferSendCodecs): each offers the codec of its track first,
// and the client's answer says whether it takes it (SectionAccepts).

// sectionCodec is one payload type of a media section.
type sectionCodec struct {
	pt    uint8
	codec webrtc.RTPCodecCapability // RTCPFeedback left empty
	// attrs are the section's rtpmap, fmtp and rtcp-fb lines of pt.
	attrs []sdp.Attribute
}

// sectionCodecs returns the codecs a media section lists, in its order.
// Payload types without an rtpmap (static ones) are left out: Troupe
// forwards none of them.
func sectionCodecs(md *sdp.MediaDescription) []sectionCodec {
	byPT := make(map[uint8]*sectionCodec, len(md.MediaName.Formats))
	out := make([]*sectionCodec, 0, len(md.MediaName.Formats))
	for _, f := range md.MediaName.Formats {
		pt, err := strconv.ParseUint(f, 10, 8)
		if err != nil {
			continue
		}
		if _, dup := byPT[uint8(pt)]; dup {
			continue
		}
		c := &sectionCodec{pt: uint8(pt)}
		byPT[c.pt] = c
		out = append(out, c)
	}
	for _, a := range md.Attributes {
		if a.Key != "rtpmap" && a.Key != "fmtp" && a.Key != "rtcp-fb" {
			continue
		}
		ptText, rest, _ := strings.Cut(a.Value, " ")
		pt, err := strconv.ParseUint(ptText, 10, 8)
		if err != nil {
			continue
		}
		c, ok := byPT[uint8(pt)]
		if !ok {
			continue
		}
		c.attrs = append(c.attrs, a)
		switch a.Key {
		case "rtpmap": // name/clock[/channels]
			parts := strings.Split(strings.TrimSpace(rest), "/")
			if len(parts) < 2 {
				continue
			}
			clock, err := strconv.ParseUint(parts[1], 10, 32)
			if err != nil {
				continue
			}
			c.codec.MimeType = md.MediaName.Media + "/" + parts[0]
			c.codec.ClockRate = uint32(clock)
			if len(parts) > 2 {
				if ch, err := strconv.ParseUint(parts[2], 10, 16); err == nil {
					c.codec.Channels = uint16(ch)
				}
			}
		case "fmtp":
			c.codec.SDPFmtpLine = strings.TrimSpace(rest)
		}
	}
	codecs := make([]sectionCodec, 0, len(out))
	for _, c := range out {
		if c.codec.MimeType != "" {
			codecs = append(codecs, *c)
		}
	}
	return codecs
}

// CodecFits reports whether a stream in codec have can be sent where codec
// want was negotiated: the same codec, and for H.264, VP9 and AV1 the same
// packetization mode and profile (the level may differ, as pion allows).
func CodecFits(have, want webrtc.RTPCodecCapability) bool {
	if !strings.EqualFold(have.MimeType, want.MimeType) || have.ClockRate != want.ClockRate {
		return false
	}
	if have.Channels != 0 && want.Channels != 0 && have.Channels != want.Channels {
		return false
	}
	param := func(fmtp, key, dflt string) string {
		for p := range strings.SplitSeq(fmtp, ";") {
			k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
			if strings.EqualFold(k, key) {
				return strings.ToLower(strings.TrimSpace(v))
			}
		}
		return dflt
	}
	same := func(key, dflt string) bool {
		return param(have.SDPFmtpLine, key, dflt) == param(want.SDPFmtpLine, key, dflt)
	}
	switch strings.ToLower(have.MimeType) {
	case strings.ToLower(webrtc.MimeTypeH264):
		// The profile; the third byte is the level.
		profile := func(fmtp string) string {
			return h264Profile(param(fmtp, "profile-level-id", "42000a"))
		}
		return same("packetization-mode", "0") && profile(have.SDPFmtpLine) == profile(want.SDPFmtpLine)
	case strings.ToLower(webrtc.MimeTypeVP9):
		return same("profile-id", "0")
	case strings.ToLower(webrtc.MimeTypeAV1):
		return same("profile", "0")
	}
	return true
}

// h264Profiles name the H.264 profiles a profile-level-id's first two
// bytes (profile_idc, then the constraint flags) may stand for, in the
// order they are tried: one profile is written several ways. Constrained
// Baseline, for one, is 42e0 from browsers and 42c0 from GStreamer's and
// other encoders (constraint_set1 is what makes it constrained; set0 and
// set2 say only that the stream also obeys those profiles). A set flag in
// mask must equal the one in flags; bits 3 to 0 are reserved, zero.
var h264Profiles = []struct {
	idc         byte
	mask, flags byte
	name        string
}{
	{0x42, 0x4f, 0x40, "constrained-baseline"},
	{0x4d, 0x8f, 0x80, "constrained-baseline"},
	{0x58, 0xcf, 0xc0, "constrained-baseline"},
	{0x42, 0x4f, 0x00, "baseline"},
	{0x58, 0xcf, 0x80, "baseline"},
	{0x4d, 0xaf, 0x00, "main"},
	{0x58, 0xcf, 0x00, "extended"},
	{0x64, 0xff, 0x0c, "constrained-high"},
	{0x64, 0xff, 0x00, "high"},
	{0x6e, 0xff, 0x00, "high-10"},
	{0x7a, 0xff, 0x00, "high-422"},
	{0xf4, 0xff, 0x00, "high-444"},
}

// h264Profile returns the profile a profile-level-id names, or, for one it
// does not know, its first four hex digits (compared as they are).
func h264Profile(plid string) string {
	b, err := hex.DecodeString(plid)
	if err != nil || len(b) != 3 {
		return strings.ToLower(plid)
	}
	for _, p := range h264Profiles {
		if b[0] == p.idc && b[1]&p.mask == p.flags {
			return p.name
		}
	}
	return strings.ToLower(plid[:4])
}

// bestFit returns the index of the codec of list that codec fits, the one
// with the same fmtp line first; -1 if none.
func bestFit(list []webrtc.RTPCodecCapability, codec webrtc.RTPCodecCapability) int {
	fit := -1
	for i, c := range list {
		if !CodecFits(codec, c) {
			continue
		}
		if c.SDPFmtpLine == codec.SDPFmtpLine {
			return i
		}
		if fit < 0 {
			fit = i
		}
	}
	return fit
}

// registeredFor returns the payload type and RTCP feedback the engine
// registers for codec.
func registeredFor(codec webrtc.RTPCodecCapability) (uint8, []webrtc.RTCPFeedback, bool) {
	for _, c := range serverCodecs() {
		if CodecFits(codec, c.RTPCodecCapability) {
			return uint8(c.PayloadType), c.RTCPFeedback, true
		}
	}
	return 0, nil, false
}

// ErrNoPayloadType is returned by OfferSendCodecs when an offer uses
// every dynamic payload type already.
var ErrNoPayloadType = errors.New("rtc: no payload type left")

// OfferSendCodecs rewrites an offer the server made so that the media
// section of each mid in send offers the codec given for it, the codec of
// the track it sends, whatever pion's codec list has come to (see
// sendSectionCodecs for the rest of the list). A codec the connection already uses keeps
// its payload type; one it does not gets the engine's payload type for it,
// or another free one: a payload type means one codec across the whole
// bundle, as pion and the browsers require.
func OfferSendCodecs(offer string, send map[string]webrtc.RTPCodecCapability) (string, error) {
	if len(send) == 0 {
		return offer, nil
	}
	var d sdp.SessionDescription
	if err := d.UnmarshalString(offer); err != nil {
		return "", fmt.Errorf("rtc: parse own offer: %w", err)
	}
	// Every payload type the offer lists, in any section, is taken: pion
	// keeps what was negotiated for the connection's life.
	taken := make(map[uint8]webrtc.RTPCodecCapability)
	var known []sectionCodec
	for _, md := range d.MediaDescriptions {
		for _, c := range sectionCodecs(md) {
			taken[c.pt] = c.codec
			known = append(known, c)
		}
	}
	for _, md := range d.MediaDescriptions {
		mid, _ := md.Attribute(sdp.AttrKeyMID)
		want, ok := send[mid]
		if !ok {
			continue
		}
		list, err := sendSectionCodecs(md, want, known, taken)
		if err != nil {
			return "", err
		}
		for _, c := range list {
			taken[c.pt] = c.codec
			known = append(known, c)
		}
		md.MediaName.Formats = md.MediaName.Formats[:0]
		var lines []sdp.Attribute
		for _, c := range list {
			md.MediaName.Formats = append(md.MediaName.Formats, strconv.Itoa(int(c.pt)))
			lines = append(lines, c.attrs...)
		}
		attrs := make([]sdp.Attribute, 0, len(md.Attributes))
		for _, a := range md.Attributes {
			if a.Key != "rtpmap" && a.Key != "fmtp" && a.Key != "rtcp-fb" {
				attrs = append(attrs, a)
			}
		}
		// The codecs' lines go where pion puts them: before the others.
		md.Attributes = append(lines, attrs...)
	}
	out, err := d.Marshal()
	if err != nil {
		return "", fmt.Errorf("rtc: write own offer: %w", err)
	}
	return string(out), nil
}

// sendSectionCodecs returns the codecs a section that sends a track in
// codec want offers: want first, so that a client that takes several
// agrees to it first, then the others the section lists (those negotiated
// so far) and those of the engine that it lacks. Offering only want would
// be enough for the track, but a client built on pion (as Troupe is) then
// narrows its own codec list to want for the whole connection, and could
// publish in nothing else.
func sendSectionCodecs(md *sdp.MediaDescription, want webrtc.RTPCodecCapability, known []sectionCodec, taken map[uint8]webrtc.RTPCodecCapability) ([]sectionCodec, error) {
	own := sectionCodecs(md)
	caps := make([]webrtc.RTPCodecCapability, len(own))
	for i, c := range own {
		caps[i] = c.codec
	}
	var list []sectionCodec
	if i := bestFit(caps, want); i >= 0 {
		list = append(list, own[i])
	} else {
		c, err := newSectionCodec(want, known, taken)
		if err != nil {
			return nil, err
		}
		taken[c.pt] = c.codec
		list = append(list, c)
	}
	for _, c := range own {
		if c.pt != list[0].pt {
			list = append(list, c)
		}
	}
	for _, r := range serverCodecs() {
		if !strings.HasPrefix(strings.ToLower(r.MimeType), strings.ToLower(md.MediaName.Media)+"/") {
			continue
		}
		present := slices.ContainsFunc(list, func(c sectionCodec) bool {
			return CodecFits(r.RTPCodecCapability, c.codec) && CodecFits(c.codec, r.RTPCodecCapability)
		})
		if present {
			continue
		}
		c, err := newSectionCodec(r.RTPCodecCapability, known, taken)
		if err != nil {
			break // no payload type left: the track's codec is in
		}
		taken[c.pt] = c.codec
		list = append(list, c)
	}
	return list, nil
}

// newSectionCodec describes codec for a section that does not list it:
// as another section of the offer does, or with the engine's payload type
// and feedback when that type is free, or with a free dynamic one.
func newSectionCodec(codec webrtc.RTPCodecCapability, known []sectionCodec, taken map[uint8]webrtc.RTPCodecCapability) (sectionCodec, error) {
	_, name, _ := strings.Cut(codec.MimeType, "/")
	c := sectionCodec{codec: codec}
	for _, k := range known {
		if CodecFits(codec, k.codec) {
			c.pt, c.codec = k.pt, k.codec
			c.attrs = k.attrs
			return c, nil
		}
	}
	pt, feedback, ok := registeredFor(codec)
	if _, used := taken[pt]; !ok || used {
		ok = false
		for _, r := range [][2]int{{96, 127}, {35, 63}} {
			for p := r[0]; p <= r[1] && !ok; p++ {
				if _, used := taken[uint8(p)]; !used {
					pt, ok = uint8(p), true
				}
			}
		}
		if !ok {
			return c, ErrNoPayloadType
		}
	}
	c.pt = pt
	rtpmap := fmt.Sprintf("%d %s/%d", pt, name, codec.ClockRate)
	if codec.Channels > 1 {
		rtpmap += "/" + strconv.Itoa(int(codec.Channels))
	}
	c.attrs = append(c.attrs, sdp.NewAttribute("rtpmap", rtpmap))
	if codec.SDPFmtpLine != "" {
		c.attrs = append(c.attrs, sdp.NewAttribute("fmtp", fmt.Sprintf("%d %s", pt, codec.SDPFmtpLine)))
	}
	for _, fb := range feedback {
		v := fmt.Sprintf("%d %s", pt, fb.Type)
		if fb.Parameter != "" {
			v += " " + fb.Parameter
		}
		c.attrs = append(c.attrs, sdp.NewAttribute("rtcp-fb", v))
	}
	return c, nil
}

// SectionAccepts reports whether a client's media section lets the server
// send it a stream in codec: the section is not rejected (port 0), the
// client receives on it, and it lists a codec that codec fits.
func SectionAccepts(md *sdp.MediaDescription, codec webrtc.RTPCodecCapability) bool {
	if md.MediaName.Port.Value == 0 {
		return false
	}
	for _, a := range md.Attributes {
		if a.Key == "sendonly" || a.Key == "inactive" {
			return false
		}
	}
	for _, c := range sectionCodecs(md) {
		if CodecFits(codec, c.codec) {
			return true
		}
	}
	return false
}

// SectionCodecs returns the codecs a media section lists that the server
// can forward, in the section's order.
func SectionCodecs(md *sdp.MediaDescription) []webrtc.RTPCodecCapability {
	var out []webrtc.RTPCodecCapability
	for _, c := range sectionCodecs(md) {
		if _, _, ok := registeredFor(c.codec); ok {
			out = append(out, c.codec)
		}
	}
	return out
}
