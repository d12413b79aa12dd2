package actors

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/troupe-media/troupe/actors/actorpb"
	"github.com/troupe-media/troupe/actors/webhook"
	"github.com/troupe-media/troupe/internal/clock"
	"github.com/troupe-media/troupe/persistence"
	"github.com/troupe-media/troupe/persistence/recordpb"
	"github.com/troupe-media/troupe/rtc"
)

// Store is what the actors need of the store of record: the part of
// persistence.Backend they call, whose documentation states the contracts.
// Every Backend is one (the Pebble store on a single node), so the actors
// run on whichever store the server opens.
type Store interface {
	// GetRoom loads a room actor's record when it starts.
	GetRoom(ctx context.Context, id string) (*recordpb.Room, error)
	// ListRooms answers Rooms.List without waking any room actor.
	ListRooms(ctx context.Context, q persistence.RoomQuery) (persistence.RoomPage, error)
	// Apply commits a room's change, its session records and its webhook
	// events in one synced batch.
	Apply(ctx context.Context, w persistence.Writes) error
	// GetSession reads a session for the sessions API and for a room that
	// resumes its session.
	GetSession(ctx context.Context, id string) (*recordpb.Session, error)
	// ListSessions answers Rooms.Sessions.
	ListSessions(ctx context.Context, q persistence.SessionQuery) (persistence.SessionPage, error)
	// InProgressSessions finds, at start-up, the sessions a crash left open.
	InProgressSessions(ctx context.Context) ([]*recordpb.Session, error)
	// ListSessionMembers reads a session's participant history: for the
	// API, and to close the members a crash took.
	ListSessionMembers(ctx context.Context, sessionID string) ([]*recordpb.SessionMember, error)
	// ListChat reads a session's chat: for the API, and the recent
	// messages a joiner gets.
	ListChat(ctx context.Context, q persistence.ChatQuery) (persistence.ChatPage, error)
	// GetRecording, ListRecordings answer the recordings API;
	// OpenRecordings finds, at start-up, the recordings a crash left open.
	GetRecording(ctx context.Context, id string) (*recordpb.Recording, error)
	ListRecordings(ctx context.Context, q persistence.RecordingQuery) (persistence.RecordingPage, error)
	OpenRecordings(ctx context.Context) ([]*recordpb.Recording, error)
	// ListWebhookDeliveries answers Rooms.WebhookDeliveries.
	ListWebhookDeliveries(ctx context.Context, q persistence.DeliveryQuery) (persistence.DeliveryPage, error)
}

var _ Store = persistence.Backend(nil)

// Config configures Rooms. The zero value of every field but Store is valid.
type Config struct {
	// Store is the store of record: rooms, sessions and their history,
	// the webhook outbox. Required.
	Store Store
	// RequestTimeout bounds each request to a room actor, and each store call
	// the actor makes. A room that crashes on a message never answers it, so
	// this is how long a caller waits before it gets ErrUnavailable.
	// Zero means 2s.
	RequestTimeout time.Duration
	// PassivateAfter is how long a room actor may sit idle before it is
	// stopped; the next request starts it again from the store. Zero means 2m.
	PassivateAfter time.Duration
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// Registerer receives the actor metrics; nil registers nowhere.
	Registerer prometheus.Registerer
	// Clock gives the time and runs the rooms' timers; nil means
	// clock.System. Tests pass one they can advance.
	Clock clock.Clock
	// Media makes the participants' peer connections. Nil disables joining
	// (the REST API still works).
	Media *rtc.Engine
	// MediaMetrics, when set, counts forwarded media.
	MediaMetrics *rtc.Metrics
	// Webhooks are the server's own destinations, besides each room's.
	// Deliveries without a secret of their own are signed with the API
	// secret by the deliverer; it never enters the outbox.
	Webhooks []webhook.Destination
	// OnEvents is called after webhook events were queued (the deliverer
	// wakes up); nil: nobody is told.
	OnEvents func()
	// CheckWebhook vets a room's webhook endpoint at create and update
	// (the private-address rule); nil accepts any endpoint that validates.
	CheckWebhook func(ctx context.Context, endpoint string) error
	// Owners is the cluster's room ownership; nil on a single node. With
	// it, a room's actor starts only on the node that claimed the room.
	Owners Owners
	// Recording configures recording; its zero value records nothing.
	Recording RecordingConfig
	// MaxViewersPerIdentity caps the WHEP viewers one identity (one join
	// token's sub) may have in a room at once: WHEP joins never replace
	// one another, so without a cap one token could fill a room. Zero
	// means DefaultMaxViewersPerIdentity.
	MaxViewersPerIdentity int
	// Chat bounds each member's chat rate and each session's chat.
	Chat ChatConfig
}

