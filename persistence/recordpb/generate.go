// Package recordpb holds the protobuf schema of the records Troupe keeps:
// rooms, sessions, their members, webhook deliveries and recordings. Room actors own
// these records in memory; persistence stores them behind a schema byte.
package recordpb

// Regenerate with protoc (Debian: protobuf-compiler) and
// protoc-gen-go (go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12):
//go:generate protoc -I ../.. --go_out=../.. --go_opt=module=github.com/troupe-media/troupe persistence/recordpb/room.proto persistence/recordpb/session.proto persistence/recordpb/webhook.proto persistence/recordpb/recording.proto persistence/recordpb/chat.proto
