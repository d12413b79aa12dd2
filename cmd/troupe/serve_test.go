package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/troupe-media/troupe/bench/proc"
	"github.com/troupe-media/troupe/httpapi"
	"github.com/troupe-media/troupe/httpapi/auth"
	"github.com/troupe-media/troupe/internal/leaktest"
	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/internal/syncbuf"
)

// mainEnv makes the test binary act as the troupe binary, so tests can run
// it as a child process (exit codes, `bench api`'s server).
const mainEnv = "TROUPETEST_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(mainEnv) == "1" {
		main()
		os.Exit(0)
	}
	leaktest.VerifyTestMain(m)
}

type testServer struct {
	t      testing.TB
	url    string
	addr   string
	token  string
	key    auth.Key        // the key the server signs with: of its cluster
	out    *syncbuf.Buffer // stdout
	log    *syncbuf.Buffer // stderr: the logs
	client *http.Client
	cancel context.CancelFunc
	done   chan error
}

func testConfig(dataDir string) Config {
	cfg := DefaultConfig()
	cfg.DataDir = dataDir
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.RTCUDPPort = 0 // tests run side by side
	cfg.RTCTCPPort = 0
	cfg.TURNUDPPort, cfg.TURNTLSPort = 0, 0 // used when a test enables TURN
	cfg.LogLevel = "error"
	cfg.DrainTimeout = 0 // stop at once; the drain tests set their own
	// A bound against a hang, not the 2 s a server answers within: a
	// loaded machine made room requests miss the default (503).
	cfg.RequestTimeout = 10 * time.Second
	return cfg
}

// startServer runs the server on a loopback port and waits until it is ready.
func startServer(t *testing.T, cfg Config) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return startServerOn(t, cfg, ln)
}

func startServerOn(t *testing.T, cfg Config, ln net.Listener) *testServer {
	t.Helper()
	return startServerWith(t, cfg, ln, &http.Transport{})
}

// startServerWith starts the server with the client transport given, one
// that trusts the server's certificate when cfg serves TLS.
func startServerWith(t *testing.T, cfg Config, ln net.Listener, transport *http.Transport) *testServer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &testServer{
		t: t, addr: ln.Addr().String(), url: cfg.scheme() + "://" + ln.Addr().String(),
		out: &syncbuf.Buffer{}, log: &syncbuf.Buffer{}, client: &http.Client{Transport: transport, Timeout: poll.Timeout},
		cancel: cancel, done: make(chan error, 1),
	}
	go func() { s.done <- run(ctx, cfg, ln, s.out, s.log) }()
	t.Cleanup(func() { s.stop() })

	poll.Until(t, "the server to be ready", func() bool {
		resp, err := s.client.Get(s.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true
			}
		}
		select {
		case err := <-s.done:
			s.done <- err
			t.Fatalf("server stopped before ready: %v", err)
		default:
		}
		return false
	})
	var err error
	key, ok := cfg.configuredKey()
	if !ok {
		if key, err = loadKey(cfg.DataDir); err != nil {
			t.Fatal(err)
		}
	}
	s.key = key
	if s.token, err = auth.Mint(key, auth.AdminClaims(time.Now(), time.Hour)); err != nil {
		t.Fatal(err)
	}
	return s
}

// forwardedBy marks h as node from's forward of method path to s, signed
// with s's key as a node of its cluster would.
func (s *testServer) forwardedBy(h http.Header, from, method, path string) http.Header {
	httpapi.SignForward(h, s.key, from, method, path, time.Now())
	return h
}

// stop cancels the server as SIGTERM would and returns what run returned.
func (s *testServer) stop() error {
	if s.cancel == nil {
		return nil
	}
	s.cancel()
	s.cancel = nil
	s.client.CloseIdleConnections()
	select {
	case err := <-s.done:
		return err
	case <-time.After(40 * time.Second):
		s.t.Fatal("server did not stop")
		return nil
	}
}

// request sends an API request with the headers of header besides the
// admin token (and a JSON Content-Type for a body), and returns the
// response, its body read.
func (s *testServer) request(method, path, body string, header http.Header) (*http.Response, []byte) {
	s.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, s.url+path, r)
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for name, vals := range header {
		req.Header[name] = vals
	}
	resp, err := s.client.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	return resp, data
}

