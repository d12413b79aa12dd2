package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/troupe-media/troupe/bench/proc"
	"github.com/troupe-media/troupe/httpapi"
	"github.com/troupe-media/troupe/httpapi/auth"
)

// Defaults of Config.
const (
	DefaultNodes    = 3
	DefaultLeaseTTL = 2 * time.Second
	// RequiredEnv, set to 1, makes a missing etcd fail the test instead of
	// skipping it: CI sets it, where the cluster suite must run.
	RequiredEnv = "TROUPE_CLUSTER_TESTS"
	// logLines is how much of each process's log a failed test shows.
	logLines = 200
	// tokenTTL bounds the rig's admin token: longer than any test.
	tokenTTL = 6 * time.Hour
)

// Config describes a cluster to start.
type Config struct {
	// Exe is the troupe executable (BuildTroupe makes one). Required.
	Exe string
	// Nodes is how many nodes start with the cluster; DefaultNodes when 0.
	Nodes int
	// LeaseTTL is every node's --cluster-lease-ttl; DefaultLeaseTTL when 0.
	LeaseTTL time.Duration
	// Args are added to every node's `troupe serve` arguments, such as
	// --webhook-allow-private for a webhook receiver on loopback.
	Args []string
	// Profile serves each node's Go profiler (--debug-addr) on a port of
	// its address, at Node.DebugURL.
	Profile bool
}

// Cluster is an etcd and troupe nodes, each a process of its own, that
// belong to one test.
type Cluster struct {
	tb     testing.TB
	cfg    Config
	dir    string
	etcd   *Etcd
	key    auth.Key
	token  string
	client *http.Client

	mu       sync.Mutex // guards the following
	nodes    []*Node    // in the order they started, dead ones included
	procs    []*process // every process started, etcd first
	numbered int        // node numbers given so far
}

// Start starts etcd and cfg.Nodes nodes and returns once every node is
// ready. Everything is stopped when the test ends. Without an etcd binary
// the test is skipped, or fails when RequiredEnv is set.
func Start(tb testing.TB, cfg Config) *Cluster {
	tb.Helper()
	etcdExe := RequireEtcd(tb)
	if cfg.Exe == "" {
		tb.Fatal("cluster: Config.Exe is required")
	}
	if cfg.Nodes == 0 {
		cfg.Nodes = DefaultNodes
	}
	if cfg.LeaseTTL == 0 {
		cfg.LeaseTTL = DefaultLeaseTTL
	}
	if cfg.Nodes < 0 || cfg.LeaseTTL < time.Second || cfg.LeaseTTL%time.Second != 0 {
		tb.Fatalf("cluster: %d nodes with a lease TTL of %v: want at least 0 nodes and a TTL of whole seconds, at least 1s", cfg.Nodes, cfg.LeaseTTL)
	}
	key, err := auth.GenerateKey()
	if err != nil {
		tb.Fatal(err)
	}
	token, err := auth.Mint(key, auth.AdminClaims(time.Now(), tokenTTL))
	if err != nil {
		tb.Fatal(err)
	}
	c := &Cluster{
		tb: tb, cfg: cfg, dir: tb.TempDir(), key: key, token: token,
		client: newHTTPClient(),
	}
	tb.Cleanup(c.cleanup)
	c.etcd, err = startEtcd(tb.Context(), etcdExe, c.dir, filepath.Join(c.dir, "etcd.log"), c.client)
	if c.etcd != nil {
		c.procs = append(c.procs, c.etcd.proc)
	}
	if err != nil {
		tb.Fatal(err)
	}
	for range cfg.Nodes {
		c.AddNode()
	}
	return c
}

// newHTTPClient is the rig's client: keep-alive connections enough for a
// load of concurrent requests to every node.
func newHTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 64
	return &http.Client{Timeout: 10 * time.Second, Transport: t}
}

