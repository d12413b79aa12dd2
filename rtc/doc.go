// Package rtc is Troupe's media data plane: the one pion API the server uses
// for every peer connection (codecs, interceptors, the ICE UDP and TCP muxes,
// the built-in TURN server of rtc/turnserver when configured), and the
// forwarding fast path that carries a publisher's RTP to its subscribers.
//
// An Engine makes peer connections. A Peer owns one client's connection
// and its negotiation: the offer/answer exchanges (as the polite peer,
// holding a renegotiation until ICE has connected, and a client's offer
// until its ICE transport has started, so that pion never takes the offer
// for an ICE restart: one ICE session keeps its credentials), the mids of the
// server's own sections, each source offered in its own codec and skipped
// when the client's description does not take it, the candidates (a WHIP
// or WHEP client's in trickle ICE fragments, whose new credentials restart
// ICE: icefrag.go, peer_ice.go), and the DownTracks that send the client
// other peers' tracks (for a WHEP client, slots fed by whichever source
// fits). Its owner turns what pion reports
// into its own messages and hands them back (Handle), so that the Peer is
// only ever used from the owner's goroutine.
//
// A Forwarder owns the read loop of one
// published track and hands each packet to its fan-out writers: a few
// goroutines (at most one per core) that each write the packet to a group
// of the track's DownTracks, so that one packet wakes a goroutine per group,
// not per subscriber, and a large fan-out spreads over the cores. A
// DownTrack is the pion TrackLocal added to a subscriber's peer connection;
// it rewrites the header into the subscriber's own stream. Subscriber sets
// are immutable and swapped atomically, so the per-packet path takes no
// shared lock, sends no message and allocates nothing.
//
// A Track is what a publisher's track is to its subscribers: the
// Forwarder of its one stream, or one per layer of a simulcast stream
// (simulcast.go), its layers named by rid or told apart by SSRC alone
// (a=ssrc-group:SIM, which a Peer has pion take as rid layers:
// simulcast_ssrc.go). A down-track of a Track takes one layer at a time,
// chosen by its target layer (SetTargetLayer: the highest active one by
// default) and the layers that arrive, and moves to another on that
// layer's keyframe, asked for with a PLI to its SSRC, keeping the old
// layer until then (layerswitch.go). Its sequence numbers, timestamps,
// and the picture ids and TL0PICIDX of VP8 and VP9 (vp8.go, vp9.go) are
// rewritten into one stream (rewrite.go): at a switch each continues
// from the last one sent, so that a receiver, which orders frames by
// picture id, never takes the new layer's keyframe for an old frame;
// resends to NACKs carry the same. VP9 and AV1 SVC streams are one
// source, forwarded whole, their descriptors as sent (a resume after a
// pause, which starts the source again, continues the ids as a switch
// does). A Track measures its layers' bitrates and reads their picture
// sizes from the first packet of their keyframes: the VP8 frame header,
// the VP9 payload descriptor's scalability structure, the H.264 sequence
// parameter set, the AV1 sequence header (av1.go: when the packet holds
// it whole; its largest frame size, an SVC stream's top spatial
// layer's). The layer a down-track gets is also capped by size
// (SetMaxSize: a room's quality; SetLimits: what the subscriber asks, the
// size it renders), and the Track tells its owner which layers anyone
// wants (OnLayersNeeded), so that the publisher may stop encoding the
// others.
//
// Each subscriber's connection estimates its bandwidth (estimator.go:
// the send-side estimate of rtc/bwe on the client's transport-cc
// feedback, or the client's REMB) while it receives a track in layers
// (or always, Config.BandwidthEstimationAlways), and its Peer shares the estimate
// among its down-tracks (layerchoice.go): each gets the highest layer
// that fits under its other caps, down at once, up after a hold; a
// simulcast track whose lowest layer does not fit is paused, and the
// owner told (TrackPausedEvent). While the estimate holds a down-track
// below the layer it wants, the connection probes its link now and then
// with padding packets (probe.go), and a probe the link carries moves the
// estimate, and the layer, up at once. A new down-track starts on the
// layer the initial estimate pays for, not on the one it wants, and its
// link is probed for the next as soon as the first feedback comes; one
// whose client sends no feedback gets the layer it wants after a few
// seconds. A subscriber may also pause a track it
// does not show (subpause.go): nothing of it is sent, its layers are
// unwanted, and it resumes on a keyframe. A down-track may cap the frame
// rate of VP8 sent in temporal layers (temporal.go: a room's fps): it
// drops the frames of the layers above the cap, measured from the
// stream, and renumbers what it sends so that the stream stays whole.
// A publisher's padding-only video packets (a browser's probing of its
// uplink, on the media's stream as no RTX is negotiated) are dropped as
// they are read, and the stream renumbered without them (padding.go).
//
// A fan-out writer also sends its down-tracks' RTCP sender reports, once a
// second, from what they already know; pion's per-packet sender-report
// interceptor is not used.
//
// A video down-track starts on a keyframe its subscriber can receive: not
// before the connection's DTLS handshake is done (TransportReady), and from
// the source's last keyframe, still in its packet cache, when that one is
// recent, rather than waiting for a new one.
//
// Every peer connection shares one UDP port, whose sends and receives are
// made as raw system calls on the non-blocking socket (udpconn_linux.go):
// the standard library would serialize the writers on one lock and wake
// the scheduler's monitor at every burst. A fan-out writer holds the port
// while it writes one packet to its group, and the copies go to the kernel
// with one sendmmsg (udpbatch_linux.go); one goroutine at a time sends the
// batches, in the order they filled, so that no subscriber gets a packet
// before the one its writer wrote first. Every connection presents the
// engine's one DTLS certificate. With Config.TCP, one TCP port (pion's ICE
// TCP mux) is offered too, as a passive candidate, for clients whose UDP
// is blocked; a subscriber on it is written through pion's TCP framing
// rather than the batched UDP sends.
//
// Header extensions (hdrext.go): a Forwarder finds the audio level and
// video orientation in each packet, in place, under the ids its
// publisher's connection negotiated, and its down-tracks write them
// again under the ids of each subscriber's, from a fixed buffer, before
// the interceptors add the server's own (transport-cc). The others a
// publisher sends are dropped. An audio track's levels are averaged on
// the read loop into one atomic word (audiolevel.go), which the room
// reads to tell who speaks.
//
// A Forwarder may also have one Sink (sink.go), which gets every packet it
// forwards on the read loop, without a lock: a recording (rtc/recorder,
// fed by the room's actor) is one more subscriber of the track that way.
// A Track keeps its sink on its highest layer that arrives, moving it as
// layers start and stop (tracksink.go). A Forwarder given the publisher's
// RTCP of its stream reads it on a goroutine of its own and keeps the last
// sender report, which a sink that takes them gets too (senderreport.go):
// it maps the stream's RTP time to the publisher's NTP clock.
//
// No goroutine or timer of the package may take the server down: a panic
// in a read loop, an RTCP loop or a fan-out writer fails its Forwarder or
// DownTrack (OnFailure), one on a Peer's bandwidth checks or probes fails
// the Peer (FailureEvent), and one in a Track's layer checks is logged and
// the checks go on. A failure reaches the owner, which removes that
// participant alone.
//
// The package knows nothing of actors or HTTP: the participant actors drive
// their Peers and Forwarders through the exported methods and learn what
// happened through callbacks.
package rtc