// do sends an API request and returns the status and the decoded body.
func (s *testServer) do(method, path, body string) (int, any) {
	s.t.Helper()
	resp, data := s.request(method, path, body, nil)
	var v any
	if len(data) > 0 {
		if err := json.Unmarshal(data, &v); err != nil {
			s.t.Fatalf("%s %s: body %q: %v", method, path, data, err)
		}
	}
	return resp.StatusCode, v
}

func (s *testServer) mustDo(want int, method, path, body string) map[string]any {
	s.t.Helper()
	status, v := s.do(method, path, body)
	if status != want {
		s.t.Fatalf("%s %s: status %d, want %d: %v", method, path, status, want, v)
	}
	m, _ := v.(map[string]any)
	return m
}

// mustList is mustDo for a body that is a JSON array (the live
// participants).
func (s *testServer) mustList(want int, method, path string) []any {
	s.t.Helper()
	status, v := s.do(method, path, "")
	l, ok := v.([]any)
	if status != want || !ok {
		s.t.Fatalf("%s %s: status %d, want %d with an array: %v", method, path, status, want, v)
	}
	return l
}

// metric reads an unlabelled gauge or counter from s's /metrics.
func (s *testServer) metric(name string) float64 {
	s.t.Helper()
	v, err := proc.Metric(context.Background(), s.client, s.url, name)
	if err != nil {
		s.t.Fatal(err)
	}
	return v
}

// join opens a signaling socket on s, with header (nil for none), and
// sends a join with tok; it returns the socket, closed at the end of the
// test if not before, and the server's first answer.
func (s *testServer) join(ctx context.Context, tok string, header http.Header) (*websocket.Conn, []byte) {
	s.t.Helper()
	// http://host becomes ws://host, https://host wss://host.
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(s.url, "http")+"/rtc",
		&websocket.DialOptions{HTTPClient: s.client, HTTPHeader: header})
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { ws.CloseNow() })
	if err := ws.Write(ctx, websocket.MessageText, []byte(`{"type":"join","token":"`+tok+`"}`)); err != nil {
		s.t.Fatal(err)
	}
	_, msg, err := ws.Read(ctx)
	if err != nil {
		s.t.Fatalf("read the answer to join: %v", err)
	}
	return ws, msg
}

func TestFirstStartCreatesKeyLaterStartsReuseIt(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s := startServer(t, testConfig(dir))
	assertMode(t, dir, 0o700|os.ModeDir)
	assertMode(t, filepath.Join(dir, keysFile), 0o600)
	key, err := loadKey(dir)
	if err != nil {
		t.Fatal(err)
	}

	// The banner's admin token works against the server, as its curl line says.
	banner := s.out.String()
	var token string
	for _, line := range strings.Split(banner, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "export TOKEN="); ok {
			token = v
		}
	}
	if token == "" || !strings.Contains(banner, `curl -H "Authorization: Bearer $TOKEN" `+s.url+"/api/v1/rooms") {
		t.Fatalf("banner lacks a token or curl line:\n%s", banner)
	}
	verifier, _ := auth.NewVerifier(key)
	if c, err := verifier.Verify(token); err != nil || !c.Admin || time.Until(c.ExpiresAt.Time) < 23*time.Hour {
		t.Fatalf("banner token: claims %+v, err %v", c, err)
	}
	s.token = token
	s.mustDo(http.StatusOK, http.MethodGet, "/api/v1/rooms", "")
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}

	// A later start prints no token, to stdout or to the logs, where it would
	// be kept by whatever collects them; it logs where the key is and how
	// to mint a token.
	cfg := testConfig(dir)
	cfg.LogFormat, cfg.LogLevel = "json", "info"
	s2 := startServer(t, cfg)
	if again, err := loadKey(dir); err != nil || again != key {
		t.Fatalf("second start changed the key (err %v)", err)
	}
	s2.token = token // minted before the restart, still valid
	s2.mustDo(http.StatusOK, http.MethodGet, "/api/v1/rooms", "")
	if err := s2.stop(); err != nil {
		t.Fatal(err)
	}
	if out := s2.out.String(); out != "" {
		t.Fatalf("a later start printed %q", out)
	}
	logs := s2.log.String()
	if strings.Contains(logs, "eyJ") {
		t.Fatalf("a later start logged a token:\n%s", logs)
	}
	var told bool
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec["level"] == "INFO" && rec["file"] == filepath.Join(dir, keysFile) &&
			rec["mint_token"] == "troupe token --data-dir "+dir+" --admin" {
			told = true
		}
	}
	if !told {
		t.Fatalf("no info record says where the key is and how to mint a token:\n%s", logs)
	}
}

