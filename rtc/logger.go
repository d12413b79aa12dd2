package rtc

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/pion/ice/v4"
	"github.com/pion/logging"
)

// pionLogger routes pion's logs to slog, scoped by pion subsystem. pion
// reports every connection state change at info level, so its info becomes
// slog's debug and its debug and trace go below that. Its warnings stay
// warnings, but for the few it logs in the normal course of every call
// (benignPionWarnings), which become debug; so do the few errors it logs
// when a participant leaves (benignPionErrors).
type pionLogger struct {
	l          *slog.Logger
	benign     []benignWarning // the warnings of this logger's scope
	benignErrs []benignWarning // the errors of this logger's scope
}

type pionLoggerFactory struct {
	l *slog.Logger
}

func (f pionLoggerFactory) NewLogger(scope string) logging.LeveledLogger {
	return pionLogger{l: f.l.With("pion", scope),
		benign: ofScope(benignPionWarnings, scope), benignErrs: ofScope(benignPionErrors, scope)}
}

func ofScope(all []benignWarning, scope string) []benignWarning {
	var out []benignWarning
	for _, w := range all {
		if w.scope == scope {
			out = append(out, w)
		}
	}
	return out
}

const (
	levelPionInfo  = slog.LevelDebug
	levelPionDebug = slog.LevelDebug - 2
	levelPionTrace = slog.LevelDebug - 4
	// levelPionBenign is the level of benignPionWarnings.
	levelPionBenign = slog.LevelDebug
)

// benignWarning is a pion warning that says nothing is wrong: pion's logger
// scope, the start of the message and a text the message must contain
// (often the error that pion appends).
type benignWarning struct {
	scope, prefix, contains string
}

// benignPionWarnings are the warnings pion logs when a participant joins or
// leaves as it should (pion v4.2 and ice v4.4). Every other warning keeps
// its level. Keep each entry narrow: the same message with another error
// may be a real fault.
var benignPionWarnings = []benignWarning{
	// The agent starts pinging when it starts, before the remote peer's
	// trickled candidates have arrived; a connection that never gets any
	// fails, and that is reported as the participant's failure.
	{"ice", "Failed to ping without candidate pairs", ""},
	// The loops waiting for RTP and RTCP of undeclared SSRCs end so when
	// the peer connection closes.
	{"pc", "Failed to accept RTP ", "stream is already closed"},
	{"pc", "Failed to accept RTCP ", "stream is already closed"},
	// A candidate's read loop ending as its agent closes: the shared UDP
	// port's per-connection reader reports the close as a closed pipe,
	// where a socket of its own would report net.ErrClosed, which pion
	// does not log.
	{"ice", "Failed to read from candidate ", io.ErrClosedPipe.Error()},
	// The client's first DTLS packet may arrive just before the DTLS
	// transport has registered with the mux: it is queued and delivered
	// then. One dropped ("not adding to queue") stays a warning.
	{"mux", "Warning: mux: no endpoint for packet starting with ", ", adding to queue"},
	// A peer connection closed before its ICE transport connected: the
	// transports' start, queued by SetRemoteDescription, finds it closed or
	// is cancelled, and the remote candidates still being added find the
	// agent closed. Every WHIP and WHEP offer does that (the offer check's
	// peer connection is closed at once), as does a join that ends early.
	{"pc", "Failed to start manager: ", "ICETransport can only be called in ICETransportStateNew"},
	{"pc", "Failed to start manager: ", ice.ErrCanceledByCaller.Error()},
	{"ice", "Failed to add remote candidate ", ice.ErrClosed.Error()},
}

// benignPionErrors are the errors pion logs when a participant leaves as
// it should.
var benignPionErrors = []benignWarning{
	// A packet the shared UDP port routes to a connection that closed a
	// moment before (its participant left) finds its pipe closed: the
	// packet belonged to no one any more.
	{"udpmux", "Failed to write packet: ", io.ErrClosedPipe.Error()},
}

func (p pionLogger) log(level slog.Level, msg string) {
	p.l.Log(context.Background(), level, msg)
}

func (p pionLogger) logf(level slog.Level, format string, args ...any) {
	if p.l.Enabled(context.Background(), level) {
		p.l.Log(context.Background(), level, fmt.Sprintf(format, args...))
	}
}

// warn logs msg at warning level, or at levelPionBenign if it is benign.
func (p pionLogger) warn(msg string) { p.unlessBenign(slog.LevelWarn, p.benign, msg) }

// error logs msg at error level, or at levelPionBenign if it is benign.
func (p pionLogger) error(msg string) { p.unlessBenign(slog.LevelError, p.benignErrs, msg) }

// unlessBenign logs msg at level, or at levelPionBenign if it is one of benign.
func (p pionLogger) unlessBenign(level slog.Level, benign []benignWarning, msg string) {
	for _, w := range benign {
		if strings.HasPrefix(msg, w.prefix) && strings.Contains(msg, w.contains) {
			level = levelPionBenign
			break
		}
	}
	p.log(level, msg)
}

func (p pionLogger) Trace(msg string)                  { p.log(levelPionTrace, msg) }
func (p pionLogger) Tracef(format string, args ...any) { p.logf(levelPionTrace, format, args...) }
func (p pionLogger) Debug(msg string)                  { p.log(levelPionDebug, msg) }
func (p pionLogger) Debugf(format string, args ...any) { p.logf(levelPionDebug, format, args...) }
func (p pionLogger) Info(msg string)                   { p.log(levelPionInfo, msg) }
func (p pionLogger) Infof(format string, args ...any)  { p.logf(levelPionInfo, format, args...) }
func (p pionLogger) Warn(msg string)                   { p.warn(msg) }
func (p pionLogger) Error(msg string)                  { p.error(msg) }

func (p pionLogger) Errorf(format string, args ...any) {
	ctx := context.Background()
	if p.l.Enabled(ctx, slog.LevelError) || p.l.Enabled(ctx, levelPionBenign) {
		p.error(fmt.Sprintf(format, args...))
	}
}

func (p pionLogger) Warnf(format string, args ...any) {
	// Whether it is benign is known only once it is formatted.
	ctx := context.Background()
	if p.l.Enabled(ctx, slog.LevelWarn) || p.l.Enabled(ctx, levelPionBenign) {
		p.warn(fmt.Sprintf(format, args...))
	}
}
