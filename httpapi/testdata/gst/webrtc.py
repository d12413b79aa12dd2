#!/usr/bin/python3
"""A WHIP publisher or WHEP viewer built on GStreamer's webrtcbin, for
Troupe's GStreamer interop tests (httpapi/gst_test.go).

Debian 12's GStreamer 1.22 ships webrtcbin but not the whipsink and whepsrc
elements (they live in gst-plugins-rs, which Debian does not package), so
this script does their signaling: it POSTs webrtcbin's offer at once and
trickles each candidate it gathers afterwards with a PATCH of the session
URL (RFC 9725, application/trickle-ice-sdpfrag), ending with
a=end-of-candidates.

  webrtc.py whip URL TOKEN PIPELINE   publish PIPELINE's webrtcbin (named wb)
                                      until SIGTERM, then DELETE and exit 0
  webrtc.py whep URL TOKEN FRAMES     receive, decode FRAMES VP8 frames, DELETE
                                      and exit 0

It prints one line per event on stdout ("connected", "decoded N WxH",
"patch STATUS", "deleted STATUS") for the test to follow, and exits
non-zero on an error.
"""
import os
import signal
import sys
import urllib.error
import urllib.parse
import urllib.request

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstSdp", "1.0")
gi.require_version("GstWebRTC", "1.0")
from gi.repository import GLib, Gst, GstSdp, GstWebRTC  # noqa: E402


def say(*words):
    print(*words, flush=True)


def die(kind, value, tb):
    """Ends the process on an exception in a callback, which PyGObject
    would otherwise print and go on from."""
    sys.__excepthook__(kind, value, tb)
    say("error", value)
    os._exit(1)