// OfferTimeout bounds a request whose answer waits for the server's ICE
// candidates (a WHIP or WHEP offer, an ICE restart), given the request
// timeout (Config.RequestTimeout) that bounds the rest of its work: the
// peer waits up to rtc.GatherTimeout for its candidates, and a gathering
// slow but within that wait must not be refused as an actor that did not
// answer.
func OfferTimeout(requestTimeout time.Duration) time.Duration {
	return requestTimeout + rtc.GatherTimeout
}

// DefaultMaxViewersPerIdentity is Config.MaxViewersPerIdentity's default: a
// few tabs or devices of one viewer.
const DefaultMaxViewersPerIdentity = 4

func (c *Config) ensureDefaults() error {
	if c.Store == nil {
		return errors.New("actors: Config.Store is required")
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 2 * time.Second
	}
	if c.PassivateAfter <= 0 {
		c.PassivateAfter = 2 * time.Minute
	}
	if c.MaxViewersPerIdentity < 0 {
		return errors.New("actors: Config.MaxViewersPerIdentity must not be negative")
	}
	if c.MaxViewersPerIdentity == 0 {
		c.MaxViewersPerIdentity = DefaultMaxViewersPerIdentity
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Clock == nil {
		c.Clock = clock.System{}
	}
	return c.Chat.ensureDefaults()
}

// RoomInfo is a room record with what only the live actor knows.
type RoomInfo struct {
	Room             *recordpb.Room
	ParticipantCount int
	// Failure is the room's last failure stop, while it is remembered;
	// nil if none. Failed: the room is in its cool-down now.
	Failure *RoomFailure
	Failed  bool
}

// ListQuery selects rooms for List.
type ListQuery struct {
	// Status filters by the stored status, leaving out the rooms held
	// failed; ROOM_STATUS_UNSPECIFIED lists every room.
	Status recordpb.RoomStatus
	// Failed lists only the rooms held failed, and ignores Status.
	Failed        bool
	Limit, Offset int
}

// Rooms addresses room actors by room id: a registry actor spawns them and
// finds them on this node. In a cluster, a call for a room that another node
// owns is forwarded to that node at the HTTP edge, so Rooms is the same in
// both modes.
type Rooms struct {
	cfg      Config
	system   *actor.ActorSystem
	registry *actor.PID
	metrics  *metrics
	closed   atomic.Bool
	// closing ends when Close begins: the claims in flight (claim) give
	// up then, since no room starts on a node that is going away; claims
	// counts them, for Close to wait.
	closing    context.Context
	stopClaims context.CancelFunc
	claims     sync.WaitGroup
	// draining refuses new rooms and joins (see Drain).
	draining atomic.Bool
	// leaseLost: DropAll stopped this node's rooms when it lost its lease,
	// and with them the recordings it wrote (closeOrphanRecordings).
	leaseLost atomic.Bool
	// snapshots holds each live room actor's published state (*RoomInfo)
	// by its RoomID,
	// so that reads need no message: the room actor stays the only writer.
	snapshots sync.Map
	// participantGuardian supervises every participant actor.
	participantGuardian actor.SupervisorStrategy
	// failures holds the last failure stop of each room (*RoomFailure) by
	// its RoomID: the registry writes it, requests read it.
	failures sync.Map
	// timerGen numbers every timer a room arms.
	timerGen atomic.Uint64
	// writing holds the writer (*recordingMedia) of each recording being
	// written on this node by its id, for its files' listing while it
	// runs (recording_media.go).
	writing sync.Map
}

// NewRooms starts the actor system and the room registry.
func NewRooms(cfg Config) (*Rooms, error) {
	if err := cfg.ensureDefaults(); err != nil {
		return nil, err
	}
	r := &Rooms{cfg: cfg}
	m, err := newMetrics(cfg.Registerer, r.activeRooms)
	if err != nil {
		return nil, err
	}
	actorLog := slog.New(minLevelHandler{cfg.Logger.Handler(), slog.LevelWarn}).With("component", "protoactor")
	r.system = actor.NewActorSystem(
		actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return actorLog }),
		actor.WithDeadLetterRequestLogging(false),
	)
	r.metrics = m
	r.closing, r.stopClaims = context.WithCancel(context.Background())
	system := r.system
	// Participants are supervised beside their rooms, by a guardian that
	// stops one that fails (see the package doc).
	r.participantGuardian = participantSupervisor(cfg.Logger)
	// The registry supervises the rooms itself (HandleFailure).
	props := actor.PropsFromProducer(func() actor.Actor { return newRegistry(r) })
	pid, err := system.Root.SpawnNamed(props, "rooms")
	if err != nil {
		system.Shutdown()
		return nil, fmt.Errorf("actors: spawn registry: %w", err)
	}
	r.registry = pid
	// Sessions a crash left open are closed before any room can start a
	// new one. Not in a cluster: the sessions in progress there are mostly
	// those of live rooms on other nodes, which this node may not write;
	// those no node owns are taken over instead (TakeOver).
	if cfg.Owners != nil {
		r.settleLostParts()
		return r, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), startupStoreTimeout)
	defer cancel()
	if err := r.closeInterruptedRecordings(ctx); err != nil {
		r.Close(ctx)
		return nil, err
	}
	if err := r.closeInterruptedSessions(ctx); err != nil {
		r.Close(ctx)
		return nil, err
	}
	return r, nil
}

