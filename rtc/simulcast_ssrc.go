package rtc

// Simulcast told apart by SSRC alone: a section that sends its layers
// under an a=ssrc-group:SIM, without rids, as libwebrtc described
// simulcast before rids (and still does when an application asks for it
// by rewriting its SDP).
//
// pion receives simulcast by rid only: a section of several SSRCs
// without rids is Plan B to it, which it refuses, and it would take the
// first SSRC alone. So before pion reads such a description, each SIM
// section is put in the rid form pion handles: its SSRC lines go (pion
// would take declared SSRCs for tracks of their own), a rid names each
// layer (q, h, f in the group's order: libwebrtc lists a SIM group's
// SSRCs lowest layer first, as it orders its simulcast streams), and the
// mid and rid header extensions are negotiated if the client did not
// offer them. Packets on those SSRCs do not carry the rid (nor, from an
// older client, the mid) that pion reads to bind an SSRC to its layer, so
// the connection's interceptor writes them into the packets of each SSRC
// of the description until pion has read one (ssrcSimulcast). What the
// server sends the client is put back in the client's terms: no rid or
// simulcast lines on those sections and no header extension the client
// did not offer (clientView).
//
// The layers' order among themselves does not rest on the rids: a Track
// orders its layers by the picture sizes it sees. The rids name the
// layers in the signaling messages about them (OnLayersNeeded).
//
// The extensions written never reach anyone else: a down-track forwards
// none of its publisher's extensions but the audio level and the video
// orientation (hdrext.go), and recordings keep payloads.

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
)

// ssrcLayerRIDs name a SIM group's layers in the group's order, lowest
// first; a group names at most this many (browsers send three layers at
// most).
var ssrcLayerRIDs = [...]string{"q", "h", "f"}

// ssrcLayer is what the packets of one SSRC of a SIM section are named.
type ssrcLayer struct {
	mid, rid string
	// repair: the SSRC is a layer's retransmissions (an a=ssrc-group:FID
	// of the layer's SSRC), named by repaired-rtp-stream-id.
	repair bool
}

// ssrcPlan is how a description's SIM sections are put in the rid form.
type ssrcPlan struct {
	sections map[string][]sdp.Attribute // mid -> the section's attributes in rid form
	layers   map[uint32]ssrcLayer
	// added are the ids of the header extensions the rid form adds; a
	// section that did not offer one of them never sees it.
	added map[int]bool
	// offered are the header extension ids each section of the
	// description (by mid) lists, read before apply adds the rid form's.
	offered map[string]map[int]bool
}

// attrValues returns the values of md's attributes named key.
func attrValues(md *sdp.MediaDescription, key string) []string {
	var out []string
	for _, a := range md.Attributes {
		if a.Key == key {
			out = append(out, a.Value)
		}
	}
	return out
}

// extmapID reads the id of an a=extmap value ("<id>[/<direction>] <uri> ...").
func extmapID(v string) (id int, uri string, err error) {
	f := strings.Fields(v)
	if len(f) < 2 {
		return 0, "", fmt.Errorf("a=extmap:%s has no URI", v)
	}
	idText, _, _ := strings.Cut(f[0], "/")
	id, err = strconv.Atoi(idText)
	if err != nil || id < 1 || id > 255 {
		return 0, "", fmt.Errorf("a=extmap:%s has no valid id", v)
	}
	return id, f[1], nil
}

// parseSDPSSRC reads an SSRC of an SDP attribute; 0 is refused, as pion
// takes it for no SSRC.
func parseSDPSSRC(s string) (uint32, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%q is not an SSRC", s)
	}
	return uint32(n), nil
}

