package rtc

import (
	"context"
	"log/slog"
	"sync"
	"testing"

	"github.com/pion/logging"
)

// recordHandler keeps the records at or above its level.
type recordHandler struct {
	level   slog.Level
	mu      sync.Mutex
	records []slog.Record
}

func (h *recordHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }

func (h *recordHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r)
	return nil
}

func (h *recordHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordHandler) WithGroup(string) slog.Handler      { return h }

// take returns the records kept since the last call.
func (h *recordHandler) take() []slog.Record {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.records
	h.records = nil
	return r
}

// The warnings pion logs in every normal call are debug; the same messages
// with another cause, other warnings and errors keep their level.
func TestPionLoggerLevels(t *testing.T) {
	for _, tc := range []struct {
		name, scope string
		log         func(logging.LeveledLogger) // as pion v4.2 and ice v4.4 log it
		want        slog.Level
	}{
		{"ping before candidates", "ice", func(l logging.LeveledLogger) {
			l.Warn("Failed to ping without candidate pairs. Connection is not possible yet.")
		}, levelPionBenign},
		{"RTP accept loop ends", "pc", func(l logging.LeveledLogger) {
			l.Warnf("Failed to accept RTP %v", "stream is already closed")
		}, levelPionBenign},
		{"RTCP accept loop ends", "pc", func(l logging.LeveledLogger) {
			l.Warnf("Failed to accept RTCP %v", "stream is already closed")
		}, levelPionBenign},
		{"candidate closes", "ice", func(l logging.LeveledLogger) {
			l.Warnf("Failed to read from candidate %s: %v", "udp4 host 127.0.0.1:7882", "io: read/write on closed pipe")
		}, levelPionBenign},
		{"DTLS before its endpoint, queued", "mux", func(l logging.LeveledLogger) {
			l.Warnf("Warning: mux: no endpoint for packet starting with %d, adding to queue size(%d)", 22, 0)
		}, levelPionBenign},
		{"DTLS before its endpoint, dropped", "mux", func(l logging.LeveledLogger) {
			l.Warnf("Warning: mux: no endpoint for packet starting with %d, not adding to queue size(%d)", 22, 500)
		}, slog.LevelWarn},
		{"candidate read fails", "ice", func(l logging.LeveledLogger) {
			l.Warnf("Failed to read from candidate %s: %v", "udp4 host 127.0.0.1:7882", "connection refused")
		}, slog.LevelWarn},
		{"accept fails otherwise", "pc", func(l logging.LeveledLogger) {
			l.Warnf("Failed to accept RTP %v", "srtp: failed to decrypt")
		}, slog.LevelWarn},
		{"benign text in another scope", "dtls", func(l logging.LeveledLogger) {
			l.Warn("Failed to ping without candidate pairs. Connection is not possible yet.")
		}, slog.LevelWarn},
		{"other warning", "pc", func(l logging.LeveledLogger) {
			l.Warnf("Incoming unhandled RTCP ssrc(%d), OnTrack will not be fired", 42)
		}, slog.LevelWarn},
		{"error", "pc", func(l logging.LeveledLogger) {
			l.Errorf("Failed to accept RTP %v", "stream is already closed")
		}, slog.LevelError},
		{"packet for a connection just closed", "udpmux", func(l logging.LeveledLogger) {
			l.Errorf("Failed to write packet: %v", "io: read/write on closed pipe")
		}, levelPionBenign},
		{"packet write fails otherwise", "udpmux", func(l logging.LeveledLogger) {
			l.Errorf("Failed to write packet: %v", "buffer is full")
		}, slog.LevelError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, min := range []slog.Level{slog.LevelDebug, slog.LevelInfo} {
				h := &recordHandler{level: min}
				tc.log(pionLoggerFactory{l: slog.New(h)}.NewLogger(tc.scope))
				got := h.take()
				if tc.want < min {
					if len(got) != 0 {
						t.Fatalf("at %v: logged %q at %v", min, got[0].Message, got[0].Level)
					}
					continue
				}
				if len(got) != 1 || got[0].Level != tc.want {
					t.Fatalf("at %v: got %d records (%v), want one at %v", min, len(got), got, tc.want)
				}
			}
		})
	}
}
