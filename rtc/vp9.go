package rtc

// vp9Desc locates the fields of a VP9 payload descriptor (RFC 9628
// section 4.2) that Troupe reads: the picture id and TL0PICIDX a
// down-track rewrites when it moves from one simulcast layer to another,
// and the layer indices and flags that tell a keyframe. An SVC stream is
// one source, so its descriptors go out as they came.
type vp9Desc struct {
	picIDs
	flags uint8 // the first byte: I P L F B E V Z
	// layerAt is the offset of the layer indices (TID U SID D) when L is
	// set, else 0.
	layerAt uint8
	// restAt is the offset of what follows the layer indices and
	// TL0PICIDX: the reference indices (F and P set), then the
	// scalability structure (V set).
	restAt uint8
}

// The flags of a VP9 payload descriptor's first byte.
const (
	vp9I = 0x80 // picture id present
	vp9P = 0x40 // inter-picture predicted
	vp9L = 0x20 // layer indices present
	vp9F = 0x10 // flexible mode
	vp9B = 0x08 // start of a frame
	vp9V = 0x02 // scalability structure present
)

// parseVP9Desc reads p's payload descriptor up to its reference indices.
// It reports false, d zero, when p is too short for what the descriptor
// announces: the picture id (7 or 15 bits, by M), the layer indices and,
// in non-flexible mode (F clear), TL0PICIDX.
func parseVP9Desc(p []byte, d *vp9Desc) bool {
	*d = vp9Desc{}
	if len(p) < 1 {
		return false
	}
	var v vp9Desc
	v.flags = p[0]
	i := 1
	if v.flags&vp9I != 0 {
		var ok bool
		if i, ok = v.readPicID(p, i); !ok {
			return false
		}
	}
	if v.flags&vp9L != 0 {
		if len(p) <= i {
			return false
		}
		v.layerAt = uint8(i)
		i++
		if v.flags&vp9F == 0 { // non-flexible mode: TL0PICIDX
			if len(p) <= i {
				return false
			}
			v.tl0At, v.tl0 = uint8(i), p[i]
			i++
		}
	}
	v.restAt = uint8(i)
	*d = v
	return true
}

// startsKey reports whether d's packet begins a frame (B) that is not
// inter-predicted (P clear): a keyframe's first packet, or that of an
// upper spatial layer of a keyframe picture.
func (d *vp9Desc) startsKey() bool {
	return d.flags&vp9B != 0 && d.flags&vp9P == 0
}

// keyframe reports whether p, the payload d was parsed from, starts a
// picture a decoder can start from: a non-predicted frame of spatial
// layer 0.
func (d *vp9Desc) keyframe(p []byte) bool {
	if !d.startsKey() {
		return false
	}
	return d.layerAt == 0 || (p[d.layerAt]>>1)&0x07 == 0 // SID in bits 3..1
}