// /metrics carries the collectors serve registers next to httpapi's own.
func TestMetricsWiring(t *testing.T) {
	s := startServer(t, testConfig(t.TempDir()))
	s.mustDo(http.StatusCreated, http.MethodPost, "/api/v1/rooms", `{"name":"metered"}`)
	body := metricsText(t, s)
	for _, family := range []string{
		"go_goroutines",                // Go collector
		"process_cpu_seconds_total",    // process collector
		"troupe_pebble_wal_size_bytes", // the store's collector
		"troupe_room_actors",           // actors, registered on the same registry
		"troupe_http_requests_total",   // httpapi
	} {
		if !strings.Contains(body, "\n"+family) {
			t.Errorf("/metrics lacks %s", family)
		}
	}
	b := currentBuild()
	buildInfo := fmt.Sprintf("\ntroupe_build_info{go_version=%q,revision=%q,version=%q} 1\n", b.GoVersion, b.Revision, b.Version)
	if !strings.Contains(body, buildInfo) {
		t.Errorf("/metrics lacks %s", strings.TrimSpace(buildInfo))
	}
}

// --debug-addr serves the profiler on its own port, never on the API's,
// without the command line, which may hold the API secret.
func TestDebugAddrServesProfiler(t *testing.T) {
	debugAddr := freeAddr(t)
	cfg := testConfig(t.TempDir())
	cfg.DebugAddr = debugAddr
	s := startServer(t, cfg)
	for _, c := range []struct {
		url  string
		want int
	}{
		{"http://" + debugAddr + "/debug/pprof/goroutine?debug=1", http.StatusOK},
		{"http://" + debugAddr + "/debug/pprof/cmdline", http.StatusNotFound},
		{s.url + "/debug/pprof/goroutine?debug=1", http.StatusNotFound},
	} {
		if got, _ := s.get(c.url); got != c.want {
			t.Errorf("GET %s: %d, want %d", c.url, got, c.want)
		}
	}
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.client.Get("http://" + debugAddr + "/debug/pprof/"); err == nil {
		t.Error("profiler still serving after shutdown")
	}
}

// get GETs url, without a token, and returns the status and the body.
func (s *testServer) get(url string) (int, []byte) {
	s.t.Helper()
	resp, err := s.client.Get(url)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	return resp.StatusCode, body
}

