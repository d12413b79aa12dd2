package rtc

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/rtc/rtctest"
)

// withoutRIDs is rtctest.SimulcastBySSRC, which must not fail.
func withoutRIDs(t *testing.T, desc string, ssrcs []webrtc.SSRC, noExtmaps bool) string {
	t.Helper()
	out, err := rtctest.SimulcastBySSRC(desc, ssrcs, !noExtmaps)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// mungedOffer has the Peer answer offer, which the client did not set as
// its local description (it set the one offer was made from), checks
// that the answer speaks of what offer did only, and gives it to the
// client.
func (o *peerOwner) mungedOffer(offer string) {
	o.t.Helper()
	answer := o.applyOffer(offer)
	if got := o.nextDesc(webrtc.SDPTypeAnswer); got.SDP != answer {
		o.t.Fatal("the answer sent differs from the one returned")
	}
	checkInClientTerms(o.t, offer, answer)
	o.setRemote(webrtc.SDPTypeAnswer, answer)
}

// checkInClientTerms fails unless answer has no rid or simulcast line
// and, in each section, no header extension the offer's section did not
// list.
func checkInClientTerms(t *testing.T, offer, answer string) {
	t.Helper()
	var o, a sdp.SessionDescription
	if err := o.UnmarshalString(offer); err != nil {
		t.Fatal(err)
	}
	if err := a.UnmarshalString(answer); err != nil {
		t.Fatal(err)
	}
	offered := map[string]map[string]bool{}
	for _, md := range o.MediaDescriptions {
		mid, _ := md.Attribute(sdp.AttrKeyMID)
		offered[mid] = map[string]bool{}
		for _, v := range attrValues(md, sdp.AttrKeyExtMap) {
			offered[mid][v] = true
		}
	}
	for _, md := range a.MediaDescriptions {
		mid, _ := md.Attribute(sdp.AttrKeyMID)
		for _, at := range md.Attributes {
			if at.Key == "rid" || at.Key == "simulcast" {
				t.Fatalf("the answer's section %q has a=%s:%s", mid, at.Key, at.Value)
			}
			if at.Key == sdp.AttrKeyExtMap && !offered[mid][at.Value] {
				t.Fatalf("the answer's section %q has a=extmap:%s, which the offer did not list", mid, at.Value)
			}
		}
	}
}

// TestLoopbackSimulcastBySSRC is TestLoopbackSimulcast with a publisher
// of simulcast by SSRC: its offer names the three layers in an
// a=ssrc-group:SIM (lowest first), offers neither the mid nor the rid
// header extension, and its packets name no layer. The server takes the
// camera as one Track of three layers, q, h and f in the group's order,
// its answer speaks of none of that, and the subscribers get one layer
// each, the switching one on a keyframe of its new layer.
func TestLoopbackSimulcastBySSRC(t *testing.T) {
	loopbackSimulcast(t, rtctest.AddSimulcast, rtctest.VP8, func(offer string, camera *rtctest.SimulcastSender) string {
		return withoutRIDs(t, offer, camera.SSRCs(), true)
	})
}

// TestLoopbackSimulcastBySSRCH264 is TestLoopbackSimulcastBySSRC with an
// H.264 camera whose offer lists the mid and rid header extensions, which
// its packets do not carry: the server names the layers under the
// client's ids.
func TestLoopbackSimulcastBySSRCH264(t *testing.T) {
	loopbackSimulcast(t, rtctest.AddSimulcastH264, rtctest.H264, func(offer string, camera *rtctest.SimulcastSender) string {
		return withoutRIDs(t, offer, camera.SSRCs(), false)
	})
}

// simOffer is a client's offer of a microphone and a camera sent in three
// layers by SSRC, each with its retransmissions, as libwebrtc describes
// them. Its audio section lists the mid header extension.
const simOffer = "v=0\r\n" +
	"o=- 1 2 IN IP4 127.0.0.1\r\n" +
	"s=-\r\n" +
	"t=0 0\r\n" +
	"a=group:BUNDLE 0 1\r\n" +
	"m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n" +
	"c=IN IP4 0.0.0.0\r\n" +
	"a=mid:0\r\n" +
	"a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n" +
	"a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\n" +
	"a=sendonly\r\n" +
	"a=rtpmap:111 opus/48000/2\r\n" +
	"a=ssrc:11 cname:c\r\n" +
	"m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\n" +
	"c=IN IP4 0.0.0.0\r\n" +
	"a=mid:1\r\n" +
	"a=extmap:2 urn:3gpp:video-orientation\r\n" +
	"a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\n" +
	"a=sendonly\r\n" +
	"a=rtpmap:96 VP8/90000\r\n" +
	"a=rtpmap:97 rtx/90000\r\n" +
	"a=fmtp:97 apt=96\r\n" +
	"a=ssrc-group:SIM 101 102 103\r\n" +
	"a=ssrc-group:FID 101 201\r\n" +
	"a=ssrc-group:FID 102 202\r\n" +
	"a=ssrc-group:FID 103 203\r\n" +
	"a=ssrc:101 cname:c\r\n" +
	"a=ssrc:101 msid:stream camera\r\n" +
	"a=ssrc:201 cname:c\r\n" +
	"a=ssrc:102 cname:c\r\n" +
	"a=ssrc:202 cname:c\r\n" +
	"a=ssrc:103 cname:c\r\n" +
	"a=ssrc:203 cname:c\r\n"

func simParseSDP(t testing.TB, s string) *sdp.SessionDescription {
	t.Helper()
	d := &sdp.SessionDescription{}
	if err := d.UnmarshalString(s); err != nil {
		t.Fatal(err)
	}
	return d
}

func simMarshalSDP(t testing.TB, d *sdp.SessionDescription) string {
	t.Helper()
	b, err := d.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestPlanSSRCSimulcast: the SIM section's rid form names the layers q,
// h and f in the group's order, and their retransmissions by the layer
// they repair; it declares no SSRC, keeps the msid the SSRC lines gave,
// takes the mid extension's id from the audio section and a free id for
// each rid extension. The audio section is left alone. A group of two
// names q and h; FEC beside it is taken; a description without a group is
// not read.
func TestPlanSSRCSimulcast(t *testing.T) {
	d := simParseSDP(t, simOffer)
	plan, err := planSSRCSimulcast(d)
	if err != nil {
		t.Fatal(err)
	}
	want := map[uint32]ssrcLayer{
		101: {mid: "1", rid: "q"}, 102: {mid: "1", rid: "h"}, 103: {mid: "1", rid: "f"},
		201: {mid: "1", rid: "q", repair: true}, 202: {mid: "1", rid: "h", repair: true}, 203: {mid: "1", rid: "f", repair: true},
	}
	if fmt.Sprint(plan.layers) != fmt.Sprint(want) {
		t.Fatalf("layers %v, want %v", plan.layers, want)
	}
	if !plan.added[4] || !plan.added[5] || !plan.added[6] || len(plan.added) != 3 {
		t.Fatalf("added extension ids %v, want 4, 5 and 6", plan.added)
	}
	if simMarshalSDP(t, d) != simMarshalSDP(t, simParseSDP(t, simOffer)) {
		t.Fatal("planning changed the description")
	}
	plan.apply(d)
	out := simParseSDP(t, simMarshalSDP(t, d))
	if a := strings.Split(simMarshalSDP(t, out), "m=video")[0]; a != strings.Split(simMarshalSDP(t, simParseSDP(t, simOffer)), "m=video")[0] {
		t.Fatal("the audio section changed")
	}
	video := out.MediaDescriptions[1]
	if got := attrValues(video, sdp.AttrKeySSRC); len(got) != 0 {
		t.Fatalf("the rid form declares SSRCs %v", got)
	}
	if got := attrValues(video, sdp.AttrKeySSRCGroup); len(got) != 0 {
		t.Fatalf("the rid form has the groups %v", got)
	}
	for key, want := range map[string][]string{
		"rid":                {"q send", "h send", "f send"},
		"simulcast":          {"send q;h;f"},
		sdp.AttrKeyMsid:      {"stream camera"},
		sdp.AttrKeyExtMap:    {"2 urn:3gpp:video-orientation", "3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01", "4 " + sdp.SDESMidURI, "5 " + sdp.SDESRTPStreamIDURI, "6 " + sdp.SDESRepairRTPStreamIDURI},
		sdp.AttrKeySSRCGroup: nil,
	} {
		if got := attrValues(video, key); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("a=%s: %q, want %q", key, got, want)
		}
	}
	if plan, err := planSSRCSimulcast(out); plan != nil || err != nil {
		t.Fatalf("the rid form planned again: %v, %v", plan, err)
	}
	// Two layers are q and h.
	two := simOffer
	for _, drop := range []string{"a=ssrc-group:FID 103 203\r\n", "a=ssrc:103 cname:c\r\n", "a=ssrc:203 cname:c\r\n"} {
		two = strings.Replace(two, drop, "", 1)
	}
	d = simParseSDP(t, strings.Replace(two, "SIM 101 102 103", "SIM 102 101", 1))
	if plan, err = planSSRCSimulcast(d); err != nil {
		t.Fatal(err)
	}
	plan.apply(d)
	if l := plan.layers; len(l) != 4 || l[102].rid != "q" || l[101].rid != "h" || l[202].rid != "q" || l[201].rid != "h" {
		t.Fatalf("two layers named %v", l)
	}
	if got := attrValues(d.MediaDescriptions[1], "simulcast"); fmt.Sprint(got) != "[send q;h]" {
		t.Fatalf("two layers: a=simulcast:%v", got)
	}

	// A layer's FEC is taken, and never named: it is not negotiated.
	if plan, err = planSSRCSimulcast(simParseSDP(t, strings.Replace(simOffer, "FID 103 203", "FEC-FR 103 203", 1))); err != nil {
		t.Fatal(err)
	}
	if _, named := plan.layers[203]; named || len(plan.layers) != 5 {
		t.Fatalf("with FEC: layers %v", plan.layers)
	}

	// Without a SIM group nothing is read: not even a malformed extmap.
	plain := strings.Replace(strings.Replace(simOffer, "a=ssrc-group:SIM 101 102 103\r\n", "", 1), "a=extmap:2 urn", "a=extmap:x urn", 1)
	if plan, err := planSSRCSimulcast(simParseSDP(t, plain)); plan != nil || err != nil {
		t.Fatalf("a description without a SIM group: %v, %v", plan, err)
	}
}

// TestPlanSSRCSimulcastRefuses: each malformed SIM section is refused with
// an error naming what is wrong, and the description is not changed.
func TestPlanSSRCSimulcastRefuses(t *testing.T) {
	sub := func(old, new string) string {
		if !strings.Contains(simOffer, old) {
			t.Fatalf("the offer has no %q", old)
		}
		return strings.Replace(simOffer, old, new, 1)
	}
	for _, c := range []struct {
		name, offer, want string
	}{
		{"undeclared", sub("SIM 101 102 103", "SIM 101 102 104"), "names SSRC 104, which the section does not declare"},
		{"duplicate", sub("SIM 101 102 103", "SIM 101 102 102"), "names SSRC 102 twice"},
		{"too many", sub("SIM 101 102 103", "SIM 101 102 103 201"), "names 4 SSRCs; a SIM group names 2 to 3"},
		{"one", sub("SIM 101 102 103", "SIM 101"), "names 1 SSRCs"},
		{"empty", sub("SIM 101 102 103", "SIM"), "names 0 SSRCs"},
		{"not a number", sub("SIM 101 102 103", "SIM 101 x 103"), `"x" is not an SSRC`},
		{"too large", sub("SIM 101 102 103", "SIM 101 4294967296 103"), `"4294967296" is not an SSRC`},
		{"zero", sub("SIM 101 102 103", "SIM 101 0 103"), `"0" is not an SSRC`},
		{"bad ssrc line", sub("a=ssrc:203 cname:c", "a=ssrc:-3 cname:c"), `"-3" is not an SSRC`},
		{"two groups", sub("a=ssrc-group:FID 101 201", "a=ssrc-group:SIM 201 202"), "more than one a=ssrc-group:SIM"},
		{"no mid", sub("a=mid:1\r\n", ""), "has no a=mid"},
		{"rids too", sub("a=sendonly\r\na=rtpmap:96", "a=sendonly\r\na=rid:q send\r\na=rtpmap:96"), "a=ssrc-group:SIM and a=rid in one section"},
		{"recvonly", sub("a=sendonly\r\na=rtpmap:96", "a=recvonly\r\na=rtpmap:96"), "a=ssrc-group:SIM in a recvonly section"},
		{"stray ssrc", sub("a=ssrc:203 cname:c", "a=ssrc:203 cname:c\r\na=ssrc:300 cname:c"), "SSRC 300 is declared beside a SIM group"},
		{"repair of no layer", sub("FID 103 203", "FID 203 103"), "repairs SSRC 203, which is not a layer"},
		{"repair is a layer", sub("FID 103 203", "FID 103 102"), "names SSRC 102, which is already a layer"},
		{"undeclared repair", sub("FID 103 203", "FID 103 204"), "names SSRC 204, which the section does not declare"},
		{"other group", sub("FID 103 203", "FOO 103 203"), "only FID and FEC-FR pairs"},
		{"bad extmap", sub("a=extmap:2 urn", "a=extmap:x urn"), "has no valid id"},
		{"ssrc in another section", sub("a=ssrc:11 cname:c", "a=ssrc:102 cname:c"), `SSRC 102 of a=ssrc-group:SIM is declared in section "0" too`},
		{"audio", sub("a=ssrc:11 cname:c", "a=ssrc-group:SIM 11 12\r\na=ssrc:11 cname:c\r\na=ssrc:12 cname:c"), "a=ssrc-group:SIM in an audio section"},
		{"no free id", sub("a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n", "a=extmap:1 urn:a\r\na=extmap:5 urn:b\r\na=extmap:6 urn:c\r\na=extmap:7 urn:d\r\na=extmap:8 urn:e\r\na=extmap:9 urn:f\r\na=extmap:10 urn:g\r\na=extmap:11 urn:h\r\na=extmap:12 urn:i\r\na=extmap:13 urn:j\r\na=extmap:14 urn:k\r\n"), "no header extension id is free"},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := simParseSDP(t, c.offer)
			before := simMarshalSDP(t, d)
			plan, err := planSSRCSimulcast(d)
			if err == nil || !strings.Contains(err.Error(), c.want) || plan != nil {
				t.Fatalf("plan %v, error %v; want one saying %q", plan, err, c.want)
			}
			if simMarshalSDP(t, d) != before {
				t.Fatal("the description changed")
			}
			if err := CheckSimulcastBySSRC(d); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("CheckSimulcastBySSRC: %v", err)
			}
		})
	}
}