// RequireEtcd returns the etcd executable; without one it skips the test,
// or fails it when RequiredEnv is set.
func RequireEtcd(tb testing.TB) string {
	tb.Helper()
	exe, err := FindEtcd()
	if err != nil {
		if os.Getenv(RequiredEnv) == "1" {
			tb.Fatalf("%v (%s=1 requires the cluster suite)", err, RequiredEnv)
		}
		tb.Skipf("cluster suite skipped: %v", err)
	}
	return exe
}

// cleanup stops every process, newest first, and fails the test for a
// process that exited by itself, would not stop, or whose log shows a
// panic or a data race; when the test failed, it shows every log.
func (c *Cluster) cleanup() {
	c.client.CloseIdleConnections()
	c.mu.Lock()
	procs := append([]*process(nil), c.procs...)
	c.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		if err := procs[i].stop(); err != nil {
			c.tb.Error(err)
		}
	}
	for _, p := range procs {
		bad, err := troubles(p.logPath)
		if err != nil {
			c.tb.Errorf("cluster: read %s's log: %v", p.name, err)
		}
		for _, line := range bad {
			c.tb.Errorf("cluster: %s's log: %s", p.name, line)
		}
	}
	if c.tb.Failed() {
		for _, p := range procs {
			c.tb.Logf("---- %s (pid %d) log, %s:\n%s", p.name, p.pid(), p.logPath, tail(p.logPath, logLines))
		}
	}
}

// Etcd is the cluster's etcd.
func (c *Cluster) Etcd() *Etcd { return c.etcd }

// Token is an admin token for every node's REST API.
func (c *Cluster) Token() string { return c.token }

// Key is the key pair every node shares.
func (c *Cluster) Key() auth.Key { return c.key }

// LeaseTTL is the nodes' lease TTL.
func (c *Cluster) LeaseTTL() time.Duration { return c.cfg.LeaseTTL }

// Nodes lists every node started, in order, dead ones included.
func (c *Cluster) Nodes() []*Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*Node(nil), c.nodes...)
}

// Live lists the nodes that have not been killed or stopped.
func (c *Cluster) Live() []*Node {
	var out []*Node
	for _, n := range c.Nodes() {
		if n.proc.alive() {
			out = append(out, n)
		}
	}
	return out
}

// AddNode starts one more node, node-N on 127.0.0.(N+1), and returns it
// once it is ready; it fails the test if the node does not start.
func (c *Cluster) AddNode() *Node {
	c.tb.Helper()
	n, err := c.startNode(c.tb.Context())
	if err != nil {
		c.tb.Fatal(err)
	}
	return n
}

func (c *Cluster) startNode(ctx context.Context) (*Node, error) {
	c.mu.Lock()
	c.numbered++
	i := c.numbered
	c.mu.Unlock()
	if i > 250 {
		return nil, errors.New("cluster: no loopback address left for another node")
	}
	n := &Node{ID: "node-" + strconv.Itoa(i), IP: "127.0.0." + strconv.Itoa(i+1)}
	port, err := freePort(n.IP)
	if err != nil {
		return nil, err
	}
	n.URL = "http://" + n.IP + ":" + strconv.Itoa(port)
	if err := c.launch(ctx, n); err != nil {
		return nil, err
	}
	return n, nil
}

// Restart starts node n again after it was killed or stopped, as an
// operator restarts a machine: the same id, address and data dir, in a
// new process. It returns once the node is ready.
func (c *Cluster) Restart(n *Node) error {
	c.tb.Helper()
	if n.Alive() {
		return fmt.Errorf("cluster: %s is running", n.ID)
	}
	return c.launch(c.tb.Context(), n)
}

