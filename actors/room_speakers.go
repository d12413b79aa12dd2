package actors

// This file owns the room's active speakers: who is speaking now, loudest
// first, sent to every member when that order changes. The levels come
// from the members' audio tracks, metered by their forwarders on the
// read loops (rtc.Track.AudioLevel); the room samples them on a timer of
// its own, never per packet, and only while a member publishes audio.

import (
	"cmp"
	"math"
	"slices"
	"time"

	"github.com/troupe-media/troupe/internal/clock"
	"github.com/troupe-media/troupe/rtc"
)

// SpeakerInterval is how often a room samples its members' audio levels:
// the most often it sends the list of active speakers.
const SpeakerInterval = 250 * time.Millisecond

// The rule of speaking: a member starts when the level of its loudest
// audio track, as its forwarder averages it, reaches speakerOnDBov, and
// stops when the level falls below speakerOffDBov; the gap keeps a voice
// near the line from flapping. A track whose packets set the voice
// activity bit must also have it on at least minVoice of them.
const (
	speakerOnDBov  = 50
	speakerOffDBov = 55
	minVoice       = 0.5
)

// Speaker is a member speaking now. Level is on the scale of the
// browser's RTCRtpSynchronizationSource.audioLevel: 0 to 1, linear, 1
// for the loudest.
type Speaker struct {
	ParticipantID ParticipantID
	Identity      string
	Level         float64
}

// SignalSpeakers is the room's active speakers, loudest first (none when
// nobody speaks), sent to every member when their order changes.
type SignalSpeakers struct {
	Speakers []Speaker
}

func (SignalSpeakers) isSignal() {}

// speakerTick is the room's sampling timer firing; timer tells a tick of
// the armed timer from one a stopped or earlier incarnation left behind.
type speakerTick struct{ timer *speakerTimer }

type speakerTimer struct{ clock.Timer }

// speakers is the room's state of its active speakers.
type speakers struct {
	timer *speakerTimer // nil while not sampling
	// list is the active speakers as last sampled; its order is the one
	// last sent.
	list []Speaker
	// updates is each audio track's count of metered packets at the last
	// sample: a track whose count has not moved since sends no level.
	updates map[*rtc.Track]uint32
}

// speakersOn reports whether the room can know its speakers: its media
// engine negotiates the audio level.
func (a *roomActor) speakersOn() bool {
	return a.deps.cfg.Media != nil && a.deps.cfg.Media.AudioLevels()
}

// publishes reports whether a member publishes a track of kind.
func (a *roomActor) publishes(kind string) bool {
	for _, m := range a.members {
		for _, t := range m.tracks {
			if t.info.Kind == kind {
				return true
			}
		}
	}
	return false
}

const audioKind = "audio"

// armSpeakers starts sampling, unless it runs already, the room cannot
// know its speakers, or nobody publishes audio.
func (a *roomActor) armSpeakers() {
	if a.speakers.timer != nil || !a.speakersOn() || !a.publishes(audioKind) {
		return
	}
	t := &speakerTimer{}
	msg := &speakerTick{timer: t}
	self, root := a.self, a.deps.system.Root
	t.Timer = a.deps.cfg.Clock.AfterFunc(SpeakerInterval, func() { root.Send(self, msg) })
	a.speakers.timer = t
}

// stopSpeakers stops sampling; a tick already sent is ignored.
func (a *roomActor) stopSpeakers() {
	if t := a.speakers.timer; t != nil {
		t.Stop()
		a.speakers.timer = nil
	}
}

// speakerTick samples the levels, tells everyone when the order of the
// speakers changed, and samples again while anyone publishes audio.
func (a *roomActor) speakerTick(m *speakerTick) {
	if m.timer != a.speakers.timer {
		return
	}
	a.speakers.timer = nil
	next := a.sampleSpeakers()
	if !sameOrder(a.speakers.list, next) {
		a.broadcast("", SignalSpeakers{Speakers: slices.Clone(next)})
		a.deps.metrics.speakerChanges.Inc()
	}
	a.speakers.list = next
	a.armSpeakers()
}

// sampleSpeakers reads every member's audio tracks and returns who
// speaks, loudest first (members of the same level in join order).
func (a *roomActor) sampleSpeakers() []Speaker {
	seen := make(map[*rtc.Track]uint32, len(a.speakers.updates))
	type candidate struct {
		sp   Speaker
		dBov float64
	}
	var out []candidate
	for _, m := range a.memberList() {
		loudest, fresh := 127.0, false
		for _, t := range m.tracks {
			if t.info.Kind != audioKind {
				continue
			}
			l := t.src.AudioLevel()
			last, known := a.speakers.updates[t.src]
			seen[t.src] = l.Updates
			if t.info.Muted || (known && l.Updates == last) || l.Updates == 0 {
				continue // nothing came since the last sample
			}
			if l.VoiceKnown && l.Voice < minVoice {
				continue
			}
			fresh = true
			loudest = min(loudest, l.DBov)
		}
		limit := float64(speakerOnDBov)
		if a.isSpeaker(m.info.ID) {
			limit = speakerOffDBov
		}
		if fresh && loudest <= limit {
			level := math.Round(rtc.AudioLevel{DBov: loudest}.Linear()*1e4) / 1e4
			out = append(out, candidate{sp: Speaker{ParticipantID: m.info.ID, Identity: m.info.Identity, Level: level}, dBov: loudest})
		}
	}
	a.speakers.updates = seen
	slices.SortStableFunc(out, func(x, y candidate) int { return cmp.Compare(x.dBov, y.dBov) })
	list := make([]Speaker, len(out))
	for i, c := range out {
		list[i] = c.sp
	}
	return list
}

// isSpeaker reports whether id was speaking at the last sample.
func (a *roomActor) isSpeaker(id ParticipantID) bool {
	return slices.ContainsFunc(a.speakers.list, func(s Speaker) bool { return s.ParticipantID == id })
}

// speakerLevel returns id's level at the last sample, and whether it was
// speaking.
func (a *roomActor) speakerLevel(id ParticipantID) (float64, bool) {
	for _, s := range a.speakers.list {
		if s.ParticipantID == id {
			return s.Level, true
		}
	}
	return 0, false
}

// currentSpeakers returns the active speakers as last sampled, a copy.
func (a *roomActor) currentSpeakers() []Speaker { return slices.Clone(a.speakers.list) }

// sameOrder reports whether two lists name the same members in the same
// order, whatever their levels.
func sameOrder(a, b []Speaker) bool {
	return slices.EqualFunc(a, b, func(x, y Speaker) bool { return x.ParticipantID == y.ParticipantID })
}
