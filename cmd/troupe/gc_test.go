package main

import (
	"log/slog"
	"runtime/debug"
	"testing"
)

// gcPercent reads the collector's target without changing it.
func gcPercent() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}

func TestApplyGCPercent(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	before := gcPercent()
	for _, tc := range []struct {
		name    string
		percent int
		gogc    string // "" = unset
		want    int
	}{
		{"default", 0, "", defaultGCPercent},
		{"GOGC from the environment wins over the default", 0, "150", before},
		{"the setting wins over GOGC", 60, "150", 60},
		{"off", gcPercentOff, "", -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.gogc != "" {
				t.Setenv("GOGC", tc.gogc)
			}
			restore := applyGCPercent(tc.percent, log)
			if got := gcPercent(); got != tc.want {
				t.Errorf("target %d, want %d", got, tc.want)
			}
			restore()
			if got := gcPercent(); got != before {
				t.Errorf("restored to %d, want %d", got, before)
			}
		})
	}
}
