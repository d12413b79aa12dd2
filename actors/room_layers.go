package actors

// This file keeps the members' view of simulcast tracks current. A
// track's layers are seen after it is published: its first layer comes
// alone, the others follow, and each layer's size is known only once a
// keyframe of it arrived. So the room looks at its layered tracks on a
// timer of its own, while a member publishes video, and tells every
// member of a change with SignalTrackUpdated. Bitrates move all the time:
// they ride along with a change but are not one, except a layer's
// bitrate being first measured or falling to nothing (the REST list has
// the current figure).

import (
	"fmt"
	"strings"
	"time"

	"github.com/troupe-media/troupe/internal/clock"
)

// LayerCheckInterval is how often a room looks at its members' simulcast
// tracks for changes of their layers: the most often it sends a track's
// track-updated.
const LayerCheckInterval = time.Second

// SignalTrackUpdated describes a track again after its layers changed: a
// layer came, its size was read or changed, it stopped or started
// arriving, or its bitrate was first measured or fell to nothing.
type SignalTrackUpdated struct {
	ParticipantID ParticipantID
	Track         TrackInfo
}

func (SignalTrackUpdated) isSignal() {}

// layerTick is the room's layer check timer firing; timer tells a tick
// of the armed timer from one a stopped or earlier incarnation left
// behind.
type layerTick struct{ timer *layerTimer }

type layerTimer struct{ clock.Timer }

// videoKind is the only kind of track with layers.
const videoKind = "video"

// armLayerChecks starts looking at the layers, unless that runs already
// or nobody publishes video.
func (a *roomActor) armLayerChecks() {
	if a.layerTimer != nil || !a.publishes(videoKind) {
		return
	}
	t := &layerTimer{}
	msg := &layerTick{timer: t}
	self, root := a.self, a.deps.system.Root
	t.Timer = a.deps.cfg.Clock.AfterFunc(LayerCheckInterval, func() { root.Send(self, msg) })
	a.layerTimer = t
}

// stopLayerChecks stops looking at the layers; a tick already sent is
// ignored.
func (a *roomActor) stopLayerChecks() {
	if t := a.layerTimer; t != nil {
		t.Stop()
		a.layerTimer = nil
	}
}

// layerTick tells every member of each video track whose layers changed
// since it was last described, and looks again while anyone publishes
// video.
func (a *roomActor) layerTick(m *layerTick) {
	if m.timer != a.layerTimer {
		return
	}
	a.layerTimer = nil
	for _, mb := range a.memberList() {
		for _, t := range mb.tracks {
			if t.info.Kind != videoKind {
				continue
			}
			info := t.snapshot()
			if key := layersKey(info.Layers); key != t.layersSent {
				t.layersSent = key
				a.broadcast("", SignalTrackUpdated{ParticipantID: mb.info.ID, Track: info})
			}
		}
	}
	a.armLayerChecks()
}

// describe is the track as it is now, for a message to every member:
// what it says of the layers is the base the next change is told from.
func (t *roomTrack) describe() TrackInfo {
	info := t.snapshot()
	t.layersSent = layersKey(info.Layers)
	return info
}

// layersKey is what of layers a change of is worth telling: their rids in
// order, their sizes, whether each arrives and whether it has a measured
// bitrate.
func layersKey(layers []LayerInfo) string {
	var b strings.Builder
	for _, l := range layers {
		fmt.Fprintf(&b, "%q %dx%d %t %t;", l.RID, l.Width, l.Height, l.Active, l.Bitrate > 0)
	}
	return b.String()
}
