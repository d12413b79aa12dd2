package actors

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/troupe-media/troupe/persistence/recordpb"
	"github.com/troupe-media/troupe/rtc"
	"github.com/troupe-media/troupe/rtc/recorder"
)

type metrics struct {
	// recorder sums the recordings' writers; recordings counts the
	// recordings that ended, by status and reason; recordingParts the
	// recordings this node went on with after their node was lost.
	recorder       *recorder.Metrics
	recordings     *prometheus.CounterVec
	recordingParts prometheus.Counter

	liveCount    atomic.Int64
	liveGauge    prometheus.Gauge
	restarts     prometheus.Counter
	failures     prometheus.Counter
	passivations prometheus.Counter
	takeovers    prometheus.Counter
	ownerHints   prometheus.Counter
	participants prometheus.Gauge
	// participantCount is participants, readable without a scrape.
	participantCount atomic.Int64
	leaves           *prometheus.CounterVec
	joinsRefused     *prometheus.CounterVec
	// speakerChanges counts the changes of rooms' active speakers sent.
	speakerChanges prometheus.Counter
	// data counts the rooms' data messages.
	data *rtc.DataMetrics
}

// newMetrics makes the rooms' metrics and registers them with reg (none if
// nil); activeRooms counts the rooms with a session in progress.
func newMetrics(reg prometheus.Registerer, activeRooms func() float64) (*metrics, error) {
	m := &metrics{
		liveGauge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "troupe_room_actors",
			Help: "Room actors in memory on this node.",
		}),
		restarts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "troupe_room_actor_restarts_total",
			Help: "Room actors restarted by supervision after a panic.",
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "troupe_room_failures_total",
			Help: "Room actors stopped for failing (too often, or while stopping); their members left with room-failed.",
		}),
		passivations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "troupe_room_actor_passivations_total",
			Help: "Idle room actors stopped to free memory.",
		}),
		takeovers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "troupe_room_takeovers_total",
			Help: "Rooms this cluster node took over from a lost node, closing the members that node left (leave reason node-lost).",
		}),
		ownerHints: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "troupe_room_owner_hints_total",
			Help: "Requests for a room that this cluster node heard another node owns, refused for forwarding without asking etcd.",
		}),
		participants: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "troupe_participants",
			Help: "Participants connected to rooms on this node.",
		}),
		leaves: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "troupe_participant_leaves_total",
			Help: "Participants that left their room, by reason.",
		}, []string{"reason"}),
		joinsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "troupe_joins_refused_total",
			Help: "Joins (signaling, WHIP, WHEP) refused by this node, by reason: room_not_found, room_ended, room_locked, room_full, outside_join_window, forbidden, draining, room_failed, unavailable, or error.",
		}, []string{"reason"}),
		speakerChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "troupe_active_speaker_changes_total",
			Help: "Changes of a room's active speakers (who speaks, in which order) sent to its members, each as one active-speakers message to every member; at most four a second per room.",
		}),
		recorder: recorder.NewMetrics(),
		recordings: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "troupe_recordings_ended_total",
			Help: "Recordings that ended on this node, by status (completed, failed) and end reason.",
		}, []string{"status", "reason"}),
		recordingParts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "troupe_recording_parts_continued_total",
			Help: "Recordings this node went on with, as their next part, after taking over a room whose node was lost while it recorded.",
		}),
		data: rtc.NewDataMetrics(),
	}
	m.initLabels()
	active := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "troupe_rooms_active",
		Help: "Rooms on this node with a session in progress.",
	}, activeRooms)
	if reg != nil {
		for _, c := range []prometheus.Collector{m.liveGauge, m.restarts, m.failures, m.passivations, m.takeovers, m.ownerHints, m.participants, m.leaves, m.joinsRefused,
			m.speakerChanges, m.recorder, m.recordings, m.recordingParts, m.data, active} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("actors: register metrics: %w", err)
			}
		}
	}
	return m, nil
}

// initLabels makes the series an alert looks for read 0 from the start,
// rather than be absent until their first event.
func (m *metrics) initLabels() {
	for _, r := range leaveReasons {
		m.leaves.WithLabelValues(string(r))
	}
	for _, r := range refusalReasons {
		m.joinsRefused.WithLabelValues(r)
	}
	for _, r := range []string{RecordingStoppedViaAPI, RecordingSessionEnded, RecordingMaxDuration, RecordingServerShutdown, RecordingRoomFailed} {
		m.recordings.WithLabelValues(RecordingStatusName(recordpb.RecordingStatus_RECORDING_STATUS_COMPLETED), r)
	}
	m.recordings.WithLabelValues(RecordingStatusName(recordpb.RecordingStatus_RECORDING_STATUS_FAILED), RecordingDiskFull)
}

// refusalReasons are the words refusalReason gives.
var refusalReasons = []string{"room_not_found", "room_ended", "room_locked", "room_full", "too_many_viewers", "outside_join_window",
	"forbidden", "draining", "room_failed", "unavailable", "error"}

func (m *metrics) participant(delta int64) {
	m.participantCount.Add(delta)
	m.participants.Add(float64(delta))
}

func (m *metrics) live(delta int64) {
	m.liveCount.Add(delta)
	m.liveGauge.Add(float64(delta))
}

// joinRefused counts a join refused with err. A join for a room another
// node owns is not refused: it is forwarded there, and counted there.
func (m *metrics) joinRefused(err error) {
	var notOwner *NotOwnerError
	if errors.As(err, &notOwner) {
		return
	}
	m.joinsRefused.WithLabelValues(refusalReason(err)).Inc()
}

// refusalReason names the reason of a refused join, as the API's error
// codes do.
func refusalReason(err error) string {
	switch {
	case errors.Is(err, ErrRoomNotFound):
		return "room_not_found"
	case errors.Is(err, ErrRoomEnded):
		return "room_ended"
	case errors.Is(err, ErrRoomLocked):
		return "room_locked"
	case errors.Is(err, ErrRoomFull):
		return "room_full"
	case errors.Is(err, ErrTooManyViewers):
		return "too_many_viewers"
	case errors.Is(err, ErrOutsideJoinWindow):
		return "outside_join_window"
	case errors.Is(err, ErrForbidden):
		return "forbidden"
	case errors.Is(err, ErrDraining):
		return "draining"
	case errors.Is(err, ErrRoomFailed):
		return "room_failed"
	case errors.Is(err, ErrUnavailable):
		return "unavailable"
	}
	return "error"
}

// recordingEnded counts rec, whose status is final, among the recordings
// ended on this node: every way a recording ends (stopped, failed to
// start or to go on as a next part, closed as interrupted) comes here.
func (m *metrics) recordingEnded(rec *recordpb.Recording) {
	m.recordings.WithLabelValues(RecordingStatusName(rec.Status), rec.EndReason).Inc()
}
