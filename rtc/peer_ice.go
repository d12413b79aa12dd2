package rtc

import (
	"strings"
	"time"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// A WHIP or WHEP client offers once; after that it sends the Peer its ICE
// candidates, and asks for ICE restarts, in ICE fragments (icefrag.go,
// RFC 9725 section 4.3). A restart is an offer pion takes as the answerer:
// the client's description applied again with its new credentials, which
// has pion restart its ICE agent and gather anew. Nothing else of the
// session is negotiated again, as RFC 9725 says.

// ICEUpdate is what applying a client's ICE fragment did.
type ICEUpdate struct {
	// Restart is the server's side of an ICE restart the fragment asked
	// for: its new credentials and every candidate, as a fragment; nil
	// when the fragment trickled candidates of the current session.
	Restart *ICEFragment
}

// ICERestarts returns how many ICE restarts the client has made: 0 for the
// ICE session its offer started.
func (p *Peer) ICERestarts() int { return p.iceRestarts }

// ApplyICEFragment applies a PeerWHIP or PeerWHEP client's ICE fragment,
// body (ParseICEFragment reads it; the owner bounds its size): its
// candidates are added as a signaling client's trickled ones are
// (AddCandidate), and new credentials restart ICE. The fragment is checked
// whole first, and one refused changes nothing: every section must name
// a section of the client's offer, of the same media; credentials must be
// the session's, or new ones (both ufrag and pwd) for a restart; a
// candidate's ufrag, if it names one, the fragment's. Each fragment is
// counted by its result (Metrics).
func (p *Peer) ApplyICEFragment(body string) (ICEUpdate, error) {
	up, err := p.applyICEFragment(body)
	result := "trickle"
	switch {
	case err != nil:
		result = "refused"
	case up.Restart != nil:
		result = "restart"
	}
	p.cfg.Metrics.countICEFragment(result)
	return up, err
}

func (p *Peer) applyICEFragment(body string) (ICEUpdate, error) {
	if p.mode == PeerSignaling {
		return ICEUpdate{}, refuse(ErrNegotiationState, "a signaling client trickles its candidates as messages")
	}
	rd := p.pc.RemoteDescription()
	if rd == nil {
		return ICEUpdate{}, refuse(ErrNegotiationState, "no offer yet")
	}
	f, err := ParseICEFragment(body)
	if err != nil {
		return ICEUpdate{}, err
	}
	remote, err := parseDescription(rd.Type, rd.SDP)
	if err != nil {
		return ICEUpdate{}, err
	}
	ufrag, pwd := iceCredentials(remote)
	restart := f.Ufrag != "" && f.Ufrag != ufrag
	switch {
	case restart && f.Pwd == "":
		return ICEUpdate{}, refuse(ErrInvalidDescription,
			"a=ice-ufrag %q is not the session's, and without a new a=ice-pwd it asks for no ICE restart", f.Ufrag)
	case restart && f.Pwd == pwd:
		return ICEUpdate{}, refuse(ErrInvalidDescription, "an ICE restart needs a new a=ice-pwd as well as a new a=ice-ufrag")
	case !restart && f.Pwd != "" && f.Pwd != pwd:
		return ICEUpdate{}, refuse(ErrInvalidDescription, "a=ice-pwd is not the session's (a restart needs a new a=ice-ufrag too)")
	}
	want := ufrag
	if restart {
		want = f.Ufrag
	}
	if err := checkFragmentSections(f, remote, want); err != nil {
		return ICEUpdate{}, err
	}
	if !restart {
		return ICEUpdate{}, p.addFragmentCandidates(f)
	}
	answer, err := p.restartICE(rd.SDP, f)
	if err != nil {
		return ICEUpdate{}, err
	}
	return ICEUpdate{Restart: answer}, nil
}

// iceCredentials returns d's ICE ufrag and pwd: at session level, or of
// its first section that has them (pion takes one pair for the bundle).
func iceCredentials(d *sdp.SessionDescription) (ufrag, pwd string) {
	ufrag, _ = d.Attribute("ice-ufrag")
	pwd, _ = d.Attribute("ice-pwd")
	for _, md := range d.MediaDescriptions {
		if ufrag == "" {
			ufrag, _ = md.Attribute("ice-ufrag")
		}
		if pwd == "" {
			pwd, _ = md.Attribute("ice-pwd")
		}
	}
	return ufrag, pwd
}

// checkFragmentSections checks that each section of f names a section of
// the client's description d, of the same media, and that each of its
// candidates that names a ufrag names ufrag.
func checkFragmentSections(f *ICEFragment, d *sdp.SessionDescription, ufrag string) error {
	media := make(map[string]string, len(d.MediaDescriptions))
	for _, md := range d.MediaDescriptions {
		if mid, ok := md.Attribute(sdp.AttrKeyMID); ok {
			media[mid] = md.MediaName.Media
		}
	}
	for _, s := range f.Sections {
		m, ok := media[s.Mid]
		switch {
		case !ok:
			return refuse(ErrInvalidDescription, "the offer has no media section of mid %q", s.Mid)
		case m != s.Media:
			return refuse(ErrInvalidDescription, "the media section of mid %q is %s, not %s", s.Mid, m, s.Media)
		}
		for _, c := range s.Candidates {
			if u, ok := candidateUfrag(c); ok && u != ufrag {
				return refuse(ErrInvalidDescription, "a candidate of mid %q names ufrag %q, not the session's %q", s.Mid, u, ufrag)
			}
		}
	}
	return nil
}

// candidateUfrag returns the ufrag extension of a candidate line, if it
// has one.
func candidateUfrag(c string) (string, bool) {
	fields := strings.Fields(c)
	// The extensions, and the related address and port before them, are
	// name-value pairs after the eight fixed fields (foundation to the
	// type).
	for i := 8; i+1 < len(fields); i += 2 {
		if fields[i] == "ufrag" {
			return fields[i+1], true
		}
	}
	return "", false
}

// addFragmentCandidates adds f's candidates, and its end of candidates,
// through AddCandidate. Those the server cannot use are dropped, as RFC
// 9725 asks (pion drops some itself, and refuses a host name's).
func (p *Peer) addFragmentCandidates(f *ICEFragment) error {
	for _, s := range f.Sections {
		mid := s.Mid
		for _, c := range s.Candidates {
			if !usableCandidate(c) {
				p.log.Debug("trickled candidate dropped: the server cannot use it", "candidate", c)
				continue
			}
			if err := p.AddCandidate(webrtc.ICECandidateInit{Candidate: c, SDPMid: &mid}); err != nil {
				return err
			}
		}
	}
	if f.Ended() {
		return p.AddCandidate(webrtc.ICECandidateInit{})
	}
	return nil
}

// restartICE restarts ICE with the credentials of f: the client's
// description (remote, as pion has it) applied again with them and
// without its old candidates, and answered, once the transport has
// started (awaitICEStart); then f's candidates are added. It returns
// the server's new credentials and candidates, which the answer carries
// once gathered.
func (p *Peer) restartICE(remote string, f *ICEFragment) (*ICEFragment, error) {
	before, err := ICEFragmentOf(p.pc.LocalDescription().SDP)
	if err != nil {
		return nil, err
	}
	// A restart before the transport has started would be undone when it
	// starts: pion starts it with the credentials of the first exchange.
	if err := p.awaitICEStart(); err != nil {
		return nil, err
	}
	offer := withICECredentials(remote, f.Ufrag, f.Pwd)
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return nil, refuse(ErrInvalidDescription, "ICE restart: %v", err)
	}
	p.iceRestarts++
	p.log.Info("ICE restart", "restarts", p.iceRestarts)
	answer, err := p.pc.CreateAnswer(nil)
	if err != nil {
		return nil, refuse(ErrNegotiationState, "ICE restart: %v", err)
	}
	if err := p.pc.SetLocalDescription(answer); err != nil {
		return nil, refuse(ErrNegotiationState, "ICE restart: %v", err)
	}
	// The restart started gathering (in SetRemoteDescription): the promise
	// made now waits for it, or sees it complete already.
	select {
	case <-webrtc.GatheringCompletePromise(p.pc):
	case <-time.After(GatherTimeout):
		p.log.Warn("ICE gathering did not complete after a restart; answering with what there is")
	}
	if err := p.addFragmentCandidates(f); err != nil {
		return nil, err
	}
	after, err := ICEFragmentOf(p.pc.LocalDescription().SDP)
	if err != nil {
		return nil, err
	}
	if after.Ufrag == before.Ufrag {
		// pion took the offer for no restart: the client would be told
		// of credentials that are not new.
		return nil, refuse(ErrNegotiationState, "ICE restart: the server's ICE credentials did not change")
	}
	return after, nil
}