// TestApplyOfferSSRCSimulcastRefused: a Peer refuses a malformed SIM
// offer with ErrInvalidDescription naming the problem, answers nothing,
// and is left as it was: the well-formed offer that follows is taken.
func TestApplyOfferSSRCSimulcastRefused(t *testing.T) {
	engine, api, _, _ := loopbackRig(t, func(c *Config) { c.NoBandwidthEstimation = true })
	pub := newPeerOwner(t, engine, api)
	camera, err := rtctest.AddSimulcast(pub.client, "PA_pub")
	if err != nil {
		t.Fatal(err)
	}
	offer := withoutRIDs(t, pub.localOffer().SDP, camera.SSRCs(), true)
	bad := strings.Replace(offer, fmt.Sprintf("SIM %d", camera.SSRCs()[0]), "SIM 7", 1)
	var answer string
	pub.call(func() { answer, err = pub.peer.ApplyOffer(bad) })
	if !errors.Is(err, ErrInvalidDescription) || !strings.Contains(err.Error(), "names SSRC 7, which the section does not declare") || answer != "" {
		t.Fatalf("answer %q, error %v; want ErrInvalidDescription naming SSRC 7", answer, err)
	}
	pub.noDesc()
	pub.call(func() {
		if pub.peer.pc.RemoteDescription() != nil || pub.peer.sim.layers.Load() != nil || pub.peer.sim.ridForm != nil {
			t.Error("the refused offer changed the peer")
		}
	})
	pub.mungedOffer(offer)
}