// errShuttingDown answers the requests that come once Close has begun.
var errShuttingDown = fmt.Errorf("%w: shutting down", ErrUnavailable)

// Close stops every room actor (each finishes the message it is on) and the
// actor system. Requests after Close fail with ErrUnavailable, as do those
// waiting for a room to start (a claim, a passivation): no room actor
// starts once Close has begun.
func (r *Rooms) Close(ctx context.Context) error {
	if r.closed.Swap(true) {
		return nil
	}
	r.stopClaims()
	done := make(chan error, 1)
	go func() {
		err := r.system.Root.StopFuture(r.registry).Wait()
		r.claims.Wait() // each gives up at once (closing)
		done <- err
	}()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	r.system.Shutdown()
	if err != nil {
		return fmt.Errorf("actors: stop rooms: %w", err)
	}
	return nil
}

// dropAll asks the registry to stop every room actor; dropped answers it.
type (
	dropAll struct{}
	dropped struct{}
)

// DropAll stops every room actor of this node at once, each telling its
// members that the server is shutting down (they reconnect), and returns
// once the stops are under way. A cluster node calls it when it loses its
// lease: another node may own its rooms from then on. A later request for
// a room starts it afresh, claimed again.
func (r *Rooms) DropAll(ctx context.Context) error {
	if r.closed.Load() {
		return ErrUnavailable
	}
	r.leaseLost.Store(true)
	timeout := r.cfg.RequestTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	if _, err := r.system.Root.RequestFuture(r.registry, &dropAll{}, timeout).Result(); err != nil {
		return fmt.Errorf("actors: drop rooms: %w", err)
	}
	return nil
}

// activeRooms counts the rooms of this node with a session in progress, as
// their actors last published them.
func (r *Rooms) activeRooms() float64 {
	n := 0
	r.snapshots.Range(func(_, v any) bool {
		if v.(*RoomInfo).Room.GetActiveSessionId() != "" {
			n++
		}
		return true
	})
	return float64(n)
}

// Live returns the number of room actors in memory.
func (r *Rooms) Live() int { return int(r.metrics.liveCount.Load()) }

// LiveParticipants returns the number of participants in the rooms of this
// node.
func (r *Rooms) LiveParticipants() int { return int(r.metrics.participantCount.Load()) }

// Request sends msg to the actor of roomID and returns its reply. It fails
// with ErrUnavailable if the actor does not answer within the request
// timeout (or ctx's deadline, if sooner).
func (r *Rooms) Request(ctx context.Context, roomID RoomID, msg proto.Message) (proto.Message, error) {
	return requestAs[proto.Message](ctx, r, roomID, msg)
}

// requestAs is request for a reply of type T.
func requestAs[T any](ctx context.Context, r *Rooms, roomID RoomID, msg any) (T, error) {
	var zero T
	res, err := r.request(ctx, roomID, msg)
	if err != nil {
		return zero, err
	}
	reply, ok := res.(T)
	if !ok {
		return zero, fmt.Errorf("actors: unexpected reply %T", res)
	}
	return reply, nil
}