func TestConfiguredKeyIsNotSaved(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	cfg := testConfig(dir)
	cfg.APIKey, cfg.APISecret = "TKconfigured", strings.Repeat("k", 32)
	s := startServer(t, cfg)
	s.mustDo(http.StatusOK, http.MethodGet, "/api/v1/rooms", "")
	if _, err := os.Stat(filepath.Join(dir, keysFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("keys.json written for a configured key: %v", err)
	}
	if strings.Contains(s.out.String(), "export TOKEN=") {
		t.Fatal("banner printed an admin token for an operator's key")
	}
}

func TestRestartKeepsRooms(t *testing.T) {
	dir := t.TempDir()
	// The rooms' links are on the public URL, not on the port each start
	// happens to get.
	cfg := testConfig(dir)
	cfg.PublicURL = "https://meet.example.com"
	s := startServer(t, cfg)
	for i, name := range []string{"one", "two", "three", "four"} {
		s.mustDo(http.StatusCreated, http.MethodPost, "/api/v1/rooms",
			fmt.Sprintf(`{"id":"room_%d","name":%q,"config":{"max_participants":%d,"quality":"1080p"}}`, i+1, name, 10+i))
	}
	patched := s.mustDo(http.StatusOK, http.MethodPatch, "/api/v1/rooms/room_1",
		`{"name":"one renamed","config":{"max_participants":150,"locked":true}}`)
	cfg1 := patched["config"].(map[string]any)
	if patched["name"] != "one renamed" || cfg1["max_participants"] != 150.0 || cfg1["quality"] != "1080p" || cfg1["locked"] != true {
		t.Fatalf("patch did not merge: %v", patched)
	}
	ended := s.mustDo(http.StatusOK, http.MethodPost, "/api/v1/rooms/room_2/end", "")
	if ended["status"] != "ended" || ended["ended_at"] == nil {
		t.Fatalf("end: %v", ended)
	}
	s.mustDo(http.StatusNoContent, http.MethodDelete, "/api/v1/rooms/room_3", "")

	paths := []string{"/api/v1/rooms/room_1", "/api/v1/rooms/room_2", "/api/v1/rooms/room_4",
		"/api/v1/rooms?limit=100", "/api/v1/rooms?status=ended", "/api/v1/rooms?limit=1&offset=1"}
	before := map[string]map[string]any{}
	for _, p := range paths {
		before[p] = s.mustDo(http.StatusOK, http.MethodGet, p, "")
	}
	if before["/api/v1/rooms?limit=100"]["total"] != 3.0 {
		t.Fatalf("list before restart: %v", before["/api/v1/rooms?limit=100"])
	}
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}

	s2 := startServer(t, cfg)
	for _, p := range paths {
		if after := s2.mustDo(http.StatusOK, http.MethodGet, p, ""); !reflect.DeepEqual(after, before[p]) {
			t.Fatalf("GET %s changed across restart:\nbefore %v\nafter  %v", p, before[p], after)
		}
	}
	s2.mustDo(http.StatusNotFound, http.MethodGet, "/api/v1/rooms/room_3", "")
	// The ended room still refuses to be ended again or renamed into life.
	if got := s2.mustDo(http.StatusOK, http.MethodGet, "/api/v1/rooms/room_2", ""); got["status"] != "ended" {
		t.Fatalf("room_2 after restart: %v", got)
	}
}

// A create retried after a restart gets the first answer again, its
// Location included: the stored response outlives the process, and no
// second room is made.
func TestIdempotentReplayAfterRestart(t *testing.T) {
	cfg := testConfig(t.TempDir())
	s := startServer(t, cfg)
	key := http.Header{"Idempotency-Key": {"create-once"}}
	first, firstBody := s.request(http.MethodPost, "/api/v1/rooms", `{"name":"Once"}`, key)
	loc := first.Header.Get("Location")
	if first.StatusCode != http.StatusCreated || !strings.HasPrefix(loc, "/api/v1/rooms/room_") {
		t.Fatalf("create: %d, Location %q: %s", first.StatusCode, loc, firstBody)
	}
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}

	s2 := startServer(t, cfg)
	again, againBody := s2.request(http.MethodPost, "/api/v1/rooms", `{"name":"Once"}`, key)
	if again.StatusCode != http.StatusCreated || again.Header.Get("Idempotent-Replayed") != "true" ||
		again.Header.Get("Location") != loc || string(againBody) != string(firstBody) {
		t.Fatalf("the retry after the restart: %d %v %s\nthe first answer: Location %q %s",
			again.StatusCode, again.Header, againBody, loc, firstBody)
	}
	if list := s2.mustDo(http.StatusOK, http.MethodGet, "/api/v1/rooms", ""); list["total"] != 1.0 {
		t.Fatalf("rooms after the retry: %v", list)
	}
}

// Cancelling run (what SIGTERM does) while a request is being received
// lets that request finish and be stored. (A create would be refused: the
// node drains first; see TestSIGTERMDrainsSessionsThenStops.)
func TestShutdownFinishesInFlightRequest(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rl := &readingListener{Listener: ln, reading: make(chan string, 16)}
	s := startServerOn(t, testConfig(dir), rl)

	s.mustDo(http.StatusCreated, http.MethodPost, "/api/v1/rooms", `{"id":"room_inflight","name":"before"}`)
	body := `{"name":"in flight"}`
	head := fmt.Sprintf("PATCH /api/v1/rooms/room_inflight HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"+
		"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n", s.addr, s.token, len(body))
	rl.setSent(len(head) + 10)
	conn, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, head+body[:10]); err != nil {
		t.Fatal(err)
	}
	// Wait until the handler reads the rest of the body from this
	// connection: from then on the request is the server's to finish.
	for local := conn.LocalAddr().String(); ; {
		select {
		case remote := <-rl.reading:
			if remote != local {
				continue
			}
		case <-time.After(poll.Timeout):
			t.Fatal("server never read the request")
		}
		break
	}

	done := s.done
	s.cancel()
	s.cancel = nil
	s.client.CloseIdleConnections()
	// A refused dial shows that shutdown is under way.
	poll.Until(t, "the server to stop accepting after cancel", func() bool {
		c, err := net.DialTimeout("tcp", s.addr, time.Second)
		if err != nil {
			return true
		}
		c.Close()
		return false
	})
	select {
	case err := <-done:
		t.Fatalf("run returned (%v) while a request was in flight", err)
	default:
	}

	if _, err := io.WriteString(conn, body[10:]); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("in-flight update: %s", resp.Status)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return")
	}

	s2 := startServer(t, testConfig(dir))
	if got := s2.mustDo(http.StatusOK, http.MethodGet, "/api/v1/rooms/room_inflight", ""); got["name"] != "in flight" {
		t.Fatalf("acknowledged room lost: %v", got)
	}
}