// withICECredentials returns the description d with ufrag and pwd for its
// ICE credentials and without candidates, its lines ended by CRLF (a
// client's may end them by LF alone).
func withICECredentials(d, ufrag, pwd string) string {
	lines := strings.Split(strings.TrimRight(d, "\r\n"), "\n")
	out := make([]string, 0, len(lines)+1)
	for _, line := range lines {
		line = strings.TrimSuffix(line, "\r")
		switch {
		case strings.HasPrefix(line, "a=ice-ufrag:"):
			line = "a=ice-ufrag:" + ufrag
		case strings.HasPrefix(line, "a=ice-pwd:"):
			line = "a=ice-pwd:" + pwd
		case strings.HasPrefix(line, "a=candidate:"), line == "a=end-of-candidates":
			continue
		}
		out = append(out, line)
	}
	return strings.Join(append(out, ""), "\r\n")
}

// ICEFragmentOf returns the ICE part of the description d as a fragment:
// its credentials and, in its first section (the bundle's, the one
// section that gathers), its candidates: what a server's restart answers,
// or a client trickles of its offer.
func ICEFragmentOf(d string) (*ICEFragment, error) {
	parsed := &sdp.SessionDescription{}
	if err := parsed.UnmarshalString(d); err != nil {
		return nil, refuse(ErrInvalidDescription, "%v", err)
	}
	ufrag, pwd := iceCredentials(parsed)
	f := &ICEFragment{Ufrag: ufrag, Pwd: pwd}
	if len(parsed.MediaDescriptions) == 0 {
		return f, nil
	}
	md := parsed.MediaDescriptions[0]
	mid, _ := md.Attribute(sdp.AttrKeyMID)
	s := ICEFragmentSection{
		Media: md.MediaName.Media,
		MLine: md.MediaName.String(),
		Mid:   mid,
	}
	for _, a := range md.Attributes {
		switch a.Key {
		case "candidate":
			s.Candidates = append(s.Candidates, "candidate:"+a.Value)
		case "end-of-candidates":
			s.End = true
		}
	}
	f.Sections = append(f.Sections, s)
	return f, nil
}

// countICEFragment counts a client's ICE fragment by result.
func (m *Metrics) countICEFragment(result string) {
	if m != nil {
		m.link.iceFragments.WithLabelValues(result).Inc()
	}
}
