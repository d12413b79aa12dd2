package rtc

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pion/logging"
)

// pionLogger routes pion's logs to slog, scoped by pion subsystem. pion
// reports every connection state change at info level, so its info becomes
// slog's debug and its debug and trace go below that.
type pionLogger struct {
	l *slog.Logger
}

type pionLoggerFactory struct {
	l *slog.Logger
}

func (f pionLoggerFactory) NewLogger(scope string) logging.LeveledLogger {
	return pionLogger{l: f.l.With("pion", scope)}
}

const (
	levelPionInfo  = slog.LevelDebug
	levelPionDebug = slog.LevelDebug - 2
	levelPionTrace = slog.LevelDebug - 4
)

func (p pionLogger) log(level slog.Level, msg string) {
	p.l.Log(context.Background(), level, msg)
}

func (p pionLogger) logf(level slog.Level, format string, args ...any) {
	if p.l.Enabled(context.Background(), level) {
		p.l.Log(context.Background(), level, fmt.Sprintf(format, args...))
	}
}

func (p pionLogger) Trace(msg string)                  { p.log(levelPionTrace, msg) }
func (p pionLogger) Tracef(format string, args ...any) { p.logf(levelPionTrace, format, args...) }
func (p pionLogger) Debug(msg string)                  { p.log(levelPionDebug, msg) }
func (p pionLogger) Debugf(format string, args ...any) { p.logf(levelPionDebug, format, args...) }
func (p pionLogger) Info(msg string)                   { p.log(levelPionInfo, msg) }
func (p pionLogger) Infof(format string, args ...any)  { p.logf(levelPionInfo, format, args...) }
func (p pionLogger) Warn(msg string)                   { p.log(slog.LevelWarn, msg) }
func (p pionLogger) Warnf(format string, args ...any)  { p.logf(slog.LevelWarn, format, args...) }
func (p pionLogger) Error(msg string)                  { p.log(slog.LevelError, msg) }
func (p pionLogger) Errorf(format string, args ...any) { p.logf(slog.LevelError, format, args...) }
