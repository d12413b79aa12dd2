package firefoxtest

// Report is what a page's driver posts: the page's state (window.troupe)
// and what its peer connection sends and receives.
type Report struct {
	Done          int           `json:"done"` // the last command done
	State         string        `json:"state"`
	Connection    string        `json:"connection"`
	ParticipantID string        `json:"participantId"`
	Notice        string        `json:"notice"`
	Stats         Stats         `json:"stats"`
	Inbound       []RTP         `json:"inbound"`
	Outbound      []RTP         `json:"outbound"`
	Encodings     []Encoding    `json:"encodings"` // the camera's sender's
	Layers        *Layers       `json:"layers"`    // the server's last layers message
	Chat          []Chat        `json:"chat"`      // the messages shown, oldest first
	Transceivers  []Transceiver `json:"transceivers"`
	LocalSDP      string        `json:"localSdp"`
	// RemoteSDP is the remote description as Firefox gives it back: parsed
	// and written again, so that it may differ from what the server sent
	// (Firefox leaves out the fmtp parameters it does not know, and writes
	// those it knows in its own order).
	RemoteSDP string `json:"remoteSdp"`
	// Errors are the page's uncaught errors and the commands that failed,
	// the last few.
	Errors []string `json:"errors"`
}

// Transceiver is one of the page's transceivers.
type Transceiver struct {
	MID              string `json:"mid"`
	Kind             string `json:"kind"`
	Direction        string `json:"direction"`
	CurrentDirection string `json:"currentDirection"`
	// Receiving is whether its receiver's track is unmuted: media came.
	Receiving bool `json:"receiving"`
}

// Chat is a chat message the page shows.
type Chat struct {
	Name string `json:"name"`
	Text string `json:"text"`
}

// Stats is window.troupe.stats(): the inbound RTP the page received.
type Stats struct {
	VideoFramesDecoded   int      `json:"videoFramesDecoded"`
	VideoPacketsReceived int      `json:"videoPacketsReceived"`
	VideoKeyRequests     int      `json:"videoKeyRequests"`
	AudioPacketsReceived int      `json:"audioPacketsReceived"`
	InboundVideo         int      `json:"inboundVideo"`
	InboundAudio         int      `json:"inboundAudio"`
	VideoSizes           []string `json:"videoSizes"`
}

// RTP is an inbound or outbound RTP stream of the page's connection.
type RTP struct {
	Kind     string `json:"kind"`
	SSRC     uint32 `json:"ssrc"`
	RID      string `json:"rid"`      // of a simulcast layer sent
	MimeType string `json:"mimeType"` // "video/VP8"
	Packets  int    `json:"packets"`  // received or sent
	Frames   int    `json:"frames"`   // decoded or encoded
	Width    int    `json:"width"`
	Height   int    `json:"height"`
	PLI      int    `json:"pli"` // received (outbound) or sent (inbound)
	FIR      int    `json:"fir"`
	NACK     int    `json:"nack"`
}

// Encoding is one of the camera sender's encodings.
type Encoding struct {
	RID                   string  `json:"rid"`
	Active                bool    `json:"active"`
	ScaleResolutionDownBy float64 `json:"scaleResolutionDownBy"`
	MaxBitrate            int     `json:"maxBitrate"`
}

// Layers is the server's last layers message: which of the camera's
// layers someone receives.
type Layers struct {
	MID    string   `json:"mid"`
	Active []string `json:"active"`
	Paused []string `json:"paused"`
}

// Streams returns the streams of kind ("audio" or "video") among rtp.
func Streams(rtp []RTP, kind string) []RTP {
	var out []RTP
	for _, s := range rtp {
		if s.Kind == kind {
			out = append(out, s)
		}
	}
	return out
}