// planSSRCSimulcast checks each section of d with an a=ssrc-group:SIM and
// plans its rid form; nil when d has none. d is not changed. A group must
// name two or three distinct SSRCs, each declared by an a=ssrc line of
// its section; the section must be video, have a mid, no rids of its
// own and send, and every other SSRC it declares must be one layer's
// repair flow (a=ssrc-group:FID or FEC-FR of the layer's SSRC).
func planSSRCSimulcast(d *sdp.SessionDescription) (*ssrcPlan, error) {
	if !hasSIMGroup(d) {
		return nil, nil // nothing to read, and nothing to refuse
	}
	var plan *ssrcPlan
	extIDs := map[string]int{} // URI -> id, anywhere in d
	used := map[int]bool{}
	note := func(v string) (int, error) {
		id, uri, err := extmapID(v)
		if err != nil {
			return 0, err
		}
		used[id] = true
		if _, ok := extIDs[uri]; !ok {
			extIDs[uri] = id
		}
		return id, nil
	}
	for _, a := range d.Attributes {
		if a.Key == sdp.AttrKeyExtMap {
			if _, err := note(a.Value); err != nil {
				return nil, err
			}
		}
	}
	offered, err := sectionExtIDs(d, note)
	if err != nil {
		return nil, err
	}
	for _, md := range d.MediaDescriptions {
		var groups []string
		for _, g := range attrValues(md, sdp.AttrKeySSRCGroup) {
			if isSIMGroup(g) {
				groups = append(groups, g)
			}
		}
		if len(groups) == 0 {
			continue
		}
		mid, _ := md.Attribute(sdp.AttrKeyMID)
		if plan == nil {
			plan = &ssrcPlan{sections: map[string][]sdp.Attribute{}, layers: map[uint32]ssrcLayer{}, added: map[int]bool{}, offered: offered}
		}
		if err := plan.section(md, mid, groups, extIDs, used); err != nil {
			if mid == "" {
				return nil, err
			}
			return nil, fmt.Errorf("section %q: %w", mid, err)
		}
	}
	// pion would give an SSRC another section declares to that section.
	for _, md := range d.MediaDescriptions {
		mid, _ := md.Attribute(sdp.AttrKeyMID)
		if _, ok := plan.sections[mid]; ok {
			continue
		}
		for _, v := range attrValues(md, sdp.AttrKeySSRC) {
			id, _, _ := strings.Cut(v, " ")
			if ssrc, err := parseSDPSSRC(id); err == nil {
				if l, ok := plan.layers[ssrc]; ok {
					return nil, fmt.Errorf("section %q: SSRC %d of a=ssrc-group:SIM is declared in section %q too", l.mid, ssrc, mid)
				}
			}
		}
	}
	return plan, nil
}

// sectionExtIDs returns the header extension ids each section of d lists
// (by mid), each a=extmap value read by read, which fails the whole or
// returns 0 for a value to leave out.
func sectionExtIDs(d *sdp.SessionDescription, read func(v string) (int, error)) (map[string]map[int]bool, error) {
	offered := make(map[string]map[int]bool, len(d.MediaDescriptions))
	for _, md := range d.MediaDescriptions {
		mid, _ := md.Attribute(sdp.AttrKeyMID)
		ids := map[int]bool{}
		for _, v := range attrValues(md, sdp.AttrKeyExtMap) {
			id, err := read(v)
			if err != nil {
				return nil, err
			}
			if id != 0 {
				ids[id] = true
			}
		}
		offered[mid] = ids
	}
	return offered, nil
}

func isSIMGroup(v string) bool {
	sem, _, _ := strings.Cut(v, " ")
	return sem == "SIM"
}

func hasSIMGroup(d *sdp.SessionDescription) bool {
	for _, md := range d.MediaDescriptions {
		if slices.ContainsFunc(attrValues(md, sdp.AttrKeySSRCGroup), isSIMGroup) {
			return true
		}
	}
	return false
}

