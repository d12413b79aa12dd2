package mediaload

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/troupe-media/troupe/bench/client"
	"github.com/troupe-media/troupe/bench/scenarios"
	"github.com/troupe-media/troupe/rtc/rtctest"
)

// ClassStep is what the subscribers of one class (scenarios.Class) got in
// a step of the simulcast scenario. Bitrates are of the camera's RTP
// (headers and payload) as the subscriber's track read it; the cap also
// carries the audio and SRTP's overhead.
type ClassStep struct {
	Class string `json:"class"`
	// Subscribers counts each subscriber once per camera it receives
	// (once, with one publisher).
	Subscribers int `json:"subscribers"`
	Width       int `json:"width,omitempty"` // asked for with track-settings
	Height      int `json:"height,omitempty"`
	// CapKbps is the class's own link rate, 0 for an open link; CutKbps
	// the rate of its cut, 0 for none.
	CapKbps int `json:"cap_kbps"`
	CutKbps int `json:"cut_kbps"`
	// ReceivedKbps* are over the window, across the class's subscribers;
	// CutReceivedKbpsMax is the highest of their rates while cut.
	ReceivedKbpsP50    float64 `json:"received_kbps_p50"`
	ReceivedKbpsMax    float64 `json:"received_kbps_max"`
	CutReceivedKbpsMax float64 `json:"cut_received_kbps_max"`
	// LayerShare is each layer's share of the bytes received, by rid,
	// and Layers names those received, lowest first ("q", "h+f").
	LayerShare map[string]float64 `json:"layer_share"`
	Layers     string             `json:"layers"`
	// EndLayers names the layers its subscribers were on at the end of
	// the window, lowest first.
	EndLayers string `json:"end_layers"`
	// NoVideo is how many of its subscribers got no video in the window
	// (paused, or never started).
	NoVideo int `json:"no_video"`
	// Switches are the layer changes in the window, summed; BadSwitches
	// those whose first packet of the new layer did not begin a keyframe
	// (a delta frame of the new layer, or two layers interleaved), where
	// no packet was lost just before it: a capped link may drop the
	// keyframe's first packet itself. Late packets (retransmissions) make
	// no switch, and a new track's first packet is not judged by the last
	// track's.
	Switches    int `json:"switches"`
	BadSwitches int `json:"bad_switches"`
	// SwitchDown* is from the cut to the first packet of a lower layer
	// while cut, over the subscribers that were above the lowest; NotDown
	// counts those that stayed. SwitchUp* is, over those that went down,
	// from the cut's end to the first packet of the layer each had before
	// the cut (or higher); NotUp counts those that did not get back within
	// the window.
	SwitchDownP50Ms float64 `json:"switch_down_p50_ms"`
	SwitchDownMaxMs float64 `json:"switch_down_max_ms"`
	NotDown         int     `json:"not_down"`
	SwitchUpP50Ms   float64 `json:"switch_up_p50_ms"`
	SwitchUpMaxMs   float64 `json:"switch_up_max_ms"`
	NotUp           int     `json:"not_up"`
	// Pauses and Resumes are the track-paused and track-resumed messages
	// for bandwidth the class got in the window.
	Pauses  int `json:"pauses"`
	Resumes int `json:"resumes"`
	// LossRatio is of the packets the server sent (by the subscriber's
	// RTP sequence numbers, which run on across switches and pauses):
	// on a capped link, mostly the shaper's drops.
	LossRatio    float64 `json:"loss_ratio"`
	LatencyP50Ms float64 `json:"latency_p50_ms"`
	LatencyP99Ms float64 `json:"latency_p99_ms"`
	// Corrupt counts the packets that were not a camera's whole payload.
	Corrupt int `json:"corrupt"`
}

// camSource is a publisher's simulcast camera.
type camSource struct {
	cam  *client.SimulcastCamera
	room int
	from string
}

// classesOf is the scenario's subscriber classes: one open class when it
// names none.
func classesOf(sc scenarios.Scenario) []scenarios.Class {
	if len(sc.Classes) == 0 {
		return []scenarios.Class{{Name: "all"}}
	}
	return sc.Classes
}

