package actors

// Ids are typed so that one cannot be passed for another: a call that
// swaps a room id and a participant id does not compile. Where they leave
// the actors they are written as the strings they are (see doc.go).

// RoomID names a room: chosen by its creator or made by NewRoomID, and
// valid by ValidateRoomID.
type RoomID string

// ParticipantID names one stay of a participant in a room ("PA_" and 16
// characters): each join makes a new one, whatever its identity. It is
// also the stream id of the tracks the participant publishes.
type ParticipantID string

// TrackID names a published track ("TR_" and 16 characters); subscribers
// receive the track under it. rtc, which knows no rooms or participants,
// takes it as the plain WebRTC track id that pion has.
type TrackID string

// SessionID names a session of a room ("ses_" and 16 characters), as its
// record and the room's active_session_id have it.
type SessionID string