// launch runs `troupe serve` as node n, at n.URL, with its data in the
// cluster's dir, and waits for it to be ready.
func (c *Cluster) launch(ctx context.Context, n *Node) error {
	addr := strings.TrimPrefix(n.URL, "http://")
	dir := filepath.Join(c.dir, n.ID)
	args := append([]string{"serve",
		"--data-dir", dir,
		"--http-addr", addr,
		"--rtc-bind", n.IP, "--rtc-udp-port", "0", "--rtc-tcp-port", "0",
		"--drain-timeout", "0",
		"--etcd-endpoints", c.etcd.Endpoint(),
		"--node-id", n.ID,
		"--cluster-lease-ttl", c.cfg.LeaseTTL.String(),
		"--log-level", "info",
	}, c.cfg.Args...)
	if c.cfg.Profile {
		dport, err := freePort(n.IP)
		if err != nil {
			return err
		}
		daddr := n.IP + ":" + strconv.Itoa(dport)
		n.DebugURL = "http://" + daddr
		args = append(args, "--debug-addr", daddr)
	}
	// The key pair goes in the environment, where other users cannot read
	// it as they could argv.
	env := []string{"TROUPE_API_KEY=" + c.key.ID, "TROUPE_API_SECRET=" + c.key.Secret}
	// A restarted node's log goes on in a file of its own.
	logPath := filepath.Join(c.dir, n.ID+".log")
	if n.proc != nil {
		logPath = filepath.Join(c.dir, fmt.Sprintf("%s.%d.log", n.ID, time.Now().UnixNano()))
	}
	p, err := startProcess(n.ID, c.cfg.Exe, args, env, logPath)
	if err != nil {
		return err
	}
	c.mu.Lock()
	if n.proc == nil {
		c.nodes = append(c.nodes, n)
	}
	n.proc = p
	c.procs = append(c.procs, p)
	c.mu.Unlock()
	return p.waitReady(ctx, func(ctx context.Context) bool {
		return httpOK(ctx, c.client, n.URL+"/readyz", "")
	})
}

// Response is a REST call's answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into v.
func (r Response) JSON(v any) error {
	if err := json.Unmarshal(r.Body, v); err != nil {
		return fmt.Errorf("cluster: decode %s: %w", r.Body, err)
	}
	return nil
}

// Do sends an admin REST call to node n (body, if not nil, as JSON) with
// the given extra headers (name, value, name, value...).
func (c *Cluster) Do(ctx context.Context, n *Node, method, path string, body any, headers ...string) (Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return Response{}, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, n.URL+path, rd)
	if err != nil {
		return Response{}, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return c.Send(req)
}