class Session:
    def __init__(self, mode, url, token, pipeline, frames):
        self.mode, self.url, self.token, self.frames = mode, url, token, frames
        self.loop = GLib.MainLoop()
        self.status = 1
        self.pipe = Gst.parse_launch(pipeline)
        if not isinstance(self.pipe, Gst.Pipeline):  # a lone element
            element, self.pipe = self.pipe, Gst.Pipeline.new(None)
            self.pipe.add(element)
        self.wb = self.pipe.get_by_name("wb")
        self.location = None
        self.etag = None
        self.sections = []  # (media, mid) by m-line index
        self.ufrag = self.pwd = None
        self.pending = []  # candidates gathered before the POST answered
        self.decoded = 0
        # The server's media is on loopback; libnice leaves loopback out
        # unless asked, and then gathers on the addresses asked only.
        # The agent stays referenced: PyGObject 3.42 drops a reference of
        # webrtcbin's own when the object it returned is collected.
        self.ice = self.wb.get_property("ice-agent")
        self.ice.emit("add-local-ip-address", "127.0.0.1")
        self.wb.connect("on-negotiation-needed", self.on_negotiation_needed)
        self.wb.connect("on-ice-candidate", self.on_ice_candidate)
        self.wb.connect("notify::ice-gathering-state", self.on_gathering)
        self.wb.connect("notify::connection-state", self.on_connection)
        self.wb.connect("pad-added", self.on_pad_added)
        bus = self.pipe.get_bus()
        bus.add_signal_watch()
        bus.connect("message::error", self.on_error)
        bus.connect("message::eos", lambda *_: self.fail("end of stream"))

    def run(self):
        if self.mode == "whep":
            for kind in ("video", "audio"):
                caps = Gst.Caps.from_string(
                    "application/x-rtp,media=video,encoding-name=VP8,payload=96,clock-rate=90000"
                    if kind == "video"
                    else "application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000")
                self.wb.emit("add-transceiver", GstWebRTC.WebRTCRTPTransceiverDirection.RECVONLY, caps)
        self.pipe.set_state(Gst.State.PLAYING)
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, self.leave)
        self.loop.run()
        self.pipe.set_state(Gst.State.NULL)
        return self.status

    def leave(self):
        """Ends the session with a DELETE, as a user stopping the
        pipeline does, and exits 0 if the server took it."""
        if self.location is None:
            self.fail("stopped before the session began")
            return False
        status, _, body = self.request("DELETE", self.location, None, None)
        say("deleted", status)
        if status != 200:
            self.fail("DELETE %d: %s" % (status, body))
            return False
        self.status = 0
        self.loop.quit()
        return False

    def fail(self, why):
        say("error", why)
        self.status = 1
        self.loop.quit()

    def on_error(self, _bus, msg):
        err, debug = msg.parse_error()
        self.fail("%s (%s)" % (err.message, debug))

    def on_negotiation_needed(self, wb):
        promise = Gst.Promise.new_with_change_func(self.on_offer, wb, None)
        wb.emit("create-offer", None, promise)

    def on_offer(self, promise, wb, _):
        promise.wait()
        reply = promise.get_reply()
        offer = reply.get_value("offer")
        if offer is None:
            raise RuntimeError("webrtcbin made no offer: %s" % reply.to_string())
        wb.emit("set-local-description", offer, Gst.Promise.new())
        sdp = offer.sdp.as_text()
        self.read_offer(sdp)
        GLib.idle_add(self.post, sdp)

    def read_offer(self, sdp):
        media = None
        for line in sdp.splitlines():
            if line.startswith("m="):
                media = line[2:].split()[0]
            elif line.startswith("a=mid:") and media:
                self.sections.append((media, line[6:]))
            elif line.startswith("a=ice-ufrag:") and not self.ufrag:
                self.ufrag = line[12:]
            elif line.startswith("a=ice-pwd:") and not self.pwd:
                self.pwd = line[10:]

    def request(self, method, url, body, ctype, headers=None):
        data = body.encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Authorization", "Bearer " + self.token)
        if ctype:
            req.add_header("Content-Type", ctype)
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, resp.headers, resp.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read().decode()

    def post(self, sdp):
        status, headers, body = self.request("POST", self.url, sdp, "application/sdp")
        say("post", status)
        if status != 201:
            self.fail("POST %d: %s" % (status, body))
            return False
        self.location = urllib.parse.urljoin(self.url, headers["Location"])
        self.etag = headers.get("ETag")
        for line in body.splitlines():
            if line.startswith("a=candidate:"):
                say("remote", line[2:])
        ok, msg = GstSdp.SDPMessage.new_from_text(body)
        answer = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER, msg)
        self.wb.emit("set-remote-description", answer, Gst.Promise.new())
        for frag in self.pending:
            self.patch(frag)
        self.pending = []
        return False

    def fragment(self, mline, candidate):
        media, mid = self.sections[mline]
        lines = ["a=ice-ufrag:" + self.ufrag, "a=ice-pwd:" + self.pwd,
                 "m=%s 9 UDP/TLS/RTP/SAVPF 0" % media, "a=mid:" + mid]
        lines.append("a=" + candidate if candidate else "a=end-of-candidates")
        return "\r\n".join(lines) + "\r\n"

    def on_ice_candidate(self, _wb, mline, candidate):
        say("local", candidate)
        GLib.idle_add(self.queue, self.fragment(mline, candidate))

    def on_gathering(self, wb, _pspec):
        if wb.get_property("ice-gathering-state") == GstWebRTC.WebRTCICEGatheringState.COMPLETE:
            GLib.idle_add(self.queue, self.fragment(0, None))

    def queue(self, frag):
        if self.location is None:
            self.pending.append(frag)
        else:
            self.patch(frag)
        return False

    def patch(self, frag):
        headers = {"If-Match": self.etag} if self.etag else {}
        status, _, body = self.request("PATCH", self.location, frag,
                                       "application/trickle-ice-sdpfrag", headers)
        say("patch", status, "end" if "end-of-candidates" in frag else "candidate")
        if status != 204:
            self.fail("PATCH %d: %s" % (status, body))

    def on_connection(self, wb, _pspec):
        state = wb.get_property("connection-state")
        if state == GstWebRTC.WebRTCPeerConnectionState.CONNECTED:
            say("connected")
        elif state == GstWebRTC.WebRTCPeerConnectionState.FAILED:
            self.fail("connection failed")

    def on_pad_added(self, _wb, pad):
        if pad.get_direction() != Gst.PadDirection.SRC:
            return
        media = pad.get_current_caps().get_structure(0).get_string("media")
        desc = ("rtpvp8depay ! vp8dec ! fakesink name=frames sync=false" if media == "video"
                else "rtpopusdepay ! opusdec ! fakesink sync=false")
        bin_ = Gst.parse_bin_from_description(desc, True)
        self.pipe.add(bin_)
        bin_.sync_state_with_parent()
        pad.link(bin_.get_static_pad("sink"))
        if media == "video":
            sink = bin_.get_by_name("frames").get_static_pad("sink")
            sink.add_probe(Gst.PadProbeType.BUFFER, self.on_frame)
        say("track", media)

    def on_frame(self, pad, _info):
        self.decoded += 1
        if self.decoded == self.frames:
            s = pad.get_current_caps().get_structure(0)
            say("decoded %d %dx%d" % (self.decoded, s.get_int("width")[1], s.get_int("height")[1]))
            GLib.idle_add(self.leave)
        return Gst.PadProbeReturn.OK


def main():
    if len(sys.argv) != 5 or sys.argv[1] not in ("whip", "whep"):
        sys.exit(__doc__)
    sys.excepthook = die
    Gst.init(None)
    mode, url, token, arg = sys.argv[1:]
    if mode == "whip":
        return Session(mode, url, token, arg, 0).run()
    return Session(mode, url, token, "webrtcbin name=wb bundle-policy=max-bundle", int(arg)).run()


if __name__ == "__main__":
    sys.exit(main())
