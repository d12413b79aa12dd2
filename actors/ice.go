package actors

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
)

// A WHIP or WHEP client trickles its ICE candidates, and restarts ICE, by
// PATCHing its session with an ICE fragment (RFC 9725 section 4.3). Each
// ICE session has a tag, the session's ETag: the participant's id for the
// one its offer started (the ETag of the POST's answer), then the id and
// the number of restarts. A patch names the tag it is for; the participant
// actor checks it and applies the fragment in one message, so that a
// trickle checked against a session never lands in the next one.

// MaxICEFragmentSize bounds an ICE fragment, which carries a few
// candidates (about a hundred bytes each) and credentials.
const MaxICEFragmentSize = 16 << 10

// ErrICESessionChanged: a patch names an ICE session tag that is not the
// current one (the client missed a restart, or names another session).
var ErrICESessionChanged = errors.New("the ICE session is not the one named")

// ICEPatch is a WHIP or WHEP client's PATCH of its ICE session.
type ICEPatch struct {
	// Fragment is the body: a trickle ICE SDP fragment.
	Fragment string
	// IfMatch are the tags the patch is for (If-Match, unquoted); "*"
	// matches any. The patch is applied if one matches; none, no check.
	IfMatch []string
}

// ICEPatchResult is what a patch did.
type ICEPatchResult struct {
	// Tag is the ICE session's tag after the patch: a new one after a
	// restart.
	Tag string
	// Restart, after an ICE restart, is the server's new credentials and
	// candidates as a trickle ICE SDP fragment; "" for a trickle.
	Restart string
}

// iceTag is the tag of a participant's ICE session after restarts.
func iceTag(id ParticipantID, restarts int) string {
	if restarts == 0 {
		return string(id)
	}
	return string(id) + "." + strconv.Itoa(restarts)
}

// PatchICE applies a WHIP or WHEP client's ICE fragment: its candidates are
// added to the peer connection (as a signaling client's candidate
// messages are), and new credentials restart ICE. A tag that does not
// match fails with ErrICESessionChanged; a fragment that does not parse,
// or does not fit the session (a mid or media it does not have, a ufrag
// neither its own nor a restart's), with ErrInvalidSDP naming the fault.
// Either changes nothing.
func (p *Participant) PatchICE(ctx context.Context, patch ICEPatch) (ICEPatchResult, error) {
	if len(patch.Fragment) > MaxICEFragmentSize {
		return ICEPatchResult{}, fmt.Errorf("%w: an ICE fragment must be at most %d bytes", ErrInvalidSDP, MaxICEFragmentSize)
	}
	// New credentials restart ICE, whose answer waits for the server's
	// candidates.
	reply, err := p.requestWithin(ctx, &clientICE{patch: patch}, OfferTimeout(p.rooms.cfg.RequestTimeout))
	if err != nil {
		return ICEPatchResult{}, err
	}
	return ICEPatchResult{Tag: reply.tag, Restart: reply.sdp}, nil
}

// clientICE is an ICEPatch for the participant actor.
type clientICE struct{ patch ICEPatch }

// clientICE checks the patch's tag, then applies its fragment.
func (p *participantActor) clientICE(m *clientICE) *participantReply {
	tag := iceTag(p.info.ID, p.peer.ICERestarts())
	if len(m.patch.IfMatch) > 0 && !slices.Contains(m.patch.IfMatch, "*") && !slices.Contains(m.patch.IfMatch, tag) {
		return &participantReply{err: fmt.Errorf("%w: the current ICE session's tag is %q", ErrICESessionChanged, tag)}
	}
	up, err := p.peer.ApplyICEFragment(m.patch.Fragment)
	if err != nil {
		return &participantReply{err: peerError(err)}
	}
	reply := &participantReply{tag: iceTag(p.info.ID, p.peer.ICERestarts())}
	if up.Restart != nil {
		reply.sdp = up.Restart.String()
	}
	return reply
}