// TestNameLayer: the mid and rid are set in packets of every header
// form, keeping what else the header and the payload hold; a packet
// whose buffer has no room for them, or that is not RTP, is left alone.
func TestNameLayer(t *testing.T) {
	payload := []byte{0x90, 0x80, 1, 2, 3}
	for _, c := range []struct {
		name  string
		hdr   rtp.Header
		other []rtp.Extension // elements set beforehand, kept
		midID uint8
	}{
		{name: "no extension", hdr: rtp.Header{}, midID: 4},
		{name: "csrcs and padding", hdr: rtp.Header{CSRC: []uint32{7, 8}, Padding: true, PaddingSize: 5}, midID: 4},
		{name: "one-byte", other: []rtp.Extension{{}}, midID: 4},
		{name: "one-byte, mid already there", other: []rtp.Extension{{}}, midID: 3},
		{name: "one-byte, an id the form cannot take", other: []rtp.Extension{{}}, midID: 20},
		{name: "two-byte", hdr: rtp.Header{Extension: true, ExtensionProfile: rtp.ExtensionProfileTwoByte}, other: []rtp.Extension{{}}, midID: 4},
	} {
		t.Run(c.name, func(t *testing.T) {
			pkt := rtp.Packet{Header: c.hdr, Payload: payload}
			pkt.Version, pkt.PayloadType, pkt.SequenceNumber, pkt.Timestamp, pkt.SSRC = 2, 96, 9, 99, 101
			if c.other != nil {
				if err := pkt.Header.SetExtension(3, []byte{0xaa}); err != nil {
					t.Fatal(err)
				}
				if err := pkt.Header.SetExtension(2, []byte{0xbb, 0xcc}); err != nil {
					t.Fatal(err)
				}
			}
			raw, err := pkt.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			b := make([]byte, 1500)
			n, ok := nameLayer(b, copy(b, raw), c.midID, 10, []byte("1"), []byte("q"))
			if !ok {
				t.Fatal("not named")
			}
			var got rtp.Packet
			if err := got.Unmarshal(b[:n]); err != nil {
				t.Fatal(err)
			}
			if string(got.GetExtension(c.midID)) != "1" || string(got.GetExtension(10)) != "q" {
				t.Fatalf("mid %q, rid %q", got.GetExtension(c.midID), got.GetExtension(10))
			}
			if c.other != nil && c.midID != 3 && string(got.GetExtension(3)) != "\xaa" || c.other != nil && string(got.GetExtension(2)) != "\xbb\xcc" {
				t.Fatalf("the other elements: %x, %x", got.GetExtension(3), got.GetExtension(2))
			}
			if !bytes.Equal(got.Payload, payload) || fmt.Sprint(got.CSRC) != fmt.Sprint(pkt.CSRC) || got.Header.PaddingSize != pkt.Header.PaddingSize ||
				got.SequenceNumber != 9 || got.Timestamp != 99 || got.SSRC != 101 || got.PayloadType != 96 {
				t.Fatalf("the packet changed: %+v", got)
			}

			if n == len(raw) {
				return // it fits where it was
			}
			short := append([]byte(nil), raw...)
			if n, ok := nameLayer(short, len(short), c.midID, 10, []byte("1"), []byte("q")); ok || n != len(raw) || !bytes.Equal(short, raw) {
				t.Fatal("named a packet with no room for it")
			}
		})
	}
	junk := []byte{0x00, 1, 2}
	if n, ok := nameLayer(junk, len(junk), 4, 10, []byte("1"), []byte("q")); ok || n != 3 {
		t.Fatal("named junk")
	}
}

