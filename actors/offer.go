package actors

import (
	"fmt"
	"slices"
	"strings"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/troupe-media/troupe/rtc"
)

// MaxSDPSize bounds an offer or answer, in bytes; real ones are a few KiB.
const MaxSDPSize = 64 << 10

// checkSDPSize refuses a description of kind typ that is empty or larger
// than MaxSDPSize.
func checkSDPSize(typ webrtc.SDPType, s string) error {
	if len(s) == 0 || len(s) > MaxSDPSize {
		return fmt.Errorf("%w: %s must be 1 to %d bytes", ErrInvalidSDP, typ, MaxSDPSize)
	}
	return nil
}

// maxOfferMedia bounds the audio and video sections of a WHIP or WHEP
// offer, and the sections a signaling client sends on: the tracks one
// participant publishes at once.
const maxOfferMedia = 16

// offerError is an offer refused for a reason its sender can fix: an
// ErrInvalidSDP whose text is that reason alone, as clients are told it.
type offerError struct{ reason string }

func (e *offerError) Error() string { return e.reason }
func (e *offerError) Unwrap() error { return ErrInvalidSDP }

func refuseOffer(format string, args ...any) error {
	return &offerError{reason: fmt.Sprintf(format, args...)}
}

// ValidateOffer is the one rule for what a WHIP or WHEP offer may ask: it
// parses as SDP, has 1 to 16 audio and video sections, and each of them
// asks for what the client kind does. A WHIP section sends (sendonly, or
// sendrecv: the receiving half is left unused); a WHEP section is recvonly.
// An inactive section carries nothing, so neither kind takes one. Other
// sections (data channels) are not counted. A section that sends
// simulcast by SSRC (a=ssrc-group:SIM) must name its layers well
// (rtc.CheckSimulcastBySSRC). It fails with ErrInvalidSDP.
//
// It is only a reading of the SDP: what a peer connection would refuse
// (ICE credentials, fingerprint, codecs) is Rooms.CheckOffer's to find.
func ValidateOffer(kind ClientKind, offer string) error {
	if kind != ClientWHIP && kind != ClientWHEP {
		return fmt.Errorf("actors: ValidateOffer is for WHIP and WHEP offers, not %s", kind)
	}
	if len(offer) > MaxSDPSize {
		return refuseOffer("the offer exceeds %d bytes", MaxSDPSize)
	}
	var d sdp.SessionDescription
	if err := d.UnmarshalString(offer); err != nil {
		return refuseOffer("the offer is not valid SDP: %v", err)
	}
	media := 0
	for _, m := range d.MediaDescriptions {
		if m.MediaName.Media != "audio" && m.MediaName.Media != "video" {
			continue
		}
		if media++; media > maxOfferMedia {
			return refuseOffer("the offer has more than %d audio and video sections", maxOfferMedia)
		}
		dir := direction(m)
		switch {
		case kind == ClientWHIP && (dir == "recvonly" || dir == "inactive"):
			return refuseOffer("a WHIP offer's %s section must send (sendonly), not %s", m.MediaName.Media, dir)
		case kind == ClientWHEP && dir != "recvonly":
			return refuseOffer("a WHEP offer's %s section must be recvonly, not %s", m.MediaName.Media, dir)
		}
	}
	if media == 0 {
		return refuseOffer("the offer has no audio or video section")
	}
	if err := rtc.CheckSimulcastBySSRC(&d); err != nil {
		return refuseOffer("%v", err)
	}
	return nil
}

// direction is the direction attribute of section m.
func direction(m *sdp.MediaDescription) string {
	dir := "sendrecv" // RFC 4566: what a section without a direction means
	for _, a := range m.Attributes {
		switch a.Key {
		case "sendrecv", "sendonly", "recvonly", "inactive":
			dir = a.Key
		}
	}
	return dir
}

// checkSignalingOffer is the rule of a signaling client's offer that
// ValidateOffer is of WHIP's: it sends on at most maxOfferMedia audio and
// video sections (sendonly or sendrecv, not rejected), each one a track it
// publishes. Its other sections receive what it subscribes to, which the
// room bounds. It fails with ErrInvalidSDP.
func checkSignalingOffer(offer string) error {
	var d sdp.SessionDescription
	if err := d.UnmarshalString(offer); err != nil {
		return refuseOffer("the offer is not valid SDP: %v", err)
	}
	sending := 0
	for _, m := range d.MediaDescriptions {
		if m.MediaName.Media != "audio" && m.MediaName.Media != "video" || m.MediaName.Port.Value == 0 {
			continue
		}
		dir := direction(m)
		if dir != "sendrecv" && dir != "sendonly" {
			continue
		}
		if sending++; sending > maxOfferMedia {
			return refuseOffer("the offer sends on more than %d audio and video sections: a participant publishes at most %d tracks", maxOfferMedia, maxOfferMedia)
		}
	}
	return nil
}

// CheckWHEPOffer tells, before a WHEP viewer joins, whether its offer can
// receive anything in a room whose participants are room: it must list a
// codec the server forwards and, when the room has tracks, one of theirs
// in a section of their kind. A viewer refused here never shows up in the
// room (no member, no session started, no webhook). The participant's
// peer checks again, on the codecs' parameters too, when the offer is
// applied.
func CheckWHEPOffer(offer string, room []ParticipantInfo) error {
	var d sdp.SessionDescription
	if err := d.UnmarshalString(offer); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidSDP, err)
	}
	offered := map[string][]webrtc.RTPCodecCapability{} // by kind
	for _, md := range d.MediaDescriptions {
		offered[md.MediaName.Media] = append(offered[md.MediaName.Media], rtc.SectionCodecs(md)...)
	}
	if len(offered["audio"])+len(offered["video"]) == 0 {
		return noCommonCodec(nil)
	}
	var names []string
	for _, p := range room {
		for _, t := range p.Tracks {
			for _, c := range offered[t.Kind] {
				if strings.EqualFold(c.MimeType, t.Codec) {
					return nil
				}
			}
			if !slices.Contains(names, t.Codec) {
				names = append(names, t.Codec)
			}
		}
	}
	if len(names) > 0 {
		return noCommonCodec(names)
	}
	return nil
}

// noCommonCodec refuses a WHEP offer that can receive none of the room's
// tracks, whose codecs are codecs; with none, an offer that lists no codec
// the server forwards.
func noCommonCodec(codecs []string) error {
	if len(codecs) == 0 {
		var names []string
		for _, c := range rtc.ForwardedCodecs() {
			if !slices.Contains(names, c.MimeType) {
				names = append(names, c.MimeType)
			}
		}
		return fmt.Errorf("%w: the offer lists no codec Troupe forwards (%s)", ErrNoCommonCodec, strings.Join(names, ", "))
	}
	return fmt.Errorf("%w: the room's tracks are in %s, and the offer lists none of them", ErrNoCommonCodec, strings.Join(codecs, ", "))
}