// readingListener reports the remote address of an accepted connection
// when the server asks it for more than its first sent bytes: the server
// has parsed the request's header by then and its handler is reading the
// body. (A request whose header is still being read when shutdown begins
// is dropped by net/http, so an earlier signal would race with it.)
type readingListener struct {
	net.Listener
	sent    atomic.Int64 // bytes the client writes before it waits
	reading chan string
}

func (l *readingListener) setSent(n int) { l.sent.Store(int64(n)) }

func (l *readingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &readingConn{Conn: c, sent: int(l.sent.Load()), reading: l.reading}, nil
}

type readingConn struct {
	net.Conn
	sent    int
	read    int // only the server's connection goroutine reads
	once    sync.Once
	reading chan string
}

func (c *readingConn) Read(p []byte) (int, error) {
	if c.read >= c.sent {
		c.once.Do(func() {
			select {
			case c.reading <- c.RemoteAddr().String():
			default: // nobody waits for this connection
			}
		})
	}
	n, err := c.Conn.Read(p)
	c.read += n
	return n, err
}

// A bad configuration stops the command before anything starts.
func TestInvalidConfigStartsNothing(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"bad level via serve", []string{"serve", "--log-level", "loud"}, "--log-level"},
		{"bad port via root", []string{"--rtc-udp-port", "70000"}, "--rtc-udp-port"},
		{"bad address", []string{"serve", "--http-addr", "nowhere"}, "--http-addr"},
		{"flag not a number", []string{"serve", "--rtc-udp-port", "x"}, "rtc-udp-port"},
		{"unknown flag", []string{"serve", "--nope"}, "unknown flag"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			_, err := runCLI(t, append(tc.args, "--data-dir", dir)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("data dir created despite the error (%v)", err)
			}
		})
	}
}

// The binary exits 1 with one line on stderr for a bad configuration.
func TestExitCodeAndMessage(t *testing.T) {
	dir := t.TempDir()
	yamlPath := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(yamlPath, []byte("http_addr: 127.0.0.1:1\nport: 3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "serve", "--config", yamlPath, "--data-dir", filepath.Join(dir, "data"))
	cmd.Env = append(proc.WithoutTroupeEnv(os.Environ()), mainEnv+"=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("exit: %v", err)
	}
	msg := stderr.String()
	if strings.Count(msg, "\n") != 1 || !strings.HasPrefix(msg, "troupe: ") || !strings.Contains(msg, "unknown key port in ") {
		t.Fatalf("stderr %q, want one line naming the unknown key", msg)
	}
	if stdout.Len() != 0 {
		t.Fatalf("stdout %q", stdout.String())
	}
}

// `troupe bench api` starts its own server as a child process, measures both
// operations and cleans up after itself.
func TestBenchAPIWithChildServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child server")
	}
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp) // where the child's data dir goes
	t.Setenv(mainEnv, "1")  // the child is this test binary acting as troupe
	jsonPath := filepath.Join(t.TempDir(), "bench.json")
	out, err := runCLI(t, "bench", "api", "--clients", "2", "--duration", "300ms", "--json", jsonPath)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	data, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var report benchReport
	if err := json.Unmarshal(data, &report); err != nil {
		t.Fatal(err)
	}
	checkBenchMeta(t, report.benchMeta, "api", "--clients=2")
	if len(report.Results) != 2 {
		t.Fatalf("results %+v", report.Results)
	}
	for i, op := range []string{"get", "create"} {
		r := report.Results[i]
		if r.Op != op || r.Clients != 2 || r.Requests == 0 || r.Errors != 0 || r.ReqPerSec <= 0 || r.P99Ms <= 0 {
			t.Fatalf("result %d: %+v", i, r)
		}
		if !strings.Contains(out, op) {
			t.Fatalf("table lacks %s:\n%q", op, out)
		}
	}
	if entries, _ := os.ReadDir(tmp); len(entries) != 0 {
		t.Fatalf("bench left %d entries in TMPDIR", len(entries))
	}
}