// TestLayerNamer: the interceptor names the first packet of an SSRC of a
// SIM section, rid or repaired rid by the kind of flow, and passes the
// rest as they come; other streams, and those of a connection that did
// not negotiate both extensions, are not touched.
func TestLayerNamer(t *testing.T) {
	s := &ssrcSimulcast{}
	plan, err := planSSRCSimulcast(simParseSDP(t, simOffer))
	if err != nil {
		t.Fatal(err)
	}
	s.expect(plan)
	exts := []interceptor.RTPHeaderExtension{{URI: sdp.SDESMidURI, ID: 4}, {URI: sdp.SDESRTPStreamIDURI, ID: 5}, {URI: sdp.SDESRepairRTPStreamIDURI, ID: 6}}
	var sent uint16
	source := interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		sent++
		raw, err := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: sent}, Payload: []byte{1}}).Marshal()
		return copy(b, raw), a, err
	})
	// read reads a packet, with a header parsed before in the
	// attributes, as an interceptor before this one could leave there.
	read := func(r interceptor.RTPReader) (rtp.Packet, *rtp.Header) {
		t.Helper()
		b := make([]byte, 1500)
		a := interceptor.Attributes{}
		if _, err := a.GetRTPHeader([]byte{0x80, 96, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}); err != nil {
			t.Fatal(err)
		}
		n, a, err := r.Read(b, a)
		if err != nil {
			t.Fatal(err)
		}
		var p rtp.Packet
		if err := p.Unmarshal(b[:n]); err != nil {
			t.Fatal(err)
		}
		h, err := a.GetRTPHeader(b[:n])
		if err != nil {
			t.Fatal(err)
		}
		return p, h
	}
	for _, c := range []struct {
		ssrc      uint32
		id        uint8
		rid       string
		exts      []interceptor.RTPHeaderExtension
		untouched bool
	}{
		{ssrc: 102, id: 5, rid: "h", exts: exts},
		{ssrc: 202, id: 6, rid: "h", exts: exts},
		{ssrc: 11, exts: exts, untouched: true},
		{ssrc: 103, exts: exts[:1], untouched: true},
	} {
		r := s.BindRemoteStream(&interceptor.StreamInfo{SSRC: c.ssrc, RTPHeaderExtensions: c.exts}, source)
		first, h := read(r)
		if c.untouched {
			if first.Extension {
				t.Fatalf("SSRC %d: the packet was named", c.ssrc)
			}
			continue
		}
		if string(first.GetExtension(4)) != "1" || string(first.GetExtension(c.id)) != c.rid {
			t.Fatalf("SSRC %d: mid %q, rid %q", c.ssrc, first.GetExtension(4), first.GetExtension(c.id))
		}
		if h.SequenceNumber != first.SequenceNumber || !h.Extension {
			t.Fatalf("SSRC %d: the attributes kept the header parsed before the packet was named", c.ssrc)
		}
		if next, _ := read(r); next.Extension {
			t.Fatalf("SSRC %d: a packet after the first was named", c.ssrc)
		}
	}
}