// expectsVideo is whether a subscriber of class c should receive a
// camera whose lowest layer sends lowestKbps: not on a link below it.
func expectsVideo(c scenarios.Class, lowestKbps int) bool {
	return c.CapKbps == 0 || c.CapKbps > lowestKbps
}

// classMember is a subscriber's part in the simulcast scenario.
type classMember struct {
	class  int
	shaper *rtctest.Shaper
	// pauses and resumes count the track-paused and track-resumed
	// messages for bandwidth.
	pauses, resumes atomic.Int32
}

// onMessage counts the bandwidth pauses; it runs on the client's reader.
func (m *classMember) onMessage(b []byte) {
	if !bytes.Contains(b, []byte(`"bandwidth"`)) {
		return
	}
	var msg struct {
		Type   string `json:"type"`
		Reason string `json:"reason"`
	}
	if json.Unmarshal(b, &msg) != nil || msg.Reason != "bandwidth" {
		return
	}
	switch msg.Type {
	case "track-paused":
		m.pauses.Add(1)
	case "track-resumed":
		m.resumes.Add(1)
	}
}

// setCap sets the member's link rate in kbps, 0 for an open link.
func (m *classMember) setCap(kbps int) { m.shaper.SetRate(kbps * 1000) }

// layerSample is one camera packet as a subscriber got it, or a probe of
// the link (layer -1).
type layerSample struct {
	at    time.Time
	layer int
	// seq is the RTP sequence number, unwrapped.
	seq      int64
	bytes    int
	latency  time.Duration
	path     time.Duration
	keyStart bool // it begins a keyframe
	// afterGap is whether the packet before it in the stream may have
	// been lost: its sequence number does not follow the highest one read,
	// or it is the first its stream read (a reconnection's stream starts
	// where nothing says what came before). late is whether it came after
	// one numbered higher (a retransmission, or reordered): it was not the
	// stream's next packet, so it says nothing of a switch.
	afterGap, late bool
	// stream numbers the receiver (one per track received) that read it,
	// among those of its camera.
	stream int
}

// seqTracker follows a stream's sequence numbers as they are read.
type seqTracker struct {
	started bool
	last    uint16
	ext, hi int64 // the last one read and the highest, unwrapped
}

// next notes seq, read now, and returns it unwrapped, whether it came
// after a higher one (late) and whether it does not follow the highest
// read so far (gap; true for the stream's first).
func (t *seqTracker) next(seq uint16) (ext int64, late, gap bool) {
	if !t.started {
		t.started, t.last = true, seq
		return t.ext, false, true
	}
	t.ext += int64(int16(seq - t.last))
	t.last = seq
	if t.ext <= t.hi {
		return t.ext, true, false
	}
	gap = t.ext != t.hi+1
	t.hi = t.ext
	return t.ext, false, gap
}

// layerReceiver reads a simulcast camera's track: which layer each packet
// is from, its size and lateness.
type layerReceiver struct {
	track    *webrtc.TrackRemote
	arrivals *rtctest.Arrivals

	mu      sync.Mutex // guards the following
	samples []layerSample
	first   time.Time
	corrupt int
}

func (r *layerReceiver) run() {
	var seqs seqTracker
	for {
		p, _, err := r.track.ReadRTP()
		if err != nil {
			return
		}
		// A probe of the link has the stream's sequence numbers too.
		ext, late, gap := seqs.next(p.SequenceNumber)
		now := time.Now()
		if p.Padding && len(p.Payload) == 0 {
			r.mu.Lock()
			r.samples = append(r.samples, layerSample{at: now, layer: -1, seq: ext})
			r.mu.Unlock()
			continue
		}
		cp, ok := client.ReadCameraPacket(p.Payload)
		r.mu.Lock()
		if !ok {
			r.corrupt++
			r.mu.Unlock()
			continue
		}
		s := layerSample{
			at: now, layer: cp.Layer, seq: ext, bytes: p.MarshalSize(),
			latency: now.Sub(cp.Sent), keyStart: cp.FrameStart && cp.Keyframe, afterGap: gap, late: late,
		}
		if r.arrivals != nil {
			if at, ok := r.arrivals.Lookup(p.SSRC, p.SequenceNumber); ok && !at.Before(cp.Sent) && !at.After(now) {
				s.path = at.Sub(cp.Sent)
			}
		}
		if r.first.IsZero() {
			r.first = now
		}
		r.samples = append(r.samples, s)
		r.mu.Unlock()
	}
}

