package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/troupe-media/troupe/bench/apiload"
	"github.com/troupe-media/troupe/bench/mediaload"
	"github.com/troupe-media/troupe/bench/naive"
	"github.com/troupe-media/troupe/bench/proc"
	"github.com/troupe-media/troupe/bench/scenarios"
	"github.com/troupe-media/troupe/httpapi/auth"
)

func newBenchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure a Troupe server",
		Args:  cobra.NoArgs, // so that an unknown benchmark is an error, not help
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newBenchAPICmd(), newBenchMediaCmd(), newBenchNaiveServerCmd())
	return cmd
}

type benchAPIOptions struct {
	clients  int
	duration time.Duration
	server   string
	token    string
	jsonFile string
}

func newBenchAPICmd() *cobra.Command {
	var o benchAPIOptions
	cmd := &cobra.Command{
		Use:   "api",
		Short: "Load the REST API: GET one room, then create rooms",
		Long: `Load the REST API with closed-loop clients: first GET /api/v1/rooms/{id}
of one room, then POST /api/v1/rooms, each for --duration, and print
throughput and latency percentiles.

Without --server, a server is started as a child process (this executable,
on a temporary data dir and a free port) so its CPU use is its own; it is
stopped and its data removed at the end. With --server, pass an admin
--token; note that the create phase adds rooms to that server.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return benchAPI(cmd, o)
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.clients, "clients", 32, "concurrent closed-loop clients")
	f.DurationVar(&o.duration, "duration", 10*time.Second, "length of each phase")
	f.StringVar(&o.server, "server", "", "base URL of a running server (default: start one)")
	f.StringVar(&o.token, "token", "", "admin token for --server")
	f.StringVar(&o.jsonFile, "json", "", "also write the results to this file as JSON")
	return cmd
}

// benchMeta says what produced a benchmark's --json report: the build,
// the machine, when, and the command line, so that figures can be told
// apart and the run repeated. Both benchmarks' reports start with it.
type benchMeta struct {
	Version   string    `json:"version"`
	Revision  string    `json:"revision,omitempty"`
	GoVersion string    `json:"go_version"`
	OS        string    `json:"os"`
	Arch      string    `json:"arch"`
	CPUs      int       `json:"cpus"`
	Time      time.Time `json:"time"`
	// Command is the command line, flags as given; a --token's value is
	// left out.
	Command []string `json:"command"`
	// Server is the server's URL, or "child process".
	Server string `json:"server"`
}

func newBenchMeta(cmd *cobra.Command, server string) benchMeta {
	b := currentBuild()
	command := strings.Fields(cmd.CommandPath())
	cmd.Flags().Visit(func(f *pflag.Flag) {
		v := f.Value.String()
		if f.Name == "token" {
			v = "..." // a credential: kept out of files that get shared
		}
		command = append(command, "--"+f.Name+"="+v)
	})
	return benchMeta{
		Version: b.Version, Revision: b.Revision, GoVersion: b.GoVersion,
		OS: runtime.GOOS, Arch: runtime.GOARCH, CPUs: runtime.NumCPU(),
		Time: time.Now().UTC(), Command: command, Server: server,
	}
}

// writeJSONFile writes v, indented, to path.
func writeJSONFile(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write --json: %w", err)
	}
	return nil
}

// benchReport is the --json output of `bench api`.
type benchReport struct {
	benchMeta
	Results []benchResult `json:"results"`
}

// benchMediaReport is the --json output of `bench media`: one object per
// step, Troupe's then the baseline's.
type benchMediaReport struct {
	benchMeta
	Steps []mediaload.Step `json:"steps"`
}

type benchResult struct {
	Op        string  `json:"op"`
	Clients   int     `json:"clients"`
	Requests  int64   `json:"requests"`
	Errors    int64   `json:"errors"`
	Seconds   float64 `json:"seconds"`
	ReqPerSec float64 `json:"req_per_sec"`
	P50Ms     float64 `json:"p50_ms"`
	P90Ms     float64 `json:"p90_ms"`
	P99Ms     float64 `json:"p99_ms"`
	MaxMs     float64 `json:"max_ms"`
	// ServerCPUSeconds is the server process's CPU time during the phase,
	// from its /metrics; with ServerCPUPerReqUs it shows the cost of a
	// request apart from the load generator's own, which shares the machine.
	// Zero when /metrics did not tell.
	ServerCPUSeconds  float64 `json:"server_cpu_seconds"`
	ServerCPUPerReqUs float64 `json:"server_cpu_us_per_req"`
}

func benchAPI(cmd *cobra.Command, o benchAPIOptions) (err error) {
	ctx, stdout, stderr := cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr()
	if o.clients < 1 {
		return usageErrorf("--clients %d: must be at least 1", o.clients)
	}
	if o.duration <= 0 {
		return usageErrorf("--duration %v: must be positive", o.duration)
	}
	if (o.server == "") != (o.token == "") {
		return usageErrorf("--server and --token go together")
	}
	baseURL, token, where := strings.TrimRight(o.server, "/"), o.token, o.server
	if o.server == "" {
		c, childToken, err := startChildServer(ctx, stderr, 2*o.duration+time.Hour)
		if err != nil {
			return err
		}
		defer func() { err = errors.Join(err, c.Stop()) }()
		baseURL, token, where = c.URL(), childToken, "child process"
	}

	client := &http.Client{Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	roomID, err := apiload.CreateRoom(ctx, client, baseURL, token)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "benchmarking %s (%s), %d clients, %v per op\n", baseURL, where, o.clients, o.duration)

	report := benchReport{benchMeta: newBenchMeta(cmd, where)}
	for _, op := range []apiload.Op{apiload.OpGet, apiload.OpCreate} {
		cpuBefore, cpuErr := proc.MetricsCPU(ctx, client, baseURL)
		res, err := apiload.Run(ctx, apiload.Config{
			BaseURL: baseURL, Token: token, Clients: o.clients, Duration: o.duration, Op: op, RoomID: roomID,
		})
		if err != nil {
			return fmt.Errorf("bench %s: %w", op, err)
		}
		r := toBenchResult(res)
		if cpuAfter, err := proc.MetricsCPU(ctx, client, baseURL); cpuErr == nil && err == nil && res.Requests > 0 {
			r.ServerCPUSeconds = (cpuAfter - cpuBefore).Seconds()
			r.ServerCPUPerReqUs = r.ServerCPUSeconds / float64(res.Requests) * 1e6
		}
		report.Results = append(report.Results, r)
	}
	if err := printBenchTable(stdout, report.Results); err != nil {
		return err
	}
	if o.jsonFile != "" {
		return writeJSONFile(o.jsonFile, report)
	}
	return nil
}

func toBenchResult(r apiload.Result) benchResult {
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return benchResult{
		Op: string(r.Op), Clients: r.Clients, Requests: r.Requests, Errors: r.Errors,
		Seconds: r.Duration.Seconds(), ReqPerSec: r.ReqPerSec,
		P50Ms: ms(r.P50), P90Ms: ms(r.P90), P99Ms: ms(r.P99), MaxMs: ms(r.Max),
	}
}

func printBenchTable(w io.Writer, results []benchResult) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "op\tclients\trequests\treq/s\tp50 ms\tp90 ms\tp99 ms\tmax ms\terrors\tserver cpu µs/req\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.0f\t%.2f\t%.2f\t%.2f\t%.2f\t%d\t%.0f\t\n",
			r.Op, r.Clients, r.Requests, r.ReqPerSec, r.P50Ms, r.P90Ms, r.P99Ms, r.MaxMs, r.Errors, r.ServerCPUPerReqUs)
	}
	return tw.Flush()
}

// startChildServer runs this executable's serve command as a child process
// (bench/proc), with a fresh key passed in the environment (not argv,
// where other users could read it), and returns it with an admin token
// valid for tokenTTL. extraArgs go to serve as they are.
func startChildServer(ctx context.Context, stderr io.Writer, tokenTTL time.Duration, extraArgs ...string) (*proc.Child, string, error) {
	key, err := auth.GenerateKey()
	if err != nil {
		return nil, "", err
	}
	token, err := auth.Mint(key, auth.AdminClaims(time.Now(), tokenTTL))
	if err != nil {
		return nil, "", err
	}
	c, err := proc.StartChild(ctx, proc.ChildConfig{
		Args: func(dir, addr string) []string {
			return append([]string{"serve", "--data-dir", filepath.Join(dir, "data"), "--http-addr", addr,
				"--rtc-udp-port", "0", "--rtc-tcp-port", "0", "--log-level", "warn",
				"--drain-timeout", "0"}, extraArgs...) // the clients are gone: stop at once
		},
		Env:    []string{envName("api-key") + "=" + key.ID, envName("api-secret") + "=" + key.Secret},
		Stderr: stderr,
	})
	if err != nil {
		return nil, "", err
	}
	return c, token, nil
}

type benchMediaOptions struct {
	scenario    string
	rooms       int
	publishers  int
	subscribers int
	duration    time.Duration
	ramp        bool
	rampStart   int
	rampStep    int
	jsonFile    string
	svgFile     string
	baseline    string
	server      string
	serverPIDs  []int
	token       string
	cpuProfile  string
	joinTimeout time.Duration
	noReconnect bool

	subscribersSet bool // --subscribers was given
}

// baselineNaive is the one baseline `bench media` knows.
const baselineNaive = "naive-pion"

func newBenchMediaCmd() *cobra.Command {
	var o benchMediaOptions
	cmd := &cobra.Command{
		Use:   "media",
		Short: "Forward media through real WebRTC clients and measure the server",
		Long: `Run a media scenario (` + strings.Join(scenarios.Names(), ", ") + `, or a YAML
file) with real pion clients over loopback through Troupe's WebSocket
signaling, and report per step: packets expected and received (loss),
end-to-end latency (to the receiving client's application), path latency
(to the kernel's arrival time at the receiving client's socket: what the
server adds, without the clients' own processing), join-to-first-packet
time, the server's CPU per
forwarded packet and forwarded packets per second per core (from
/proc/PID/stat), its RSS and RSS per participant, and the clients' own CPU.

Without --server, the server is started as a child process (this
executable, on a temporary data dir and free ports) and removed at the end.
With --server, pass an admin --token and the server's --server-pid to get
its CPU and memory figures. --server may be any node of a cluster: the
rooms are created through it, placed as the cluster places them, and every
client joins through it; give every node's process id to --server-pid
(comma-separated or repeated) for the cluster's CPU and memory, summed.
--server may list several nodes, comma-separated: the first takes the
calls and the joins, and a client that reconnects tries the others too.

A client whose connection is lost (a node died, the server dropped its
rooms) joins again by itself, as docs/signaling.md tells clients to, with
jittered backoff; each step reports the reconnections and the time
without media since the run began. --no-reconnect keeps lost clients out
instead, so that a loss shows only as lost packets.

--ramp adds subscribers step by step until loss passes 1% or end-to-end
p99 latency 100 ms, and reports the capacity: the scenario's ramp, or
--ramp-step N from N (or from --ramp-start) up to --subscribers, the last
step. --baseline naive-pion runs the same scenario against a
forwarder written like pion's examples, as a child process, and prints the
ratio of their CPU per packet.

The simulcast scenario's subscribers come in classes (a size asked for,
a link capped on the client's socket, a cut of it partway through each
step): each step also gets a row per class with the bitrate received
against the cap, the layers received, layer switches, the time to switch
down after a cut and back up after its end, pauses, loss and latency.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.subscribersSet = cmd.Flags().Changed("subscribers")
			return benchMedia(cmd, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.scenario, "scenario", "video-fanout", "scenario name or YAML file")
	f.IntVar(&o.rooms, "rooms", 0, "rooms (default: the scenario's)")
	f.IntVar(&o.publishers, "publishers", 0, "publishers per room (default: the scenario's)")
	f.IntVar(&o.subscribers, "subscribers", 0, "subscribers per room; with --ramp, the last step (default: the scenario's)")
	f.DurationVar(&o.duration, "duration", 0, "measured time of each step (default: the scenario's)")
	f.BoolVar(&o.ramp, "ramp", false, "add subscribers step by step until loss > 1% or p99 > 100 ms")
	f.IntVar(&o.rampStart, "ramp-start", 0, "subscribers per room of the ramp's first step (default: --ramp-step if given, else the scenario's)")
	f.IntVar(&o.rampStep, "ramp-step", 0, "subscribers added per ramp step (default: the scenario's)")
	f.StringVar(&o.jsonFile, "json", "", "write the steps to this file as JSON, with the build, the machine and the command line")
	f.StringVar(&o.svgFile, "svg", "", "write a chart of CPU per packet and p99 latency to this SVG file")
	f.StringVar(&o.baseline, "baseline", "", "also run a baseline: "+baselineNaive)
	f.StringVar(&o.server, "server", "", "base URL of a running server, or a cluster's nodes' comma-separated (default: start one)")
	f.IntSliceVar(&o.serverPIDs, "server-pid", nil, "process id of --server, for its CPU and memory; a cluster's nodes' ids, comma-separated or repeated, for their sums")
	f.StringVar(&o.token, "token", "", "admin token for --server")
	f.StringVar(&o.cpuProfile, "cpu-profile", "", "write the child server's CPU profile to this file")
	f.DurationVar(&o.joinTimeout, "join-timeout", mediaload.DefaultJoinTimeout, "how long each step waits for everyone's media")
	f.BoolVar(&o.noReconnect, "no-reconnect", false, "a client whose connection is lost stays out instead of joining again")
	return cmd
}

func benchMedia(cmd *cobra.Command, o benchMediaOptions) (err error) {
	ctx, stdout, stderr := cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr()
	sc, steps, note, err := o.plan()
	if err != nil {
		return err
	}
	if (o.server == "") != (o.token == "") {
		return usageErrorf("--server and --token go together")
	}
	if o.server == "" && len(o.serverPIDs) > 0 {
		return usageErrorf("--server-pid needs --server")
	}
	if o.server != "" && o.cpuProfile != "" {
		return usageErrorf("--cpu-profile profiles the child server: not with --server")
	}
	if o.baseline != "" && o.baseline != baselineNaive {
		return usageErrorf("--baseline %q: the only baseline is %s", o.baseline, baselineNaive)
	}
	// The admin token outlives the planned steps by an hour.
	ttl := time.Duration(len(steps))*(sc.Duration+o.joinTimeout) + time.Hour
	target := mediaload.Target{Name: "troupe", Token: o.token, PIDs: o.serverPIDs}
	if o.server != "" {
		urls := strings.Split(o.server, ",")
		for i, u := range urls {
			u = strings.TrimRight(strings.TrimSpace(u), "/")
			if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
				return usageErrorf("--server %q: each URL must start with http:// or https://", urls[i])
			}
			urls[i] = u
		}
		target.BaseURL, target.MoreURLs = urls[0], urls[1:]
	}
	where := o.server
	if o.server == "" {
		var extra []string
		if o.cpuProfile != "" {
			abs, err := filepath.Abs(o.cpuProfile)
			if err != nil {
				return err
			}
			extra = []string{"--cpu-profile", abs}
		}
		c, childToken, err := startChildServer(ctx, stderr, ttl, extra...)
		if err != nil {
			return err
		}
		defer func() { err = errors.Join(err, c.Stop()) }()
		target.BaseURL, target.Token, target.PIDs, where = c.URL(), childToken, []int{c.PID()}, "child process"
	}
	fmt.Fprintf(stdout, "scenario %s: %s\n", sc.Name, sc.Description)
	if o.ramp {
		fmt.Fprintf(stdout, "%d room(s), %d publisher(s) per room; ramp of %s subscribers per room, until loss > 1%% or end-to-end p99 > 100 ms; %v per step\n",
			sc.Rooms, sc.Publishers, joinInts(steps), sc.Duration)
	} else {
		fmt.Fprintf(stdout, "%d room(s), %d publisher(s) and %d subscriber(s) per room, for %v\n",
			sc.Rooms, sc.Publishers, steps[0], sc.Duration)
	}
	if note != "" {
		fmt.Fprintln(stdout, note)
	}
	fmt.Fprintf(stdout, "server %s (%s), %d CPUs, %s\n", target.BaseURL, where, runtime.NumCPU(), runtime.Version())
	if len(target.PIDs) == 0 {
		fmt.Fprintln(stdout, "no --server-pid: server CPU and memory are not measured")
	}
	run := func(t mediaload.Target) (mediaload.Result, error) {
		return mediaload.Run(ctx, mediaload.Config{
			Target: t, Scenario: sc, Steps: steps, StopBeyondLimits: o.ramp,
			JoinTimeout: o.joinTimeout, Progress: stderr, ProgressInPlace: isTerminal(stderr), NoReconnect: o.noReconnect,
			Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		})
	}
	res, err := run(target)
	if err != nil {
		return fmt.Errorf("bench media: %w", err)
	}
	all := res.Steps
	if err := mediaload.WriteTable(stdout, res.Steps); err != nil {
		return err
	}
	printCapacity(stdout, "troupe", o.ramp, res)

	if o.baseline == baselineNaive {
		base, err := runNaive(ctx, stderr, run)
		if err != nil {
			return err
		}
		all = append(all, base.Steps...)
		if err := mediaload.WriteTable(stdout, base.Steps); err != nil {
			return err
		}
		printCapacity(stdout, baselineNaive, o.ramp, base)
		fmt.Fprintln(stdout)
		if err := mediaload.WriteComparison(stdout, res.Steps, base.Steps); err != nil {
			return err
		}
	}
	if o.jsonFile != "" {
		if all == nil {
			all = []mediaload.Step{}
		}
		if err := writeJSONFile(o.jsonFile, benchMediaReport{benchMeta: newBenchMeta(cmd, where), Steps: all}); err != nil {
			return err
		}
	}
	if o.svgFile != "" {
		title := fmt.Sprintf("%s on %d CPUs: server CPU per forwarded packet and p99 latency", sc.Name, runtime.NumCPU())
		if err := mediaload.WriteSVGFile(o.svgFile, title, all); err != nil {
			return fmt.Errorf("write --svg: %w", err)
		}
	}
	return nil
}

// plan applies the flags to the scenario and returns the subscriber
// counts of the steps, and a note to print if the ramp is not what the
// flags may lead one to expect.
func (o benchMediaOptions) plan() (_ scenarios.Scenario, steps []int, note string, _ error) {
	sc, err := scenarios.Load(o.scenario)
	if errors.Is(err, scenarios.ErrUnknown) {
		// A name that is no scenario is a wrong option, as --clients 0 is.
		return sc, nil, "", usageError{fmt.Errorf("--scenario: %w", err)}
	}
	if err != nil {
		return sc, nil, "", err
	}
	ov := scenarios.Overrides{Rooms: o.rooms, Publishers: o.publishers, Duration: o.duration}
	if !o.ramp {
		ov.Subscribers, ov.SubscribersSet = o.subscribers, o.subscribersSet
		if o.rampStep != 0 || o.rampStart != 0 {
			return sc, nil, "", usageErrorf("--ramp-start and --ramp-step go with --ramp")
		}
	}
	if sc, err = sc.With(ov); err != nil {
		return sc, nil, "", err
	}
	if !o.ramp {
		return sc, []int{sc.Subscribers}, "", nil
	}
	if o.subscribersSet {
		sc.Ramp.Max = o.subscribers
	}
	if o.rampStep < 0 || o.rampStart < 0 {
		return sc, nil, "", usageErrorf("--ramp-start and --ramp-step must be positive")
	}
	if o.rampStep != 0 {
		// The ramp climbs from the step given: --ramp-step 2 --subscribers 6
		// is 2, 4, 6, whatever the scenario's own start.
		sc.Ramp.Step, sc.Ramp.Start = o.rampStep, o.rampStep
	}
	if o.rampStart != 0 {
		sc.Ramp.Start = o.rampStart
	}
	if sc.Ramp.Start > sc.Ramp.Max {
		note = fmt.Sprintf("note: the ramp has one step: --subscribers %d is below its first step (%d); --ramp-step N climbs N, 2N, ... up to it",
			sc.Ramp.Max, sc.Ramp.Start)
		sc.Ramp.Start = sc.Ramp.Max
	}
	if err := sc.Validate(); err != nil {
		return sc, nil, "", err
	}
	return sc, sc.Ramp.Steps(), note, nil
}

// joinInts writes 2, 4, 6.
func joinInts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ", ")
}