// FuzzPlanSSRCSimulcast: whatever the description, planning its rid form
// never panics; a planned rid form marshals, parses again, declares no
// SSRC in the sections it rewrote, and has nothing left to plan.
func FuzzPlanSSRCSimulcast(f *testing.F) {
	f.Add(simOffer)
	f.Add(strings.Replace(simOffer, "SIM 101 102 103", "SIM 101 102", 1))
	f.Add(strings.Replace(simOffer, "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\n", "", 1))
	f.Fuzz(func(t *testing.T, s string) {
		var d sdp.SessionDescription
		if err := d.UnmarshalString(s); err != nil {
			return
		}
		plan, err := planSSRCSimulcast(&d)
		if err != nil || plan == nil {
			return
		}
		plan.apply(&d)
		b, err := d.Marshal()
		if err != nil {
			t.Fatalf("marshal the rid form: %v", err)
		}
		var out sdp.SessionDescription
		if err := out.UnmarshalString(string(b)); err != nil {
			t.Fatalf("the rid form does not parse: %v\n%s", err, b)
		}
		for _, md := range out.MediaDescriptions {
			mid, _ := md.Attribute(sdp.AttrKeyMID)
			if _, ok := plan.sections[mid]; ok && len(attrValues(md, sdp.AttrKeySSRC)) != 0 {
				t.Fatalf("section %q declares SSRCs in its rid form", mid)
			}
		}
		if again, err := planSSRCSimulcast(&out); again != nil || err != nil {
			t.Fatalf("the rid form planned again: %v, %v", again, err)
		}
	})
}

