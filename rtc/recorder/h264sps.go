package recorder

import "github.com/troupe-media/troupe/internal/h264"

// h264Size reads the picture size from an H.264 sequence parameter set
// (ITU-T H.264 7.3.2.1.1), cropping applied; ok is false for one it cannot
// read. nal is the NAL unit with its header byte.
func h264Size(nal []byte) (w, h int, ok bool) {
	if len(nal) < 4 {
		return 0, 0, false
	}
	return h264.SPSSize(nal[1:])
}
