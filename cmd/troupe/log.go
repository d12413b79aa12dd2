package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
)

func parseLevel(s string) (slog.Level, error) {
	switch s {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("%q: must be debug, info, warn or error", s)
}

// newLogger returns the process logger; cfg must have passed Validate.
func newLogger(w io.Writer, cfg Config) *slog.Logger {
	level, _ := parseLevel(cfg.LogLevel)
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if cfg.LogFormat == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(newUniqueAttrs(h))
}

// uniqueAttrs is a handler whose loggers' attributes (those of With) have
// each key once: one set again replaces the earlier value. slog's own
// handlers write both, and a JSON object with a key twice is one that
// most log tools read wrongly. It happens when a package names itself
// ("component") under a logger that its caller named already.
type uniqueAttrs struct {
	base  slog.Handler // the handler the attrs are added to
	attrs []slog.Attr  // each key once
	h     slog.Handler // base with attrs
}

func newUniqueAttrs(h slog.Handler) *uniqueAttrs { return &uniqueAttrs{base: h, h: h} }

func (u *uniqueAttrs) Enabled(ctx context.Context, l slog.Level) bool { return u.h.Enabled(ctx, l) }

func (u *uniqueAttrs) Handle(ctx context.Context, r slog.Record) error { return u.h.Handle(ctx, r) }

func (u *uniqueAttrs) WithAttrs(as []slog.Attr) slog.Handler {
	if len(as) == 0 {
		return u
	}
	merged := slices.Clone(u.attrs)
	for _, a := range as {
		if i := slices.IndexFunc(merged, func(b slog.Attr) bool { return b.Key == a.Key }); i >= 0 {
			merged[i] = a
			continue
		}
		merged = append(merged, a)
	}
	// Loggers are made with With when a room or participant starts, not
	// per record: formatting the attrs again here costs nothing per record.
	return &uniqueAttrs{base: u.base, attrs: merged, h: u.base.WithAttrs(merged)}
}

// WithGroup starts a new level of keys: the attrs so far stay outside it.
func (u *uniqueAttrs) WithGroup(name string) slog.Handler {
	if name == "" {
		return u
	}
	return newUniqueAttrs(u.h.WithGroup(name))
}