// FuzzNameLayer: whatever the packet, naming its layer never panics nor
// writes past the buffer; a packet named parses, with its names and its
// payload.
func FuzzNameLayer(f *testing.F) {
	raw, err := (&rtp.Packet{Header: rtp.Header{Version: 2, CSRC: []uint32{1}}, Payload: []byte{1, 2}}).Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw, uint8(4), uint8(20))
	f.Add([]byte{0x90, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0xbe, 0xde, 0, 1, 0x10, 0xff, 0, 0}, uint8(1), uint8(2))
	f.Fuzz(func(t *testing.T, pkt []byte, midID, ridID uint8) {
		var before rtp.Packet
		parsed := before.Unmarshal(pkt) == nil
		b := make([]byte, len(pkt)+32)
		n, ok := nameLayer(b[:len(pkt)+16], copy(b, pkt), midID, ridID, []byte("m"), []byte("r"))
		if !ok {
			if n != len(pkt) || !bytes.Equal(b[:n], pkt) {
				t.Fatal("a packet not named changed")
			}
			return
		}
		if !parsed || n > len(pkt)+16 || !bytes.Equal(b[len(pkt)+16:], make([]byte, 16)) {
			t.Fatalf("named %d bytes of a packet that parsed: %v", n, parsed)
		}
		var after rtp.Packet
		if err := after.Unmarshal(b[:n]); err != nil {
			t.Fatalf("the named packet does not parse: %v", err)
		}
		if string(after.GetExtension(midID)) != "m" || string(after.GetExtension(ridID)) != "r" {
			t.Fatalf("names %q, %q", after.GetExtension(midID), after.GetExtension(ridID))
		}
		if !bytes.Equal(after.Payload, before.Payload) {
			t.Fatal("the payload changed")
		}
	})
}

