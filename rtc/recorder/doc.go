// Package recorder writes the RTP a recording receives into WebM/Matroska
// files, without decoding: it is one more subscriber of each recorded track.
//
// A Recorder owns one recording: a directory of files and one writer
// goroutine. Each recorded track gets a Track, fed from the forwarding path
// (WriteRTP never blocks: a packet is copied into a pooled buffer and handed
// to the writer through a bounded queue; a full queue drops and counts).
// The writer puts each track's packets back in order (waiting at most
// Config.MaxReorder for a retransmission it asked for with a NACK), builds
// frames from them with pion's depacketizers, and writes each frame to its
// file, never one that depends on a frame it lost: after a loss it drops
// frames until the next keyframe, which it asks for.
//
// Files: by default one per participant with its audio and video (Layout
// PerParticipant), or one per track (PerTrack). VP8/VP9 with Opus go into
// WebM, H.264 into Matroska (with its avcC built from the stream's SPS and
// PPS). A file's tracks are fixed when it is opened, so a track that
// starts after its participant's file has opened (a late camera, a
// rejoin) starts a new part of that file. All files of a recording are on
// one clock: each track's RTP time is mapped through its RTCP sender
// reports (one NTP clock per participant, so that a participant's audio
// and video stay in sync), and through arrival time until the first
// report; between reports a track follows its RTP clock, and is placed
// anew only by two reports in a row that put it over 30 ms away (a
// drift), not by one report dated late. Each File says where it starts on that clock (File.Start), and
// its segment carries that instant as its DateUTC.
//
// Files are written with unknown-size segment and clusters, and their
// header's duration is kept near the truth as they grow, so that one cut
// short (a crash, SIGKILL, a full disk) still plays; Close writes the cues
// and the exact duration, and Finalize does for a file left by a crash
// what Close would have, and reads back what it holds (Extent: its first
// frame's time from the DateUTC, its duration and size). Files lists a recording's files while it runs,
// Config.OnFile reports each as it opens, and PlayablePrefix says how much
// of one being written plays as it is (its whole elements), for a
// download that does not wait for the end.
//
// A recording continued by another recorder (after a failover, on another
// node) is a later part: Config.Part names its files apart
// (<participant>-part2.webm) and Config.Origin keeps them on the first
// part's clock.
//
// A disk with less free space than Config.MinFreeBytes (as statfs, or
// Config.FreeSpace, measures it), or a failed write, stops the recording by itself (Done, Err: ErrDiskFull or the
// write error) with its files finished. Stats and a Prometheus collector
// (Metrics) count packets, drops by reason, losses, NACKs, keyframe
// requests, frames and bytes.
//
// The package imports pion and ebml-go, never actors or HTTP.
package recorder
