package etcdstore

import (
	"errors"
	"fmt"
)

var (
	// ErrNotOwner matches every *NotOwnerError, and the refusal of a room
	// write by a node that holds no lease.
	ErrNotOwner = errors.New("etcdstore: room not owned by this node")
	// ErrNoLease is returned by Claim, and wrapped with ErrNotOwner by a
	// fenced Apply, when the node holds no live lease: it has not
	// registered yet, or its lease was lost. Register grants a new one.
	ErrNoLease = errors.New("etcdstore: node holds no lease")
	// ErrNotNode is returned by the ownership methods of a Store opened
	// without Config.NodeID.
	ErrNotNode = errors.New("etcdstore: store is not a cluster node")
	// ErrConflict is returned when a write lost the race for the records it
	// read too many times in a row: writers of the same records kept
	// committing first.
	ErrConflict = errors.New("etcdstore: too many conflicting writes")
)

// NotOwnerError reports a room that this node does not own: a Claim of a
// room another node holds, or a room write (Apply) that the ownership fence
// refused, having written nothing. errors.Is(err, ErrNotOwner) holds.
type NotOwnerError struct {
	RoomID string
	// Owner is the node that held the room when the write was refused, or
	// empty if no node did.
	Owner string
}

func (e *NotOwnerError) Error() string {
	if e.Owner == "" {
		return fmt.Sprintf("etcdstore: room %q is owned by no node", e.RoomID)
	}
	return fmt.Sprintf("etcdstore: room %q is owned by node %q", e.RoomID, e.Owner)
}

// Is makes every NotOwnerError match ErrNotOwner.
func (e *NotOwnerError) Is(target error) bool { return target == ErrNotOwner }