func (r *Rooms) request(ctx context.Context, roomID RoomID, msg any) (any, error) {
	if r.closed.Load() {
		return nil, errShuttingDown
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := r.refuseFailed(roomID, msg); err != nil {
		return nil, err
	}
	timeout := r.cfg.RequestTimeout
	if dl, ok := ctx.Deadline(); ok {
		if d := time.Until(dl); d < timeout {
			timeout = d
		}
	}
	if timeout <= 0 {
		return nil, context.DeadlineExceeded
	}
	reply, err := r.system.Root.RequestFuture(r.registry, &routed{roomID: roomID, msg: msg, forwarded: IsForwarded(ctx)}, timeout).Result()
	switch {
	case err == nil:
		if ref, ok := reply.(*refused); ok {
			return nil, ref.err
		}
		return reply, nil
	case errors.Is(err, actor.ErrTimeout):
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w: room %s did not answer within %v", ErrUnavailable, roomID, timeout)
	default:
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
}

func (r *Rooms) roomRequest(ctx context.Context, id RoomID, msg proto.Message) (*RoomInfo, error) {
	if err := ValidateRoomID(id); err != nil {
		// Nothing can be stored under an invalid id: don't wake an actor for it.
		return nil, ErrRoomNotFound
	}
	rr, err := requestAs[*actorpb.RoomReply](ctx, r, id, msg)
	if err != nil {
		return nil, err
	}
	if err := errorFromPB(rr.Error); err != nil {
		return nil, err
	}
	return &RoomInfo{Room: rr.Room, ParticipantCount: int(rr.ParticipantCount)}, nil
}

// Create creates room id from spec, applied over the defaults. Fails with
// ErrRoomExists if the id is taken, or a *ValidationError.
func (r *Rooms) Create(ctx context.Context, id RoomID, spec *actorpb.RoomPatch) (*RoomInfo, error) {
	if err := ValidateRoomID(id); err != nil {
		return nil, err
	}
	if err := r.checkWebhook(ctx, spec.GetWebhook()); err != nil {
		return nil, err
	}
	return r.roomRequest(ctx, id, &actorpb.CreateRoom{Spec: spec})
}

// checkWebhook vets an endpoint here, in the caller's goroutine: it may
// resolve a host name, which a room actor must not wait for.
func (r *Rooms) checkWebhook(ctx context.Context, h *recordpb.Webhook) error {
	if h == nil || r.cfg.CheckWebhook == nil {
		return nil
	}
	if err := r.cfg.CheckWebhook(ctx, h.Endpoint); err != nil {
		return invalid("webhook.endpoint", "%v", err)
	}
	return nil
}

// Get returns room id. The result is shared with other readers: do not
// change it. A live room answers from the state its actor published
// before its last reply, without a message; any other through its actor.
func (r *Rooms) Get(ctx context.Context, id RoomID) (*RoomInfo, error) {
	if r.closed.Load() {
		return nil, errShuttingDown
	}
	if v, ok := r.snapshots.Load(id); ok {
		return r.withFailure(v.(*RoomInfo)), nil
	}
	if r.refuseFailed(id, &actorpb.GetRoom{}) != nil {
		// A room held failed is not started to answer: its record is read
		// from the store.
		return r.stored(ctx, id)
	}
	info, err := r.roomRequest(ctx, id, &actorpb.GetRoom{})
	if err != nil {
		return nil, err
	}
	return r.withFailure(info), nil
}

// stored returns room id as the store has it, without its actor.
func (r *Rooms) stored(ctx context.Context, id RoomID) (*RoomInfo, error) {
	room, err := r.cfg.Store.GetRoom(ctx, string(id))
	switch {
	case errors.Is(err, persistence.ErrNotFound):
		return nil, ErrRoomNotFound
	case err != nil:
		return nil, fmt.Errorf("get room %s: %w", id, err)
	}
	return r.withFailure(&RoomInfo{Room: room}), nil
}

// operatorRequest is a change an operator makes to room id: when it
// succeeds, the room is no longer held failed (a PATCH may have fixed what
// made it fail; an ended or deleted room has nothing left to fail).
func (r *Rooms) operatorRequest(ctx context.Context, id RoomID, msg proto.Message) (*RoomInfo, error) {
	info, err := r.roomRequest(ctx, id, msg)
	if err != nil {
		return nil, err
	}
	r.failures.Delete(id)
	return info, nil
}

// Update applies patch to room id; an invalid patch changes nothing.
func (r *Rooms) Update(ctx context.Context, id RoomID, patch *actorpb.RoomPatch) (*RoomInfo, error) {
	if err := r.checkWebhook(ctx, patch.GetWebhook()); err != nil {
		return nil, err
	}
	return r.operatorRequest(ctx, id, &actorpb.UpdateRoom{Patch: patch})
}

// End ends room id; ending an ended room returns it unchanged.
func (r *Rooms) End(ctx context.Context, id RoomID) (*RoomInfo, error) {
	return r.operatorRequest(ctx, id, &actorpb.EndRoom{})
}

// Delete deletes room id.
func (r *Rooms) Delete(ctx context.Context, id RoomID) error {
	_, err := r.operatorRequest(ctx, id, &actorpb.DeleteRoom{})
	return err
}

// List returns a page of rooms in creation order, and how many match q.
// It reads the store: every acknowledged change is already there. The
// participant counts are not stored; they come from the live rooms'
// snapshots (a room without an actor has nobody in it). The rooms held
// failed are known in memory only; a status filter leaves them out, and
// q.Failed lists them alone.
func (r *Rooms) List(ctx context.Context, q ListQuery) ([]*RoomInfo, int, error) {
	failed := r.failedNow()
	if q.Failed {
		return r.listFailed(ctx, failed, q)
	}
	sq := persistence.RoomQuery{Status: q.Status, Limit: q.Limit, Offset: q.Offset}
	leaveOut := q.Status != recordpb.RoomStatus_ROOM_STATUS_UNSPECIFIED && len(failed) > 0
	if leaveOut {
		// Which rooms before the page are failed is unknown: read from the
		// start, enough to fill the page once they are left out.
		sq.Offset, sq.Limit = 0, q.Offset+q.Limit+len(failed)
		if q.Limit <= 0 {
			sq.Limit = 0
		}
	}
	page, err := r.cfg.Store.ListRooms(ctx, sq)
	if err != nil {
		return nil, 0, fmt.Errorf("list rooms: %w", err)
	}
	rooms, total := page.Rooms, page.Total
	if leaveOut {
		kept := rooms[:0:0]
		for _, room := range rooms {
			if failed[RoomID(room.Id)] == nil {
				kept = append(kept, room)
			}
		}
		rooms = kept[min(q.Offset, len(kept)):]
		if q.Limit > 0 {
			rooms = rooms[:min(q.Limit, len(rooms))]
		}
		for id := range failed {
			if room, err := r.cfg.Store.GetRoom(ctx, string(id)); err == nil && room.Status == q.Status {
				total--
			}
		}
	}
	out := make([]*RoomInfo, len(rooms))
	for i, room := range rooms {
		out[i] = r.listed(room)
	}
	return out, total, nil
}

// listFailed answers List for the rooms held failed, in creation order.
func (r *Rooms) listFailed(ctx context.Context, failed map[RoomID]*RoomFailure, q ListQuery) ([]*RoomInfo, int, error) {
	var rooms []*recordpb.Room
	for id := range failed {
		room, err := r.cfg.Store.GetRoom(ctx, string(id))
		switch {
		case errors.Is(err, persistence.ErrNotFound):
			continue // deleted meanwhile
		case err != nil:
			return nil, 0, fmt.Errorf("list failed rooms: %w", err)
		}
		rooms = append(rooms, room)
	}
	slices.SortFunc(rooms, func(a, b *recordpb.Room) int {
		if c := a.GetCreatedAt().AsTime().Compare(b.GetCreatedAt().AsTime()); c != 0 {
			return c
		}
		return strings.Compare(a.Id, b.Id)
	})
	total := len(rooms)
	rooms = rooms[min(max(q.Offset, 0), total):]
	if q.Limit > 0 {
		rooms = rooms[:min(q.Limit, len(rooms))]
	}
	out := make([]*RoomInfo, len(rooms))
	for i, room := range rooms {
		out[i] = r.listed(room)
	}
	return out, total, nil
}

// listed is a listed room with what memory adds to its record.
func (r *Rooms) listed(room *recordpb.Room) *RoomInfo {
	info := &RoomInfo{Room: room}
	if v, ok := r.snapshots.Load(RoomID(room.Id)); ok {
		info.ParticipantCount = v.(*RoomInfo).ParticipantCount
	}
	return r.withFailure(info)
}

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewRoomID returns a fresh random room id ("room_" and 16 characters).
func NewRoomID() RoomID { return RoomID("room_" + randomID()) }

// randomID returns 16 random base32 characters (80 bits).
func randomID() string {
	b := make([]byte, 10)
	rand.Read(b) // never fails (crypto/rand panics rather than return an error)
	return strings.ToLower(idEncoding.EncodeToString(b))
}
