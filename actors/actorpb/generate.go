// Package actorpb holds the protobuf messages that room actors take and
// answer. They are protobuf so that a room actor can live on another node.
package actorpb

// Regenerate with protoc (Debian: protobuf-compiler) and
// protoc-gen-go (go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12):
//go:generate protoc -I ../.. --go_out=../.. --go_opt=module=github.com/troupe-media/troupe actors/actorpb/room.proto
