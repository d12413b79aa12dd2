package mediaload

import (
	"fmt"
	"io"
	"os"
	"slices"
	"text/tabwriter"
)

// WriteTable prints one row per step.
func WriteTable(w io.Writer, steps []Step) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	// Every column says which figure it is: "lat" is end-to-end latency,
	// "path" the path latency, "join" join to first packet.
	fmt.Fprintln(tw, "server\tpubs\tsubs\texpected\treceived\tloss %\tmissing tracks\tlat p50 ms\tlat p99 ms\tlat max ms\tpath p50 ms\tpath p99 ms\tjoin p50 ms\tjoin p99 ms\tfwd pkt/s\tsrv cores\tµs/pkt\tpkt/s/core\tRSS MB\tKB/part\tclient cores\treconnects\toutage s\t")
	for _, s := range steps {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%.2f\t%d\t%.2f\t%.2f\t%.1f\t%.2f\t%.2f\t%.0f\t%.0f\t%.0f\t%.2f\t%.2f\t%.0f\t%.1f\t%.0f\t%.2f\t%d\t%.1f\t\n",
			s.Server, s.Publishers, s.Subscribers, s.ExpectedPackets, s.ReceivedPackets, 100*s.LossRatio, s.MissingTracks,
			s.LatencyP50Ms, s.LatencyP99Ms, s.LatencyMaxMs, s.PathLatencyP50Ms, s.PathLatencyP99Ms, s.JoinToFirstPacketP50Ms, s.JoinToFirstPacketP99Ms,
			s.ForwardedPacketsPerSec, s.ServerCores, s.CPUPerPacketUs, s.PacketsPerSecPerCore,
			float64(s.ServerRSSBytes)/(1<<20), float64(s.RSSPerParticipantBytes)/1024, s.ClientCores,
			s.Reconnects, s.OutageSeconds)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if !slices.ContainsFunc(steps, func(s Step) bool { return len(s.Classes) > 0 }) {
		return nil
	}
	fmt.Fprintln(w)
	return writeClassTable(w, steps)
}

// writeClassTable prints the steps of a simulcast scenario, one row per
// step and subscriber class: what it asked for and could carry against
// what it got.
func writeClassTable(w io.Writer, steps []Step) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	// "cap" is the class's link (- for open), "cut" the rate it is cut to
	// in the window; kbps are the camera's as received.
	fmt.Fprintln(tw, "server\tsubs\tclass\tmembers\tsize\tcap kbps\tcut kbps\tkbps p50\tkbps max\tcut kbps max\tlayers\tend layers\tno video\tswitches\tbad switches\tdown p50 ms\tdown max ms\tnot down\tup p50 ms\tup max ms\tnot up\tpauses\tresumes\tloss %\tlat p50 ms\tlat p99 ms\tcorrupt\t")
	for _, s := range steps {
		for _, c := range s.Classes {
			size := "-"
			if c.Width > 0 {
				size = fmt.Sprintf("%dx%d", c.Width, c.Height)
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%s\t%s\t%s\t%.0f\t%.0f\t%.0f\t%s\t%s\t%d\t%d\t%d\t%.0f\t%.0f\t%d\t%.0f\t%.0f\t%d\t%d\t%d\t%.2f\t%.2f\t%.2f\t%d\t\n",
				s.Server, s.Subscribers, c.Class, c.Subscribers, size, kbpsOrOpen(c.CapKbps), kbpsOrOpen(c.CutKbps),
				c.ReceivedKbpsP50, c.ReceivedKbpsMax, c.CutReceivedKbpsMax, c.Layers, c.EndLayers, c.NoVideo, c.Switches, c.BadSwitches,
				c.SwitchDownP50Ms, c.SwitchDownMaxMs, c.NotDown, c.SwitchUpP50Ms, c.SwitchUpMaxMs, c.NotUp,
				c.Pauses, c.Resumes, 100*c.LossRatio, c.LatencyP50Ms, c.LatencyP99Ms, c.Corrupt)
		}
	}
	return tw.Flush()
}

func kbpsOrOpen(kbps int) string {
	if kbps == 0 {
		return "-"
	}
	return fmt.Sprint(kbps)
}

// WriteComparison prints Troupe and a baseline side by side, step by step
// (matched by step number), with the ratio of their CPU per packet.
func WriteComparison(w io.Writer, troupe, baseline []Step) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "subs\ttroupe µs/pkt\tbaseline µs/pkt\tbaseline/troupe\ttroupe loss %\tbaseline loss %\ttroupe lat p99 ms\tbaseline lat p99 ms\ttroupe path p99 ms\tbaseline path p99 ms\t")
	for i := range min(len(troupe), len(baseline)) {
		t, b := troupe[i], baseline[i]
		fmt.Fprintf(tw, "%d\t%.2f\t%.2f\t%s\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t\n",
			t.Subscribers, t.CPUPerPacketUs, b.CPUPerPacketUs, ratio(b.CPUPerPacketUs, t.CPUPerPacketUs),
			100*t.LossRatio, 100*b.LossRatio, t.LatencyP99Ms, b.LatencyP99Ms, t.PathLatencyP99Ms, b.PathLatencyP99Ms)
	}
	return tw.Flush()
}

// Ratio is how many times more CPU per packet the baseline takes than
// Troupe; zero when either is unknown.
func Ratio(baseline, troupe float64) float64 {
	if baseline <= 0 || troupe <= 0 {
		return 0
	}
	return baseline / troupe
}

func ratio(baseline, troupe float64) string {
	r := Ratio(baseline, troupe)
	if r == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", r)
}

// WriteSVGFile writes the chart of WriteSVG to path.
func WriteSVGFile(path, title string, steps []Step) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := WriteSVG(f, title, steps); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
