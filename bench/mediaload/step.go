package mediaload

// Step is what one step of a run measured. The JSON keys are the ones
// issue 5 lists, then more.
type Step struct {
	Scenario               string  `json:"scenario"`
	Publishers             int     `json:"publishers"`  // in all rooms
	Subscribers            int     `json:"subscribers"` // receive-only, in all rooms
	ForwardedPacketsPerSec float64 `json:"forwarded_packets_per_sec"`
	CPUPerPacketUs         float64 `json:"cpu_us_per_forwarded_packet"`
	LossRatio              float64 `json:"loss_ratio"`
	LatencyP50Ms           float64 `json:"latency_p50_ms"`
	LatencyP99Ms           float64 `json:"latency_p99_ms"`
	JoinToFirstPacketP50Ms float64 `json:"join_to_first_packet_p50_ms"`
	ServerRSSBytes         int64   `json:"server_rss_bytes"`
	Server                 string  `json:"server"` // "troupe" or "naive-pion"
	Step                   int     `json:"step"`   // 1-based
	Rooms                  int     `json:"rooms"`
	Participants           int     `json:"participants"`
	Seconds                float64 `json:"seconds"` // the measured window
	ExpectedPackets        int64   `json:"expected_packets"`
	ReceivedPackets        int64   `json:"received_packets"`
	LatencyMaxMs           float64 `json:"latency_max_ms"`
	// Path latency ends when the datagram reached the subscriber's socket
	// (the kernel's receive time on Linux, the socket read's elsewhere)
	// instead of after the subscriber client's own processing: what the
	// server adds plus two loopback hops and the publisher client's send.
	// Zero when not measured.
	PathLatencyP50Ms       float64 `json:"path_latency_p50_ms"`
	PathLatencyP99Ms       float64 `json:"path_latency_p99_ms"`
	PathLatencyMaxMs       float64 `json:"path_latency_max_ms"`
	JoinToFirstPacketP99Ms float64 `json:"join_to_first_packet_p99_ms"`
	Joins                  int     `json:"joins"`          // participants who joined in this step, with tracks to receive
	JoinFailures           int     `json:"join_failures"`  // ... and got no packet in time
	MissingTracks          int     `json:"missing_tracks"` // (participant, track) pairs with no packet in the window
	ServerCPUSeconds       float64 `json:"server_cpu_seconds"`
	PacketsPerSecPerCore   float64 `json:"forwarded_packets_per_sec_per_core"`
	ServerCores            float64 `json:"server_cores"` // CPU seconds per second
	RSSPerParticipantBytes int64   `json:"rss_per_participant_bytes"`
	ClientCPUSeconds       float64 `json:"client_cpu_seconds"`
	ClientCores            float64 `json:"client_cores"`
	WithinLimits           bool    `json:"within_limits"` // loss and p99 under the ramp's limits
	// Reconnects is how many times the clients joined again after losing
	// their connection, and OutageSeconds their time without media,
	// summed: both since the run began (zero with Config.NoReconnect).
	Reconnects    int     `json:"reconnects"`
	OutageSeconds float64 `json:"outage_seconds"`
	// RecordedTracks are the tracks a recording scenario records, and
	// RecordingBytesPerSec what their files grew by per second over the
	// window (the write throughput); zero for a scenario that does not
	// record.
	RecordedTracks       int     `json:"recorded_tracks"`
	RecordingBytesPerSec float64 `json:"recording_bytes_per_sec"`
	// Classes are the simulcast scenario's subscriber classes, one each
	// (absent in the other scenarios). In that scenario the packets
	// above include the camera's; the subscribers of the capped classes
	// count in the packets received (and so the CPU per packet), not in
	// the loss and latency, which are their links' and shown by class.
	Classes []ClassStep `json:"classes,omitempty"`
}

// xValue is the chart's x: subscribers, or participants for scenarios
// without receive-only subscribers.
func (s Step) xValue() int {
	if s.Subscribers > 0 {
		return s.Subscribers
	}
	return s.Participants
}