// section plans the rid form of md, whose SIM groups are groups.
func (p *ssrcPlan) section(md *sdp.MediaDescription, mid string, groups []string, extIDs map[string]int, used map[int]bool) error {
	if mid == "" {
		return fmt.Errorf("a section with a=ssrc-group:SIM has no a=mid")
	}
	if _, dup := p.sections[mid]; dup {
		return fmt.Errorf("two sections have the mid")
	}
	if md.MediaName.Media != "video" {
		return fmt.Errorf("a=ssrc-group:SIM in an %s section: only video is sent in layers", md.MediaName.Media)
	}
	if len(groups) > 1 {
		return fmt.Errorf("more than one a=ssrc-group:SIM")
	}
	f := strings.Fields(groups[0])[1:]
	if len(f) < 2 || len(f) > len(ssrcLayerRIDs) {
		return fmt.Errorf("a=ssrc-group:%s names %d SSRCs; a SIM group names 2 to %d", groups[0], len(f), len(ssrcLayerRIDs))
	}
	for _, k := range []string{"rid", "simulcast"} {
		if _, ok := md.Attribute(k); ok {
			return fmt.Errorf("a=ssrc-group:SIM and a=%s in one section: name the layers one way", k)
		}
	}
	for _, k := range []string{"recvonly", "inactive"} {
		if _, ok := md.Attribute(k); ok {
			return fmt.Errorf("a=ssrc-group:SIM in a %s section", k)
		}
	}
	// The section's declared SSRCs and the msid they name.
	declared := map[uint32]bool{}
	msid, _ := md.Attribute(sdp.AttrKeyMsid)
	ssrcMsid := ""
	for _, v := range attrValues(md, sdp.AttrKeySSRC) {
		id, rest, _ := strings.Cut(v, " ")
		ssrc, err := parseSDPSSRC(id)
		if err != nil {
			return fmt.Errorf("a=ssrc:%s: %w", v, err)
		}
		declared[ssrc] = true
		if m, ok := strings.CutPrefix(rest, "msid:"); ok && ssrcMsid == "" {
			ssrcMsid = m
		}
	}
	layers := map[uint32]ssrcLayer{}
	var sim []uint32
	for i, s := range f {
		ssrc, err := parseSDPSSRC(s)
		if err != nil {
			return fmt.Errorf("a=ssrc-group:%s: %w", groups[0], err)
		}
		if _, dup := layers[ssrc]; dup {
			return fmt.Errorf("a=ssrc-group:%s names SSRC %d twice", groups[0], ssrc)
		}
		if !declared[ssrc] {
			return fmt.Errorf("a=ssrc-group:%s names SSRC %d, which the section does not declare (a=ssrc)", groups[0], ssrc)
		}
		layers[ssrc] = ssrcLayer{mid: mid, rid: ssrcLayerRIDs[i]}
		sim = append(sim, ssrc)
	}
	repairs := false
	for _, g := range attrValues(md, sdp.AttrKeySSRCGroup) {
		if isSIMGroup(g) {
			continue
		}
		sem, rest, _ := strings.Cut(g, " ")
		pair := strings.Fields(rest)
		if (sem != sdp.SemanticTokenFlowIdentification && sem != sdp.SemanticTokenForwardErrorCorrectionFramework) || len(pair) != 2 {
			return fmt.Errorf("a=ssrc-group:%s beside a SIM group: only FID and FEC-FR pairs of a layer are taken", g)
		}
		base, err := parseSDPSSRC(pair[0])
		if err != nil {
			return fmt.Errorf("a=ssrc-group:%s: %w", g, err)
		}
		repair, err := parseSDPSSRC(pair[1])
		if err != nil {
			return fmt.Errorf("a=ssrc-group:%s: %w", g, err)
		}
		l, ok := layers[base]
		if !ok || l.repair {
			return fmt.Errorf("a=ssrc-group:%s repairs SSRC %d, which is not a layer of the SIM group", g, base)
		}
		if _, dup := layers[repair]; dup {
			return fmt.Errorf("a=ssrc-group:%s names SSRC %d, which is already a layer or a repair flow", g, repair)
		}
		if !declared[repair] {
			return fmt.Errorf("a=ssrc-group:%s names SSRC %d, which the section does not declare (a=ssrc)", g, repair)
		}
		if sem == sdp.SemanticTokenFlowIdentification {
			layers[repair] = ssrcLayer{mid: mid, rid: l.rid, repair: true}
			repairs = true
		} else {
			// FEC is not negotiated (serverCodecs): the SSRC never sends.
			layers[repair] = ssrcLayer{mid: mid, repair: true}
		}
	}
	for ssrc := range declared {
		if _, ok := layers[ssrc]; !ok {
			return fmt.Errorf("SSRC %d is declared beside a SIM group but is neither a layer nor a layer's repair flow", ssrc)
		}
	}
	for ssrc, l := range layers {
		if _, dup := p.layers[ssrc]; dup {
			return fmt.Errorf("SSRC %d is in two sections", ssrc)
		}
		if l.rid != "" {
			p.layers[ssrc] = l
		}
	}

	out := slices.DeleteFunc(slices.Clone(md.Attributes), func(a sdp.Attribute) bool {
		return a.Key == sdp.AttrKeySSRC || a.Key == sdp.AttrKeySSRCGroup
	})
	// pion takes a rid section for one track only with an msid.
	if msid == "" {
		if msid = ssrcMsid; msid == "" {
			msid = "- " + mid
		}
		out = append(out, sdp.NewAttribute(sdp.AttrKeyMsid, msid))
	}
	uris := []string{sdp.SDESMidURI, sdp.SDESRTPStreamIDURI}
	if repairs {
		uris = append(uris, sdp.SDESRepairRTPStreamIDURI)
	}
	for _, uri := range uris {
		if hasExtmap(md, uri) {
			continue
		}
		id, ok := extIDs[uri]
		if !ok {
			if id = freeExtID(used); id == 0 {
				return fmt.Errorf("no header extension id is free for %s", uri)
			}
			used[id], extIDs[uri] = true, id
		}
		p.added[id] = true
		out = append(out, sdp.NewAttribute(sdp.AttrKeyExtMap, fmt.Sprintf("%d %s", id, uri)))
	}
	var rids []string
	for i := range sim {
		rids = append(rids, ssrcLayerRIDs[i])
		out = append(out, sdp.NewAttribute("rid", ssrcLayerRIDs[i]+" send"))
	}
	out = append(out, sdp.NewAttribute("simulcast", "send "+strings.Join(rids, ";")))
	p.sections[mid] = out
	return nil
}