// drain returns the samples and the count of corrupt packets since the
// last drain.
func (r *layerReceiver) drain() ([]layerSample, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out, corrupt := r.samples, r.corrupt
	r.samples, r.corrupt = nil, 0
	return out, corrupt
}

func (r *layerReceiver) started() (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.first, !r.first.IsZero()
}

// cutTimes is when a class's cut and its end were applied in a window;
// zero when not.
type cutTimes struct{ cut, end time.Time }

// cutEvent is a change of a class's link rate at a time into the window.
type cutEvent struct {
	at    time.Duration
	class int
	kbps  int
	end   bool
}

// cutEvents lists the cuts of the scenario's classes in time order.
func cutEvents(classes []scenarios.Class) []cutEvent {
	var out []cutEvent
	for i, c := range classes {
		if c.Cut == nil {
			continue
		}
		out = append(out, cutEvent{at: c.Cut.At, class: i, kbps: c.Cut.CapKbps})
		if c.Cut.End > 0 {
			out = append(out, cutEvent{at: c.Cut.End, class: i, kbps: c.CapKbps, end: true})
		}
	}
	slices.SortStableFunc(out, func(a, b cutEvent) int { return int(a.at - b.at) })
	return out
}

// subscriberFigures is one subscriber's window.
type subscriberFigures struct {
	kbps, cutKbps      float64
	layerBytes         []int64
	switches, bad      int
	down, up           time.Duration
	wasAbove, wentDown bool
	cameBack           bool
	expected, received int64
	// packets is the camera's packets received; expected and received
	// the sequence numbers of the stream, probes included.
	packets          int64
	corrupt          int
	latencies, paths []time.Duration
	video            bool
	last             int // the layer at the end, -1 for none
}

// analyze sums up one subscriber's samples of the window [t0, t1], in
// arrival order, with its class's cut times.
func analyze(samples []layerSample, layers int, t0, t1 time.Time, ct cutTimes) subscriberFigures {
	f := subscriberFigures{layerBytes: make([]int64, layers), last: -1}
	var bytes, cutBytes int64
	prev, prevStream := -1, 0
	before := -1 // the layer when the cut came
	seqs := map[int64]bool{}
	var lo, hi int64
	for _, s := range samples {
		if s.at.Before(t0) || s.at.After(t1) || s.layer >= layers {
			continue
		}
		if len(seqs) == 0 || s.seq < lo {
			lo = s.seq
		}
		if len(seqs) == 0 || s.seq > hi {
			hi = s.seq
		}
		seqs[s.seq] = true
		if s.layer < 0 {
			continue // a probe
		}
		f.video = true
		f.packets++
		bytes += int64(s.bytes)
		f.layerBytes[s.layer] += int64(s.bytes)
		f.latencies = append(f.latencies, s.latency)
		if s.path > 0 {
			f.paths = append(f.paths, s.path)
		}
		cutting := !ct.cut.IsZero() && !s.at.Before(ct.cut) && (ct.end.IsZero() || s.at.Before(ct.end))
		if cutting {
			cutBytes += int64(s.bytes)
		}
		if s.late {
			continue // not the stream's next packet: it moved nothing
		}
		if !ct.cut.IsZero() && s.at.Before(ct.cut) {
			before = s.layer
		}
		if cutting && before > 0 && !f.wentDown && s.layer < before {
			f.wentDown, f.down = true, s.at.Sub(ct.cut)
		}
		if !ct.end.IsZero() && !s.at.Before(ct.end) && before >= 0 && !f.cameBack && s.layer >= before {
			f.cameBack, f.up = true, s.at.Sub(ct.end)
		}
		if prev >= 0 && s.layer != prev {
			f.switches++
			// Another receiver's packet (a reconnection's track) follows
			// nothing of this one's stream.
			if !s.keyStart && !s.afterGap && s.stream == prevStream {
				f.bad++
			}
		}
		prev, prevStream = s.layer, s.stream
	}
	if len(seqs) > 0 {
		f.expected, f.received = hi-lo+1, int64(len(seqs))
	}
	f.last = prev
	f.wasAbove = before > 0
	if secs := t1.Sub(t0).Seconds(); secs > 0 {
		f.kbps = float64(bytes) * 8 / 1000 / secs
	}
	if !ct.cut.IsZero() {
		end := ct.end
		if end.IsZero() {
			end = t1
		}
		if secs := end.Sub(ct.cut).Seconds(); secs > 0 {
			f.cutKbps = float64(cutBytes) * 8 / 1000 / secs
		}
	}
	return f
}

