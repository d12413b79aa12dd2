// Package actors is Troupe's control plane: one protoactor-go actor per room,
// the single writer of that room's state, addressed by room id through Rooms,
// and one actor per participant, beside its room.
//
// A room actor loads its record from the store when it starts (and when
// supervision restarts it after a panic), applies every change as a message,
// and persists the record before it replies, so a reply means the change is
// durable. Actors that sit idle are passivated and come back on the next
// message. The room actor is cut by concept into the room_*.go files, which
// room.go lists.
//
// What a participant may do is its Grants (grants.go): publish, and of
// which sources, subscribe, send data, and whether it is hidden; the
// roles are presets of them. The participant actor refuses the tracks its
// grants do not allow, naming them to its client; the room subscribes
// only members that may subscribe, silences the data endpoint of one that
// may not send, and shows hidden members to no one. A change of grants on
// a live member (room_grants.go) takes effect before the reply.
//
// A participant actor owns its rtc.Peer (the connection and its
// negotiation), its published tracks' read loops and its subscriptions; it
// turns what the peer reports into messages and tells its room what
// happened. The streams of one simulcast sender (its rid layers) become
// one rtc.Track with layers, published once; the room passes its quality
// cap to its members, and a publisher hears which of its layers anyone
// receives. Once a second, while a member publishes video, the room looks
// at the tracks' layers and describes a track again to every member when
// they changed (room_layers.go). The room decides who subscribes to what
// (room_subscriptions.go): a member receives every track as it is
// published, or, when it joined without auto-subscribe, the tracks it
// asks for. Media never passes through a mailbox: packets flow in rtc.
//
// Supervision. The registry is the parent and supervisor of the room
// actors; participants are not children of their room but of a guardian
// of their own, which stops one that panics (a peer connection cannot be
// restarted from a snapshot), and the room watches them. protoactor-go
// stops an actor's children when it restarts it: were participants the
// room's children, a panic in a room would drop everyone in it. Beside it,
// they outlive the restart with their peer connections, forwarders and
// down-tracks (media never needed the room actor), and keep the room's
// PID, which a restart keeps too. The restarted room reloads its record
// and session from the store and takes back the live members, which every
// incarnation of a room shares (roomLife): it watches them again, so one
// that stopped meanwhile is reported, and re-arms the timers. Nothing is
// announced, written or sent for the restart itself. A room that fails more
// than 10 times in a minute is stopped instead: its session ends with
// room-failed and its members leave with room-failed, and it is held
// failed, in memory, for a cool-down that grows when it fails again soon
// (RoomFailure): requests that would start it get ErrRoomFailed, and so do
// those that waited in its mailbox. A room that panics while it stops is
// not restarted (a restart would consume the stop): it stops as a failed
// one, its members leaving with room-failed.
//
// The actors reach storage through Store, the part of persistence.Backend
// they call, so they run on any store of record.
//
// In a cluster (Config.Owners) the registry claims a room before it starts
// its actor, and a room runs on the one node that owns it; a create, with
// a Creator, is placed at once and claimed by the write that creates the
// room (createUnclaimed). A room this node
// heard (Owners.Elsewhere, a watch) that another node owns is refused at
// once with a *NotOwnerError, for the HTTP edge to forward, without asking
// etcd; a request forwarded here (Forwarded) asks etcd instead, since the
// hint can be a moment behind. When a node is
// lost, the node that claims one of its rooms next starts it as any other:
// the actor finds the session the lost node left in progress, closes the
// members left open with node-lost (their webhooks in the same fenced
// write) and runs the session on (room_recovery.go). Rooms.TakeOver starts
// a room without a request, for the node's watch of lost rooms. Once
// Rooms.Close has begun, no room starts: a takeover, or any request, that
// waits for its room's claim is refused with ErrUnavailable and the claim
// given up, so that the node's rooms stop promptly and the lost rooms go to
// a node that stays.
//
// Rooms.Close stops every room: its members leave with server-shutdown. On
// a single node a room's running session ends then too, as server-shutdown
// (endSessionAtShutdown); a cluster node leaves its sessions in progress,
// for the nodes that take its rooms over with its lease.
//
// A room records (room_recording.go): its actor starts and stops the
// recording of its session, writes the recording's record with its events,
// and makes the writer (rtc/recorder, recording_media.go) a sink of each
// recorded track's forwarder, so that packets go from the publisher's read
// loop to the writer's queue. The recording, like the members, outlives a
// restart of the actor. At start-up a recording a crash left open has its
// files finalized and is marked failed with server-restart, its figures
// and its end read from the files (closeInterruptedRecordings,
// recordings.go); its session, closed next, ends no earlier. In a cluster, the node that
// takes a room over goes on with the recording its lost node was writing,
// as the recording's next part (closeOrphanRecordings, continueRecording);
// the record lists every file as it opens, with its part and node, and a
// node restarted after a crash, or after it lost its lease, finalizes the
// files of the part it lost (settleLostParts) and writes their size and
// duration into the record, which the room's owner holds: not through a
// room write (it does not own the room) but by the store's conditional
// update of those files' entries alone, which the owner's own writes of
// the record keep (etcdstore.Store.SettleRecordingFiles).
// Deleting a recording removes its record, then its files on the room's
// owner; the HTTP edge asks the other nodes that hold files of it to
// remove theirs (RemoveDeletedRecordingFiles, refused while the record
// exists), and a node that was down removes, at its start, every
// recording directory whose record the store no longer has
// (removeDeletedRecordings).
//
// A room knows who speaks (room_speakers.go): four times a second, while
// a member publishes audio, it reads the level each audio track's
// forwarder keeps from the packets' audio level extension (one atomic
// load per track, no message per packet), and tells every member the
// speakers, loudest first, when their order changes.
//
// Ids (RoomID, ParticipantID, TrackID, SessionID; ids.go) and the reasons a
// participant leaves and a session ends (LeaveReason, EndReason;
// reasons.go) are typed, so that the API cannot take one for another. They
// are strings underneath: records, actorpb messages, webhook events and
// rtc keep plain strings, converted where the actors meet them.
//
// httpapi uses actors (cmd/troupe only wires it up), and it is httpapi's one
// way down: the reads of session history and webhook deliveries, the
// responses kept for Idempotency-Key (Idempotency), the one rule for WHIP
// and WHEP offers (ValidateOffer, offer.go), a WHIP or WHEP session's ICE
// patches and their tags (PatchICE, ice.go) and the JSON its webhook events
// share with the API (eventjson.go) are here too. actors imports
// persistence and rtc, never the other way around. Webhook delivery is in
// actors/webhook.
package actors