func hasExtmap(md *sdp.MediaDescription, uri string) bool {
	for _, v := range attrValues(md, sdp.AttrKeyExtMap) {
		if _, u, err := extmapID(v); err == nil && u == uri {
			return true
		}
	}
	return false
}

// freeExtID returns a header extension id that used does not hold, 0 for
// none. Only the one-byte form's ids are taken (1 to 14): every client
// reads those.
func freeExtID(used map[int]bool) int {
	for id := 1; id <= maxOneByteID; id++ {
		if !used[id] {
			return id
		}
	}
	return 0
}

// RIDForm returns the description desc as a Peer has pion read it: its
// sections that send simulcast by SSRC in the rid form, and desc itself
// when it has none. It is for checking an offer against a bare pion peer
// connection as a Peer would apply it; the error names what is wrong with
// a SIM section.
func RIDForm(desc string) (string, error) {
	var d sdp.SessionDescription
	if err := d.UnmarshalString(desc); err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalidDescription, err)
	}
	plan, err := planSSRCSimulcast(&d)
	if err != nil {
		return "", fmt.Errorf("%w: simulcast by SSRC: %v", ErrInvalidDescription, err)
	}
	if plan == nil {
		return desc, nil
	}
	plan.apply(&d)
	out, err := d.Marshal()
	if err != nil {
		return "", fmt.Errorf("%w: simulcast by SSRC: %v", ErrInvalidDescription, err)
	}
	return string(out), nil
}