// TestLoopbackSimulcastBySSRCRenegotiates: a signaling publisher of
// simulcast by SSRC whose offer lists neither the mid nor the rid header
// extension renegotiates with the server. The server's own offer (of a
// track for the publisher to receive) keeps to the client's terms: no
// rid or simulcast line, no mid or rid extension; a malformed answer is
// refused and changes nothing, the client's answer with its SIM group
// again is taken, and the track offered comes. So is the client's next
// offer, by SSRC again.
func TestLoopbackSimulcastBySSRCRenegotiates(t *testing.T) {
	engine, api, ctx, wg := loopbackRig(t, func(c *Config) { c.NoBandwidthEstimation = true })
	pub := newPeerOwner(t, engine, api)
	camera, err := rtctest.AddSimulcast(pub.client, "PA_pub")
	if err != nil {
		t.Fatal(err)
	}
	camera.Unnamed = true
	pub.mungedOffer(withoutRIDs(t, pub.localOffer().SDP, camera.SSRCs(), true))
	pub.waitConnected()
	if err := camera.Start(ctx, pub.client, 20*time.Millisecond, wg, func(err error) { t.Errorf("publish: %v", err) }); err != nil {
		t.Fatal(err)
	}
	track := serverSimulcast(t, pub, engine, nil, nil)

	// The server offers the client its own camera.
	pub.call(func() { err = pub.peer.AddSource("TR_cam", "PA_pub", track) })
	if err != nil {
		t.Fatal(err)
	}
	offer := pub.nextDesc(webrtc.SDPTypeOffer).SDP
	for _, line := range strings.Split(offer, "\r\n") {
		if strings.HasPrefix(line, "a=rid:") || strings.HasPrefix(line, "a=simulcast:") ||
			strings.HasPrefix(line, "a=extmap:") && (strings.Contains(line, sdp.SDESMidURI) || strings.Contains(line, "rtp-stream-id")) {
			t.Fatalf("the server's offer has %q, which the client never offered", line)
		}
	}
	pub.setRemote(webrtc.SDPTypeOffer, offer)
	answer, err := pub.client.CreateAnswer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.client.SetLocalDescription(answer); err != nil {
		t.Fatal(err)
	}
	bySSRC := withoutRIDs(t, answer.SDP, camera.SSRCs(), true)
	bad := strings.Replace(bySSRC, fmt.Sprintf("SIM %d", camera.SSRCs()[0]), "SIM 7", 1)
	pub.call(func() { err = pub.peer.ApplyAnswer(bad) })
	if !errors.Is(err, ErrInvalidDescription) || !strings.Contains(err.Error(), "names SSRC 7") {
		t.Fatalf("a malformed answer by SSRC: %v", err)
	}
	pub.call(func() { err = pub.peer.ApplyAnswer(bySSRC) })
	if err != nil {
		t.Fatalf("apply the client's answer by SSRC: %v", err)
	}
	rec := &recording{}
	select {
	case tr := <-pub.clientTracks:
		wg.Go(func() { rec.run(tr) })
	case <-time.After(peerWait):
		t.Fatal("the client did not get the track offered")
	}
	poll.Until(t, "the camera back at the client", func() bool { return len(rec.get()) >= 20 })

	// The client offers again, by SSRC again: the answer is in its terms,
	// and the camera keeps coming back.
	pub.mungedOffer(withoutRIDs(t, pub.localOffer().SDP, camera.SSRCs(), true))
	n := len(rec.get())
	poll.Until(t, "more of the camera after the client's offer", func() bool { return len(rec.get()) >= n+20 })
	// The layers are ordered by size once their keyframes gave it.
	poll.Until(t, "the layers q, h and f in order of size", func() bool {
		l := track.Layers()
		for i, rid := range rtctest.SimulcastRIDs {
			if l[i].RID != rid || l[i].Width != rtctest.SimulcastSizes[i][0] {
				return false
			}
		}
		return true
	})
}

