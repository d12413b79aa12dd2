package main

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/troupe-media/troupe/internal/syncbuf"
)

// The ramp's steps are the ones the flags ask for, and a ramp of one step
// says so.
func TestBenchMediaPlan(t *testing.T) {
	for _, tc := range []struct {
		name  string
		o     benchMediaOptions
		steps []int
		note  string // a part of it; "" = no note
		usage bool
	}{
		{"scenario's ramp", benchMediaOptions{scenario: "video-fanout", ramp: true}, steps(10, 10, 200), "", false},
		{"step given starts the ramp", benchMediaOptions{scenario: "video-fanout", ramp: true, subscribers: 6, subscribersSet: true, rampStep: 2},
			[]int{2, 4, 6}, "", false},
		{"last step is the count asked", benchMediaOptions{scenario: "video-fanout", ramp: true, subscribers: 25, subscribersSet: true},
			[]int{10, 20, 25}, "", false},
		{"below the first step", benchMediaOptions{scenario: "video-fanout", ramp: true, subscribers: 6, subscribersSet: true},
			[]int{6}, "the ramp has one step", false},
		{"start given", benchMediaOptions{scenario: "video-fanout", ramp: true, subscribers: 190, subscribersSet: true, rampStep: 20, rampStart: 10},
			steps(10, 20, 190), "", false},
		{"no ramp", benchMediaOptions{scenario: "video-fanout", subscribers: 5, subscribersSet: true}, []int{5}, "", false},
		{"step without ramp", benchMediaOptions{scenario: "video-fanout", rampStep: 2}, nil, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, got, note, err := tc.o.plan()
			if tc.usage {
				var ue usageError
				if !errors.As(err, &ue) {
					t.Fatalf("err = %v, want a usage error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.steps) {
				t.Errorf("steps %v, want %v", got, tc.steps)
			}
			if (tc.note == "") != (note == "") || !strings.Contains(note, tc.note) {
				t.Errorf("note %q, want one containing %q", note, tc.note)
			}
		})
	}
}

func steps(start, step, last int) []int {
	var out []int
	for n := start; n <= last; n += step {
		out = append(out, n)
	}
	return out
}

// `troupe bench media` with its own child server: the header says what
// runs, progress to a pipe is lines, not carriage returns, and the JSON
// says what produced it.
func TestBenchMediaWithChildServer(t *testing.T) {
	if testing.Short() {
		t.Skip("runs WebRTC peers against a child server")
	}
	t.Setenv("TMPDIR", t.TempDir())
	t.Setenv(mainEnv, "1") // the child is this test binary acting as troupe
	jsonPath := filepath.Join(t.TempDir(), "media.json")
	var stdout, stderr syncbuf.Buffer
	root := newRootCmd()
	root.SetArgs([]string{"bench", "media", "--scenario", "video-fanout", "--ramp", "--subscribers", "2",
		"--ramp-step", "1", "--duration", "1s", "--json", jsonPath})
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	if err := root.ExecuteContext(t.Context()); err != nil {
		t.Fatalf("%v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	out, progress := stdout.String(), stderr.String()
	if !strings.Contains(out, "ramp of 1, 2 subscribers per room") || strings.Contains(out, "[") {
		t.Errorf("header does not say the ramp's steps:\n%s", out)
	}
	// A loaded machine may end the ramp after its first step (beyond the
	// scenario's limits), so only the first step's line is certain.
	if strings.Contains(progress, "\r") || !strings.Contains(progress, "step 1/2") {
		t.Errorf("progress to a pipe should be lines:\n%q", progress)
	}

	data, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var report struct {
		benchMeta
		Steps []map[string]any `json:"steps"`
	}
	if err := json.Unmarshal(data, &report); err != nil {
		t.Fatal(err)
	}
	checkBenchMeta(t, report.benchMeta, "media", "--json="+jsonPath)
	endedEarly := len(report.Steps) == 1 && report.Steps[0]["within_limits"] == false
	if len(report.Steps) == 0 || report.Steps[0]["subscribers"] != 1.0 ||
		(!endedEarly && (len(report.Steps) != 2 || report.Steps[1]["subscribers"] != 2.0)) {
		t.Errorf("steps %v", report.Steps)
	}
}

// checkBenchMeta checks what a benchmark report says of the run, whose
// command line had arg.
func checkBenchMeta(t *testing.T, m benchMeta, bench, arg string) {
	t.Helper()
	b := currentBuild()
	if m.Version != b.Version || m.Revision != b.Revision || m.GoVersion != b.GoVersion || m.CPUs < 1 ||
		m.OS == "" || m.Arch == "" || m.Time.IsZero() || m.Server != "child process" {
		t.Errorf("metadata %+v", m)
	}
	if len(m.Command) < 3 || strings.Join(m.Command[:3], " ") != "troupe bench "+bench || !slices.Contains(m.Command, arg) {
		t.Errorf("command %q", m.Command)
	}
}