// apply puts d's SIM sections in their rid form.
func (p *ssrcPlan) apply(d *sdp.SessionDescription) {
	for _, md := range d.MediaDescriptions {
		mid, _ := md.Attribute(sdp.AttrKeyMID)
		if a, ok := p.sections[mid]; ok {
			md.Attributes = a
		}
	}
}

// ssrcSimulcastFactory makes each connection's ssrcSimulcast and keeps it
// until the Engine claims it for the connection it was made for.
type ssrcSimulcastFactory struct {
	made connClaims[*ssrcSimulcast]
}

func (f *ssrcSimulcastFactory) NewInterceptor(id string) (interceptor.Interceptor, error) {
	s := &ssrcSimulcast{}
	f.made.put(id, s)
	return s, nil
}

// ssrcSimulcast is one connection's simulcast by SSRC: the interceptor
// that names the layers in their packets, and what the server's
// descriptions leave out for the client.
type ssrcSimulcast struct {
	interceptor.NoOp
	// layers name the SSRCs of the SIM sections of the client's last
	// description that had one; nil before. Replaced whole, never
	// changed.
	layers atomic.Pointer[map[uint32]ssrcLayer]

	// The Peer's goroutine alone uses the following, from the client's
	// descriptions that were applied.
	ridForm map[string]bool         // mids of the last description's SIM sections, which pion has in rid form
	added   map[int]bool            // header extension ids the rid form ever added: pion keeps them
	offered map[string]map[int]bool // the header extension ids each section of the last lists
}

// expect makes the layers of plan known to the interceptor, in place of
// those of the client's last description (each of its descriptions lists
// every SSRC it sends, so the map stays as small as one description), and
// returns what restores them if the description is not applied after all.
func (s *ssrcSimulcast) expect(plan *ssrcPlan) (undo func()) {
	old := s.layers.Load()
	s.layers.Store(&plan.layers)
	return func() { s.layers.Store(old) }
}

// applied records a description of the client's that pion took; plan is
// nil for one without a SIM section. Which sections are in rid form is
// rebuilt from each: a mid the client now sends without its SIM group
// (with rids of its own, say) must have its rid and simulcast lines in
// the server's answer again.
func (s *ssrcSimulcast) applied(plan *ssrcPlan, d *sdp.SessionDescription) {
	if plan == nil && s.added == nil {
		return // no SIM section yet: nothing to rewrite
	}
	if s.added == nil {
		s.added = map[int]bool{}
	}
	s.ridForm = map[string]bool{}
	if plan != nil {
		for mid := range plan.sections {
			s.ridForm[mid] = true
		}
		for id := range plan.added {
			s.added[id] = true
		}
		s.offered = plan.offered
		return
	}
	// Without a SIM section the description was not checked here: a
	// malformed extmap, which pion let by, is left out.
	s.offered, _ = sectionExtIDs(d, func(v string) (int, error) {
		id, _, _ := extmapID(v) // 0 when malformed
		return id, nil
	})
}

// clientView returns a description of the server's as the client of a
// SIM section must see it: that section without the rid and simulcast
// lines of its rid form, and no section with a header extension the rid
// form added that the client's section did not list. Anything else is
// left as it is; so is the whole description on a connection with no
// SIM section.
func (s *ssrcSimulcast) clientView(desc string) (string, error) {
	if s.added == nil {
		return desc, nil
	}
	var d sdp.SessionDescription
	if err := d.UnmarshalString(desc); err != nil {
		return "", fmt.Errorf("rtc: server description: %w", err)
	}
	for _, md := range d.MediaDescriptions {
		mid, _ := md.Attribute(sdp.AttrKeyMID)
		md.Attributes = slices.DeleteFunc(md.Attributes, func(a sdp.Attribute) bool {
			switch a.Key {
			case "rid", "simulcast":
				return s.ridForm[mid]
			case sdp.AttrKeyExtMap:
				id, _, err := extmapID(a.Value)
				return err == nil && s.added[id] && !s.offered[mid][id]
			}
			return false
		})
	}
	out, err := d.Marshal()
	if err != nil {
		return "", fmt.Errorf("rtc: server description: %w", err)
	}
	return string(out), nil
}

