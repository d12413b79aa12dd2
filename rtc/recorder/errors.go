package recorder

import "errors"

var (
	// ErrBadConfig wraps every Config validation failure.
	ErrBadConfig = errors.New("recorder: invalid config")
	// ErrUnsupportedCodec is a track whose codec cannot be recorded
	// without decoding it.
	ErrUnsupportedCodec = errors.New("recorder: unsupported codec")
	// ErrBadTrack is a TrackInfo that is missing what the recorder needs.
	ErrBadTrack = errors.New("recorder: invalid track")
	// ErrDuplicateTrack is a second AddTrack for a track id already
	// recorded and not closed.
	ErrDuplicateTrack = errors.New("recorder: track already recorded")
	// ErrClosed is returned after Close, or once the recorder has failed.
	ErrClosed = errors.New("recorder: closed")
	// ErrDiskFull stops a recording whose disk has less free space than
	// Config.MinFreeBytes, or that ran out of it.
	ErrDiskFull = errors.New("recorder: disk full")
	// ErrNotRecording is a file Finalize cannot read as one written by this
	// package (not EBML, not Matroska/WebM, or cut before its first
	// cluster's header).
	ErrNotRecording = errors.New("recorder: not a recording file")
)