// Send sends req with the rig's client and reads the whole answer.
func (c *Cluster) Send(req *http.Request) (Response, error) {
	resp, err := c.client.Do(req)
	if err != nil {
		return Response{}, fmt.Errorf("cluster: %s %s: %w", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return Response{}, fmt.Errorf("cluster: %s %s: %w", req.Method, req.URL, err)
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: data}, nil
}

// Expect is Do that fails the test unless the node answers want; it
// returns the body.
func (c *Cluster) Expect(n *Node, want int, method, path string, body any) Response {
	c.tb.Helper()
	resp, err := c.Do(context.Background(), n, method, path, body)
	if err != nil {
		c.tb.Fatal(err)
	}
	if resp.Status != want {
		c.tb.Fatalf("%s %s%s: %d %s, want %d", method, n.ID, path, resp.Status, bytes.TrimSpace(resp.Body), want)
	}
	return resp
}

// Owner finds the node that runs room: the one live node that answers a
// request for it without forwarding it. A room no live node owns is
// claimed by the first live node asked, as any request for it would.
func (c *Cluster) Owner(ctx context.Context, room string) (*Node, error) {
	var seen []string
	path := "/api/v1/rooms/" + room + "/participants"
	for _, n := range c.Live() {
		// Signed as a node's forward, so that the node answers it itself.
		fwd := http.Header{}
		httpapi.SignForward(fwd, c.key, "rig", http.MethodGet, path, time.Now())
		resp, err := c.Do(ctx, n, http.MethodGet, path, nil,
			httpapi.ForwardedByHeader, fwd.Get(httpapi.ForwardedByHeader), httpapi.ForwardAuthHeader, fwd.Get(httpapi.ForwardAuthHeader))
		if err != nil {
			return nil, err
		}
		if resp.Status == http.StatusOK {
			return n, nil
		}
		seen = append(seen, fmt.Sprintf("%s: %d %s", n.ID, resp.Status, bytes.TrimSpace(resp.Body)))
	}
	return nil, fmt.Errorf("cluster: no live node runs room %s (%s)", room, strings.Join(seen, "; "))
}

// JoinToken mints a join token for room through node n.
func (c *Cluster) JoinToken(ctx context.Context, n *Node, room, identity, role string) (string, error) {
	resp, err := c.Do(ctx, n, http.MethodPost, "/api/v1/rooms/"+room+"/tokens",
		map[string]any{"identity": identity, "name": identity, "role": role, "ttl": 3600})
	if err != nil {
		return "", err
	}
	if resp.Status != http.StatusOK {
		return "", fmt.Errorf("cluster: token for %s in %s through %s: %d %s", identity, room, n.ID, resp.Status, resp.Body)
	}
	var tok struct {
		Token string `json:"token"`
	}
	if err := resp.JSON(&tok); err != nil {
		return "", err
	}
	return tok.Token, nil
}

// Node is one troupe process of the cluster.
type Node struct {
	// ID is its --node-id, node-1, node-2...
	ID string
	// IP is the loopback address its HTTP API and its media port are
	// bound to: 127.0.0.2 for node-1, and so on.
	IP string
	// URL is its HTTP API and advertise URL, like http://127.0.0.2:40123.
	URL string
	// DebugURL serves its /debug/pprof/ when Config.Profile is set.
	DebugURL string

	proc *process
}

// PID is the node's process id.
func (n *Node) PID() int { return n.proc.pid() }

// Alive reports whether the node's process runs (paused counts).
func (n *Node) Alive() bool { return n.proc.alive() }

// Kill ends the node with SIGKILL, as a machine that lost power: it
// releases nothing, its lease expires in etcd after the TTL.
func (n *Node) Kill() { n.proc.kill() }

// Pause freezes the node with SIGSTOP.
func (n *Node) Pause() error { return n.proc.pause() }

// Resume continues the node after Pause.
func (n *Node) Resume() error { return n.proc.resume() }

// Stop ends the node as an operator would, with SIGTERM, and reports a
// node that did not stop cleanly.
func (n *Node) Stop() error { return n.proc.stop() }

// LogPath is the node's log file.
func (n *Node) LogPath() string { return n.proc.logPath }

// Metric reads an unlabelled gauge or counter from node n's /metrics.
func (c *Cluster) Metric(ctx context.Context, n *Node, name string) (float64, error) {
	v, err := proc.Metric(ctx, c.client, n.URL, name)
	if err != nil {
		return 0, fmt.Errorf("cluster: %s: %w", n.ID, err)
	}
	return v, nil
}

// NodeIDs lists the nodes that node n's GET /api/v1/cluster/nodes names.
func (c *Cluster) NodeIDs(ctx context.Context, n *Node) ([]string, error) {
	resp, err := c.Do(ctx, n, http.MethodGet, "/api/v1/cluster/nodes", nil)
	if err != nil {
		return nil, err
	}
	if resp.Status != http.StatusOK {
		return nil, fmt.Errorf("cluster: %s lists nodes: %d %s", n.ID, resp.Status, resp.Body)
	}
	var body struct {
		Nodes []struct {
			ID string `json:"id"`
		} `json:"nodes"`
	}
	if err := resp.JSON(&body); err != nil {
		return nil, err
	}
	ids := make([]string, len(body.Nodes))
	for i, x := range body.Nodes {
		ids[i] = x.ID
	}
	return ids, nil
}