// BindRemoteStream names the layer in the packets of an SSRC of a SIM
// section until one is named, which is the packet pion binds the SSRC to
// its layer by. Other streams are not touched.
func (s *ssrcSimulcast) BindRemoteStream(info *interceptor.StreamInfo, reader interceptor.RTPReader) interceptor.RTPReader {
	m := s.layers.Load()
	if m == nil {
		return reader
	}
	l, ok := (*m)[info.SSRC]
	if !ok {
		return reader
	}
	n := &layerNamer{inner: reader, mid: []byte(l.mid), rid: []byte(l.rid)}
	for _, x := range info.RTPHeaderExtensions {
		if x.ID < 1 || x.ID > 255 {
			continue
		}
		switch {
		case x.URI == sdp.SDESMidURI:
			n.midID = uint8(x.ID)
		case x.URI == sdp.SDESRTPStreamIDURI && !l.repair:
			n.ridID = uint8(x.ID)
		case x.URI == sdp.SDESRepairRTPStreamIDURI && l.repair:
			n.ridID = uint8(x.ID)
		}
	}
	if n.midID == 0 || n.ridID == 0 {
		return reader
	}
	return n
}

// layerNamer writes a layer's mid and rid into the packets it reads until
// one has them.
type layerNamer struct {
	inner        interceptor.RTPReader
	midID, ridID uint8
	mid, rid     []byte
	named        atomic.Bool
}

func (n *layerNamer) Read(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
	i, a, err := n.inner.Read(b, a)
	if err != nil || n.named.Load() {
		return i, a, err
	}
	if j, ok := nameLayer(b, i, n.midID, n.ridID, n.mid, n.rid); ok {
		i = j
		n.named.Store(true)
		// A header parsed before the names were written is stale.
		for k, v := range a {
			if _, ok := v.(*rtp.Header); ok {
				delete(a, k)
			}
		}
	}
	return i, a, nil
}

// nameLayer sets the mid and rid elements of the RTP packet b[:n] in the
// header extension, and returns the packet's new length. It returns false,
// leaving b as it was, when the ids are not two, the packet cannot be
// parsed, its extension profile takes neither element, or b has no room
// for them.
func nameLayer(b []byte, n int, midID, ridID uint8, mid, rid []byte) (int, bool) {
	if midID == 0 || ridID == 0 || midID == ridID {
		return n, false // 0 is no id (RFC 8285)
	}
	var pkt rtp.Packet
	if err := pkt.Unmarshal(b[:n]); err != nil {
		return n, false
	}
	elems := [...]struct {
		id uint8
		v  []byte
	}{{midID, mid}, {ridID, rid}}
	if !pkt.Extension {
		// pion picks the form by the first element's length alone.
		pkt.Extension, pkt.ExtensionProfile = true, rtp.ExtensionProfileOneByte
		for _, x := range elems {
			if x.id > maxOneByteID || len(x.v) == 0 || len(x.v) > 16 {
				pkt.ExtensionProfile = rtp.ExtensionProfileTwoByte
			}
		}
	} else if pkt.ExtensionProfile != rtp.ExtensionProfileOneByte && pkt.ExtensionProfile&extProfileTwoByteMask != extProfileTwoByte {
		return n, false // not RFC 8285's: no element can be added
	}
	for _, x := range elems {
		if err := pkt.Header.SetExtension(x.id, x.v); err != nil {
			// An id or value the one-byte form cannot carry.
			if err := pkt.Header.SetExtensionWithProfile(x.id, x.v, rtp.ExtensionProfileTwoByte); err != nil {
				return n, false
			}
		}
	}
	size := pkt.MarshalSize()
	if size > len(b) {
		return n, false
	}
	// The payload points into b: marshal aside, then copy back.
	out, err := pkt.Marshal()
	if err != nil {
		return n, false
	}
	return copy(b, out), true
}