// classStep sums up the figures of a class's subscribers.
func classStep(c scenarios.Class, rids []string, figs []subscriberFigures, pauses, resumes int) ClassStep {
	cs := ClassStep{
		Class: c.Name, Subscribers: len(figs), Width: c.Width, Height: c.Height, CapKbps: c.CapKbps,
		LayerShare: map[string]float64{}, Pauses: pauses, Resumes: resumes,
	}
	if c.Cut != nil {
		cs.CutKbps = c.Cut.CapKbps
	}
	var kbps []float64
	var downs, ups, lats []time.Duration
	layerBytes := make([]int64, len(rids))
	ending := make([]bool, len(rids))
	var total, expected, received int64
	for _, f := range figs {
		kbps = append(kbps, f.kbps)
		cs.CutReceivedKbpsMax = max(cs.CutReceivedKbpsMax, f.cutKbps)
		if !f.video {
			cs.NoVideo++
		}
		for i, b := range f.layerBytes {
			layerBytes[i] += b
			total += b
		}
		if f.last >= 0 {
			ending[f.last] = true
		}
		cs.Switches += f.switches
		cs.Corrupt += f.corrupt
		cs.BadSwitches += f.bad
		if c.Cut != nil && f.wasAbove {
			if f.wentDown {
				downs = append(downs, f.down)
			} else {
				cs.NotDown++
			}
			// Back up is measured of those that went down.
			if c.Cut.End > 0 && f.wentDown {
				if f.cameBack {
					ups = append(ups, f.up)
				} else {
					cs.NotUp++
				}
			}
		}
		expected += f.expected
		received += f.received
		lats = append(lats, f.latencies...)
	}
	slices.Sort(kbps)
	if len(kbps) > 0 {
		cs.ReceivedKbpsP50, cs.ReceivedKbpsMax = kbps[(len(kbps)-1)/2], kbps[len(kbps)-1]
	}
	for i, b := range layerBytes {
		if b > 0 {
			cs.LayerShare[rids[i]] = float64(b) / float64(total)
		}
	}
	cs.Layers = layerNames(rids, func(i int) bool { return layerBytes[i] > 0 })
	cs.EndLayers = layerNames(rids, func(i int) bool { return ending[i] })
	d, u, l := summarize(downs), summarize(ups), summarize(lats)
	cs.SwitchDownP50Ms, cs.SwitchDownMaxMs = d.P50, d.Max
	cs.SwitchUpP50Ms, cs.SwitchUpMaxMs = u.P50, u.Max
	cs.LatencyP50Ms, cs.LatencyP99Ms = l.P50, l.P99
	cs.LossRatio = lossRatio(expected, received)
	return cs
}

// setClassCap sets the link rate of every subscriber of a class.
func setClassCap(parts []*participant, class, kbps int) {
	for _, p := range parts {
		if p.member != nil && p.member.class == class {
			p.member.setCap(kbps)
		}
	}
}

