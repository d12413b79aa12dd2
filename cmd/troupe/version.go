package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
)

// version is set at link time by release builds:
//
//	go build -ldflags "-X main.version=v1.2.3" ./cmd/troupe
//
// When empty, the module version and VCS stamp from the build info are used.
var version = ""

// buildInfo describes this build, for `troupe version`, the
// troupe_build_info metric and the benchmarks' reports.
type buildInfo struct {
	// Version is the release version set at link time, else the module
	// version Go stamped (a pseudo-version naming the commit), else the
	// short VCS revision, with "-dirty" if the tree had uncommitted changes;
	// "unknown" when the build carries none of them (go build
	// -buildvcs=false, or a tree Go does not see as a repository).
	Version string
	// Revision is the VCS commit, with "-dirty" if the tree had
	// uncommitted changes; "" when unknown.
	Revision string
	// Time is the commit's time (RFC 3339); "" when unknown.
	Time      string
	GoVersion string
}

const shortRevision = 12

func currentBuild() buildInfo {
	info, _ := debug.ReadBuildInfo()
	return buildInfoFrom(version, info)
}

// buildInfoFrom reads linkVersion (main.version) and info, which may be nil.
func buildInfoFrom(linkVersion string, info *debug.BuildInfo) buildInfo {
	b := buildInfo{Version: linkVersion, GoVersion: runtime.Version()}
	var dirty bool
	if info != nil {
		// go build without VCS information stamps "(devel)": no version.
		if b.Version == "" && info.Main.Version != "(devel)" {
			b.Version = info.Main.Version
		}
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				b.Revision = s.Value
			case "vcs.time":
				b.Time = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
	}
	if b.Revision != "" && dirty {
		b.Revision += "-dirty"
	}
	if b.Version == "" && b.Revision != "" {
		b.Version = b.Revision[:min(shortRevision, len(b.Revision))]
		if dirty {
			b.Version += "-dirty"
		}
	}
	if b.Version == "" {
		b.Version = "unknown"
	}
	return b
}

// String describes the build in one line.
func (b buildInfo) String() string {
	out := "troupe " + b.Version
	rev, _ := strings.CutSuffix(b.Revision, "-dirty")
	short := rev[:min(shortRevision, len(rev))]
	// A pseudo-version (v0.0.0-<time>-<revision>) already names the commit.
	if short != "" && !strings.Contains(b.Version, short) {
		out += " " + short
		if rev != b.Revision {
			out += "-dirty"
		}
		if b.Time != "" {
			out += " " + b.Time
		}
	}
	return fmt.Sprintf("%s %s %s/%s", out, b.GoVersion, runtime.GOOS, runtime.GOARCH)
}

// collector is the troupe_build_info metric: 1, with the build as labels,
// so that dashboards can tell which build each server runs.
func (b buildInfo) collector() prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "troupe_build_info",
		Help:        "Always 1; the labels describe the running build.",
		ConstLabels: prometheus.Labels{"version": b.Version, "revision": b.Revision, "go_version": b.GoVersion},
	})
	g.Set(1)
	return g
}

// versionString describes this build in one line.
func versionString() string { return currentBuild().String() }

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the build version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), versionString())
			return err
		},
	}
}