// TestClientViewFollowsRenegotiation: the server's answer drops the rid
// and simulcast lines of a section only while the client sends it with a
// SIM group: once it renegotiates that mid with rids of its own, they are
// in the answer again. The header extensions the rid form added (mid,
// rid and repaired rid: 4, 5 and 6) are dropped from a section whose
// client's description did not list them, the last one's: all three
// first, then the repaired rid alone.
func TestClientViewFollowsRenegotiation(t *testing.T) {
	s := &ssrcSimulcast{}
	plan, err := planSSRCSimulcast(simParseSDP(t, simOffer))
	if err != nil || plan == nil {
		t.Fatalf("plan of the SIM offer: %v, %v", plan, err)
	}
	s.applied(plan, simParseSDP(t, simOffer))
	const server = "v=0\r\n" +
		"o=- 3 4 IN IP4 127.0.0.1\r\n" +
		"s=-\r\n" +
		"t=0 0\r\n" +
		"m=video 9 UDP/TLS/RTP/SAVPF 96\r\n" +
		"c=IN IP4 0.0.0.0\r\n" +
		"a=mid:1\r\n" +
		"a=recvonly\r\n" +
		"a=rtpmap:96 VP8/90000\r\n" +
		"a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\n" +
		"a=extmap:5 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id\r\n" +
		"a=extmap:6 urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id\r\n" +
		"a=rid:q recv\r\n" +
		"a=rid:h recv\r\n" +
		"a=simulcast:recv q;h\r\n"
	extmaps := func(v string) (ids []string) {
		for _, id := range []string{"4", "5", "6"} {
			if strings.Contains(v, "a=extmap:"+id+" ") {
				ids = append(ids, id)
			}
		}
		return ids
	}
	view := func() string {
		t.Helper()
		v, err := s.clientView(server)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if v := view(); strings.Contains(v, "a=rid:") || strings.Contains(v, "a=simulcast:") {
		t.Fatalf("the answer to a SIM section names rids:\n%s", v)
	} else if ids := extmaps(v); len(ids) != 0 {
		t.Fatalf("the answer to a SIM section lists the extensions %v its client did not:\n%s", ids, v)
	}

	// The same mid, now with rids of its own.
	ridOffer := strings.Replace(simOffer[:strings.Index(simOffer, "a=ssrc-group:SIM")], "a=extmap:3 ",
		"a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\na=extmap:5 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id\r\na=extmap:3 ", 1) +
		"a=rid:q send\r\na=rid:h send\r\na=simulcast:send q;h\r\n"
	d := simParseSDP(t, ridOffer)
	if plan, err := planSSRCSimulcast(d); err != nil || plan != nil {
		t.Fatalf("plan of the rid offer: %v, %v; want none", plan, err)
	}
	s.applied(nil, d)
	if v := view(); !strings.Contains(v, "a=rid:q recv") || !strings.Contains(v, "a=simulcast:recv q;h") {
		t.Fatalf("the answer to a section renegotiated with rids lacks them:\n%s", v)
	} else if ids := extmaps(v); !slices.Equal(ids, []string{"4", "5"}) {
		t.Fatalf("the answer to a section renegotiated with rids lists the extensions %v of 4, 5 and 6, want those it lists, 4 and 5:\n%s", ids, v)
	}
}