// The server type starts and shuts down twice on one data dir, in
// process, and leaves no goroutine behind: the second start finds what the
// first stored, so the first released the store.
func TestServerStartsTwiceOnOneDataDir(t *testing.T) {
	leaktest.Check(t)
	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.DebugAddr = "127.0.0.1:0" // the profiler's goroutines too
	for round := range 2 {
		s, err := NewServer(cfg, nil, io.Discard, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Start(t.Context()); err != nil {
			t.Fatal(errors.Join(err, s.Shutdown(t.Context())))
		}
		key, err := loadKey(dir)
		if err != nil {
			t.Fatal(err)
		}
		token, err := auth.Mint(key, auth.AdminClaims(time.Now(), time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		client := &http.Client{Transport: &http.Transport{}, Timeout: poll.Timeout}
		api := &testServer{t: t, url: "http://" + s.ln.Addr().String(), token: token, client: client}
		if round == 0 {
			api.mustDo(http.StatusCreated, http.MethodPost, "/api/v1/rooms", `{"id":"kept","name":"Kept"}`)
		} else if got := api.mustDo(http.StatusOK, http.MethodGet, "/api/v1/rooms/kept", ""); got["name"] != "Kept" {
			t.Fatalf("room after restart: %v", got)
		}
		client.CloseIdleConnections()
		if err := s.Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
		if c, err := net.Dial("tcp", s.ln.Addr().String()); err == nil {
			c.Close()
			t.Fatal("API still accepting after Shutdown")
		}
	}
}

// A server whose start fails half way releases what it took: the next one
// opens the same data dir, whose store admits one process at a time.
func TestFailedStartReleasesEverything(t *testing.T) {
	leaktest.Check(t)
	busyTCP, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busyTCP.Close()
	busyUDP, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busyUDP.Close()
	dir := t.TempDir()

	// NewServer fails after opening the store: the media port is taken.
	cfg := testConfig(dir)
	cfg.RTCUDPPort = busyUDP.LocalAddr().(*net.UDPAddr).Port
	if _, err := NewServer(cfg, nil, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "start media") {
		t.Fatalf("NewServer with the media port taken: %v", err)
	}

	// Start fails after starting the background work: the profiler's port
	// is taken. Shutdown stops what it started.
	cfg = testConfig(dir)
	cfg.DebugAddr = busyTCP.Addr().String()
	s, err := NewServer(cfg, nil, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(t.Context()); err == nil || !strings.Contains(err.Error(), "debug listener") {
		t.Fatalf("Start with the profiler's port taken: %v", err)
	}
	if err := s.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}

	again := startServer(t, testConfig(dir))
	again.mustDo(http.StatusOK, http.MethodGet, "/api/v1/rooms", "")
	if err := again.stop(); err != nil {
		t.Fatal(err)
	}
}

// A second server started on a data dir another process serves says that
// the database is locked by another process, and exits 1.
func TestSecondProcessOnOneDataDir(t *testing.T) {
	dir := t.TempDir()
	startServer(t, testConfig(dir))
	cmd := exec.Command(os.Args[0], "serve", "--data-dir", dir, "--http-addr", "127.0.0.1:0",
		"--rtc-udp-port", "0", "--rtc-tcp-port", "-1", "--log-level", "error")
	cmd.Env = append(proc.WithoutTroupeEnv(os.Environ()), mainEnv+"=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("exit: %v\n%s", err, stderr.String())
	}
	want := "troupe: open store: the database in " + filepath.Join(dir, "db") + " is locked by another process"
	if msg := stderr.String(); !strings.HasPrefix(msg, want) || strings.Count(msg, "\n") != 1 {
		t.Fatalf("stderr %q, want one line starting %q", msg, want)
	}
}
