package rtc

// The RTP header extensions a Forwarder reads from its publisher's
// packets and its down-tracks forward to their subscribers: the audio
// level (RFC 6464), which also feeds the track's level meter
// (audiolevel.go), and the video orientation (3GPP's CVO), without which
// a phone's rotated camera shows sideways. Each is one byte. Ids are
// negotiated per peer connection, so a packet's elements are found by the
// publisher's ids and written again under the subscriber's. The others a
// publisher sends (mid, rid, its transport-cc) belong to its own
// connection and are dropped; the server writes its own on the way out.

import (
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// Header extension URIs Troupe negotiates beyond pion's own.
const (
	AudioLevelURI       = sdp.AudioLevelURI
	VideoOrientationURI = "urn:3gpp:video-orientation"
)

// RFC 8285's header extension profiles.
const (
	extProfileOneByte = 0xBEDE
	// The two-byte profile is 0x100 followed by four application bits.
	extProfileTwoByte     = 0x1000
	extProfileTwoByteMask = 0xfff0
)

// extIDs are the ids one connection negotiated for the extensions
// Troupe reads or forwards; 0 for one it did not.
type extIDs struct {
	audioLevel, orientation uint8
}

// extIDsOf picks the ids of the extensions Troupe reads or forwards from
// a connection's negotiated ones. Ids outside 1..255 are left out.
func extIDsOf(exts []webrtc.RTPHeaderExtensionParameter) extIDs {
	var ids extIDs
	for _, x := range exts {
		if x.ID < 1 || x.ID > 255 {
			continue
		}
		switch x.URI {
		case AudioLevelURI:
			ids.audioLevel = uint8(x.ID)
		case VideoOrientationURI:
			ids.orientation = uint8(x.ID)
		}
	}
	return ids
}

func (ids extIDs) none() bool { return ids == extIDs{} }

// hdrExts is what one packet carries of the extensions Troupe reads.
type hdrExts struct {
	// audioLevel is the audio level element's byte: the voice activity
	// bit and the level in -dBov (0 loudest, 127 silence).
	audioLevel uint8
	// orientation is the video orientation element's byte.
	orientation uint8
	has         uint8 // hasAudioLevel | hasOrientation
}

const (
	hasAudioLevel uint8 = 1 << iota
	hasOrientation
)

// readExtensions fills out with the elements of ids that b's header
// extension holds (h from parseRTP of b), in place and without
// allocating. The elements are walked as RFC 8285 says and as pion
// does: padding bytes are skipped, the one-byte form stops at id 15 or
// at an id 0 that has a length, and an element that runs past the
// extension ends the walk. Of the same id twice, the first counts, and
// is ignored when it is not one byte long.
func readExtensions(b []byte, h *rtpHeader, ids extIDs, out *hdrExts) {
	*out = hdrExts{}
	if ids.none() || h.extEnd <= h.extStart || h.extEnd > len(b) {
		return
	}
	ext := b[h.extStart:h.extEnd]
	twoByte := h.extProfile&extProfileTwoByteMask == extProfileTwoByte
	if !twoByte && h.extProfile != extProfileOneByte {
		return
	}
	var seen uint8 // hasAudioLevel | hasOrientation: the id's first element came
	for i := 0; i < len(ext); {
		if ext[i] == 0 { // padding
			i++
			continue
		}
		var id uint8
		var n int
		if twoByte {
			if i+1 >= len(ext) {
				return
			}
			id, n = ext[i], int(ext[i+1])
			i += 2
		} else {
			id, n = ext[i]>>4, int(ext[i]&0x0f)+1
			i++
			if id == 15 || id == 0 {
				return
			}
		}
		if i+n > len(ext) {
			return
		}
		switch {
		case id == ids.audioLevel:
			if seen&hasAudioLevel == 0 && n == 1 {
				out.audioLevel = ext[i]
				out.has |= hasAudioLevel
			}
			seen |= hasAudioLevel
		case id == ids.orientation:
			if seen&hasOrientation == 0 && n == 1 {
				out.orientation = ext[i]
				out.has |= hasOrientation
			}
			seen |= hasOrientation
		}
		i += n
	}
}

// extWriter is the fixed room a down-track's header's elements point
// into, so that setting them allocates nothing. Each goroutine that
// writes (the fan-out writer, under wmu, and the NACK answers) has its own.
type extWriter struct {
	// bytes holds the elements' payloads; slots backs the header's list
	// of elements, with room for those the interceptors add after them
	// (transport-cc, abs-send-time), so that appending to it allocates
	// nothing either.
	bytes [2]byte
	slots [6]rtp.Extension
}

// maxOneByteID is the largest id the one-byte form can carry; Troupe
// writes its elements in that form only, and pion's offers use ids
// below it.
const maxOneByteID = 14

// apply sets h's header extension to the elements of x that the
// subscriber negotiated, under its ids; with none, h has no extension
// until an interceptor adds its own.
func (w *extWriter) apply(h *rtp.Header, ids extIDs, x *hdrExts) {
	h.Extension = false
	h.ExtensionProfile = 0
	h.Extensions = w.slots[:0]
	if x.has&hasAudioLevel != 0 && ids.audioLevel != 0 && ids.audioLevel <= maxOneByteID {
		w.bytes[0] = x.audioLevel
		_ = h.SetExtension(ids.audioLevel, w.bytes[0:1]) // a one-byte element under a valid id
	}
	if x.has&hasOrientation != 0 && ids.orientation != 0 && ids.orientation <= maxOneByteID {
		w.bytes[1] = x.orientation
		_ = h.SetExtension(ids.orientation, w.bytes[1:2])
	}
}