// pauseCounts reads each class member's bandwidth pauses and resumes so
// far.
func pauseCounts(parts []*participant) map[*participant][2]int {
	out := map[*participant][2]int{}
	for _, p := range parts {
		if p.member != nil {
			out[p] = [2]int{int(p.member.pauses.Load()), int(p.member.resumes.Load())}
		}
	}
	return out
}

// simulcastWindow sums up the cameras the participants received in the
// window [t0, t1]: it adds their packets to s (a capped class's as
// expected as received: its losses are its link's, reported by class),
// and s.Classes. It returns the figures of the subscribers on open links,
// whose latencies count in the step's.
func (r *runner) simulcastWindow(parts []*participant, t0, t1 time.Time, cuts []cutTimes, pauses0, pauses1 map[*participant][2]int, s *Step) []subscriberFigures {
	sc := r.cfg.Scenario
	classes := classesOf(sc)
	var rids []string
	for _, l := range sc.Simulcast.Layers {
		rids = append(rids, l.RID)
	}
	byClass := make([][]subscriberFigures, len(classes))
	var all []subscriberFigures
	for _, p := range parts {
		// By camera: a reconnection's receiver of a camera follows the
		// last one.
		samples := map[string][]layerSample{}
		corrupt := map[string]int{}
		for i, rcv := range p.layerReceivers() {
			r.mu.Lock()
			from := r.firstIDLocked(rcv.track.StreamID())
			r.mu.Unlock()
			got, bad := rcv.drain()
			for j := range got {
				got[j].stream = i
			}
			samples[from] = append(samples[from], got...)
			corrupt[from] += bad
		}
		var ct cutTimes
		class := scenarios.Class{}
		if p.member != nil {
			class, ct = classes[p.member.class], cuts[p.member.class]
		}
		r.mu.Lock()
		wanted := r.camerasFor(p)
		r.mu.Unlock()
		if !expectsVideo(class, sc.Simulcast.Layers[0].BitrateKbps) {
			wanted = 0
		}
		for from, cam := range samples {
			slices.SortStableFunc(cam, func(a, b layerSample) int { return a.at.Compare(b.at) })
			f := analyze(cam, len(rids), t0, t1, ct)
			f.corrupt = corrupt[from]
			if !class.Capped() {
				all = append(all, f)
			}
			s.ReceivedPackets += f.packets
			if class.Capped() {
				s.ExpectedPackets += f.packets
			} else {
				s.ExpectedPackets += f.packets + max(f.expected-f.received, 0)
			}
			if f.video {
				wanted--
			}
			if p.member != nil {
				byClass[p.member.class] = append(byClass[p.member.class], f)
			}
		}
		// A class member that got no camera in the window still counts
		// in its class: as one without video.
		if p.member != nil && len(samples) == 0 {
			byClass[p.member.class] = append(byClass[p.member.class], subscriberFigures{layerBytes: make([]int64, len(rids))})
		}
		s.MissingTracks += max(wanted, 0)
	}
	for i, c := range classes {
		if len(byClass[i]) == 0 {
			continue
		}
		pauses, resumes := 0, 0
		for _, p := range parts {
			if p.member != nil && p.member.class == i {
				pauses += pauses1[p][0] - pauses0[p][0]
				resumes += pauses1[p][1] - pauses0[p][1]
			}
		}
		s.Classes = append(s.Classes, classStep(c, rids, byClass[i], pauses, resumes))
	}
	return all
}

// camerasFor is how many cameras p should receive, if its link carries
// them: the other publishers' of its room.
func (r *runner) camerasFor(p *participant) int {
	n := 0
	for _, c := range r.cams {
		if c.room == p.room && c.from != p.id {
			n++
		}
	}
	return n
}

// layerNames joins the rids of the layers that have, lowest first: "q",
// "h+f"; "-" for none.
func layerNames(rids []string, has func(int) bool) string {
	var names []string
	for i, rid := range rids {
		if has(i) {
			names = append(names, rid)
		}
	}
	if len(names) == 0 {
		return "-"
	}
	return strings.Join(names, "+")
}