// isTerminal reports whether w is a terminal, where a progress line can be
// rewritten in place.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func printCapacity(w io.Writer, server string, ramp bool, res mediaload.Result) {
	if !ramp {
		return
	}
	if res.Limited {
		fmt.Fprintf(w, "%s capacity: %d subscribers within 1%% loss and 100 ms p99\n", server, res.Capacity)
		return
	}
	fmt.Fprintf(w, "%s capacity: at least %d subscribers (the ramp's last step was within the limits)\n", server, res.Capacity)
}

// runNaive starts the naive forwarder as a child process and runs the
// same steps against it.
func runNaive(ctx context.Context, stderr io.Writer, run func(mediaload.Target) (mediaload.Result, error)) (_ mediaload.Result, err error) {
	c, err := proc.StartChild(ctx, proc.ChildConfig{
		Args: func(_, addr string) []string {
			return []string{"bench", "naive-server", "--http-addr", addr}
		},
		Stderr: stderr,
	})
	if err != nil {
		return mediaload.Result{}, fmt.Errorf("baseline: %w", err)
	}
	defer func() { err = errors.Join(err, c.Stop()) }()
	res, err := run(mediaload.Target{Name: baselineNaive, BaseURL: c.URL(), PIDs: []int{c.PID()}})
	if err != nil {
		return res, fmt.Errorf("bench media (%s): %w", baselineNaive, err)
	}
	return res, nil
}

// newBenchNaiveServerCmd is the baseline's process: hidden, since it is
// only started by `bench media --baseline naive-pion`.
func newBenchNaiveServerCmd() *cobra.Command {
	var addr string
	cmd := &cobra.Command{
		Use:    "naive-server",
		Short:  "Serve the naive pion forwarder (the media benchmark's baseline)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))
			return naive.ListenAndServe(cmd.Context(), addr, naive.Config{Logger: log})
		},
	}
	cmd.Flags().StringVar(&addr, "http-addr", "127.0.0.1:7890", "host:port to serve on")
	return cmd
}
