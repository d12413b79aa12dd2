package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/troupe-media/troupe/bench/proc"
	"github.com/troupe-media/troupe/httpapi/auth"
)

// Benchmark knobs, from the environment so that a run can be longer than
// the default.
func benchEnvInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkSubscriberTransports measures the server's CPU per forwarded
// packet for subscribers on UDP direct, on ICE over TCP and through the
// built-in TURN relay, in one run against one server process (this test
// binary as `troupe serve`, its CPU read from /proc): one publisher sends
// VP8 at 1,000 packets/s over UDP; each phase adds TROUPE_BENCH_VIEWERS (10)
// WHEP viewers of one transport, measures the server's CPU and the packets
// the viewers received over TROUPE_BENCH_WINDOW seconds (5), and closes
// them. The phases repeat TROUPE_BENCH_ROUNDS times (3), interleaved, and
// the medians are reported (bench/RESULTS.md has a run). The server's CPU
// with the publisher alone
// (the same window, measured in each round) is subtracted, so the figure
// is what forwarding costs, the TURN server's relaying included.
//
//	go test ./cmd/troupe -run '^$' -bench SubscriberTransports -benchtime 1x
func BenchmarkSubscriberTransports(b *testing.B) {
	viewers := benchEnvInt("TROUPE_BENCH_VIEWERS", 10)
	window := time.Duration(benchEnvInt("TROUPE_BENCH_WINDOW", 5)) * time.Second
	rounds := benchEnvInt("TROUPE_BENCH_ROUNDS", 3)
	b.Setenv("TMPDIR", b.TempDir()) // where the child's data dir goes
	b.Setenv(mainEnv, "1")          // the child is this test binary acting as troupe
	key, err := auth.GenerateKey()
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	child, err := proc.StartChild(ctx, proc.ChildConfig{
		Args: func(dir, addr string) []string {
			return []string{"serve", "--data-dir", filepath.Join(dir, "data"), "--http-addr", addr,
				"--rtc-udp-port", "0", "--rtc-tcp-port", "0", "--turn-enabled", "--turn-udp-port", "0",
				"--log-level", "warn",
				// Every phase's viewers join at once from loopback.
				"--whip-rate", "0"}
		},
		Env:    []string{envName("api-key") + "=" + key.ID, envName("api-secret") + "=" + key.Secret},
		Stderr: os.Stderr,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := child.Stop(); err != nil {
			b.Error(err)
		}
	})
	admin, err := auth.Mint(key, auth.AdminClaims(time.Now(), time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	transport := &http.Transport{}
	b.Cleanup(transport.CloseIdleConnections)
	s := &testServer{t: b, url: child.URL(), addr: strings.TrimPrefix(child.URL(), "http://"), token: admin,
		client: &http.Client{Transport: transport, Timeout: 30 * time.Second}}
	s.mustDo(201, "POST", "/api/v1/rooms", `{"id":"bench","name":"bench"}`)
	publishVideo(b, s, "bench", time.Millisecond)

	cpu := func() time.Duration {
		d, err := proc.ProcessCPU(child.PID())
		if err != nil {
			b.Fatal(err)
		}
		return d
	}
	// measure returns the server's CPU over window, and the packets vs
	// received meanwhile.
	measure := func(vs []*viewer) (time.Duration, int) {
		count := func() int {
			n := 0
			for _, v := range vs {
				n += v.r.Stats().Packets
			}
			return n
		}
		c0, p0 := cpu(), count()
		time.Sleep(window) // the measuring window, not a wait for a condition
		return cpu() - c0, count() - p0
	}
	udp := edgeClientAPI(b, webrtc.NetworkTypeUDP4)
	tcp := edgeClientAPI(b, webrtc.NetworkTypeTCP4)
	type phase struct {
		name string
		api  *webrtc.API
		conf func(tok string) webrtc.Configuration
	}
	phases := []phase{
		{"udp", udp, func(string) webrtc.Configuration { return webrtc.Configuration{} }},
		{"tcp", tcp, func(string) webrtc.Configuration { return webrtc.Configuration{} }},
		{"turn", udp, func(tok string) webrtc.Configuration {
			return webrtc.Configuration{ICEServers: whepICEServers(b, s, "bench", tok), ICETransportPolicy: webrtc.ICETransportPolicyRelay}
		}},
	}
	perPacket := map[string][]float64{}
	rates := map[string][]float64{} // packets forwarded per second
	b.ResetTimer()
	for range rounds {
		idle, _ := measure(nil)
		for _, ph := range phases {
			var vs []*viewer
			for i := range viewers {
				tok := s.mustDo(200, "POST", "/api/v1/rooms/bench/tokens",
					fmt.Sprintf(`{"identity":"%s-%d","role":"subscriber"}`, ph.name, i))["token"].(string)
				vs = append(vs, newViewer(b, s, "bench", tok, ph.api, ph.conf(tok)))
			}
			used, packets := measure(vs)
			for _, v := range vs {
				v.close()
			}
			if packets == 0 {
				b.Fatalf("%s: no packet forwarded", ph.name)
			}
			perPacket[ph.name] = append(perPacket[ph.name], float64(used-idle)/float64(packets))
			rates[ph.name] = append(rates[ph.name], float64(packets)/window.Seconds())
		}
	}
	b.StopTimer()
	for _, ph := range phases {
		b.ReportMetric(median(perPacket[ph.name]), "ns/pkt-"+ph.name)
		b.Logf("%s: CPU ns per forwarded packet, per round: %.0f (packets/s %.0f)", ph.name, perPacket[ph.name], rates[ph.name])
	}
}

func median(v []float64) float64 {
	v = slices.Clone(v)
	slices.Sort(v)
	return v[len(v)/2]
}

// whepOptions sends OPTIONS to room's WHEP endpoint, with a join token if
// tok is not empty, expects 204 and returns the response's headers.
func whepOptions(t testing.TB, s *testServer, room, tok string) http.Header {
	t.Helper()
	req, err := http.NewRequest("OPTIONS", s.url+"/whep/"+room, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("OPTIONS /whep/%s: %d", room, resp.StatusCode)
	}
	return resp.Header
}

// whepICEServers asks the WHEP endpoint for its TURN servers with a join
// token, as a relay-only client does before it offers.
func whepICEServers(t testing.TB, s *testServer, room, tok string) []webrtc.ICEServer {
	t.Helper()
	h := whepOptions(t, s, room, tok)
	servers := turnServers(linkICEServers(t, h))
	if len(servers) == 0 {
		t.Fatalf("OPTIONS /whep/%s: no TURN server in %q", room, h.Values("Link"))
	}
	return servers
}
