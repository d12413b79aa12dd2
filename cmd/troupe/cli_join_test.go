package main

import (
	"strings"
	"testing"
	"time"

	"github.com/troupe-media/troupe/internal/poll"
)

// troupe join names its participant after its identity unless --name
// says otherwise, takes no --json (it prints no API answer), and says
// why the server ended the connection in Troupe's words.
func TestCLIJoinNameAndEnd(t *testing.T) {
	cliServer(t)
	mustCLI(t, "room", "create", "--id", "named", "--name", "Named")
	wantExit(t, 2, "unknown flag: --json", "join", "--room", "named", "--json")

	type result struct {
		code     int
		out, msg string
	}
	ran := make(chan result, 1)
	go func() {
		code, out, msg := cli(t, "join", "--room", "named", "--identity", "dora", "--duration", "2m")
		ran <- result{code, out, msg}
	}()
	var pid string
	poll.Until(t, "dora to be listed", func() bool {
		for _, p := range cliList(t, "participant", "list", "named") {
			if p := p.(map[string]any); p["identity"] == "dora" {
				if p["name"] != "dora" {
					t.Fatalf("dora's name is %q, want her identity", p["name"])
				}
				pid = p["id"].(string)
				return true
			}
		}
		return false
	})
	mustCLI(t, "participant", "kick", "named", pid)
	r := <-ran
	if r.code != 1 || !strings.Contains(r.msg, "the server ended the connection: you were removed from the room (kicked)") ||
		strings.Contains(r.msg, "Status") || strings.Contains(r.msg, "close frame") {
		t.Fatalf("troupe join, kicked: exit %d %q\n%s", r.code, r.msg, r.out)
	}
}

// cliServer starts a server for the API commands to call: they find it
// and its admin token in the environment.
func cliServer(t *testing.T) *testServer {
	t.Helper()
	s := startServer(t, testConfig(t.TempDir()))
	t.Setenv("TROUPE_URL", s.url)
	t.Setenv("TROUPE_TOKEN", s.token)
	return s
}

// A participant alone in a room is told so once, not each second, and
// leaves saying it received nothing.
func TestCLIJoinAloneSaysSoOnce(t *testing.T) {
	cliServer(t)
	mustCLI(t, "room", "create", "--id", "alone", "--name", "Alone")
	out := mustCLI(t, "join", "--room", "alone", "--publish", "--duration", "3s", "--every", "200ms")
	if n := strings.Count(out, "tracks: no media"); n != 1 || !strings.Contains(out, "0 tracks: no media yet") ||
		!strings.Contains(out, "left the room; received: no media") {
		t.Fatalf("troupe join alone: %d lines of no media:\n%s", n, out)
	}
}

// The join status lines: one when what arrives changes (a track comes,
// starts, stalls or ends), and while media arrives steadily, one each
// heartbeat and no more.
func TestJoinStatusPrinter(t *testing.T) {
	var out strings.Builder
	stats := &trackStats{}
	p := &statusPrinter{stats: stats, w: &out, heartbeat: 10 * time.Second}
	start := time.Date(2030, 1, 2, 3, 4, 0, 0, time.UTC)
	at := func(sec int) time.Time { return start.Add(time.Duration(sec) * time.Second) }
	step := func(sec int, want ...string) {
		t.Helper()
		out.Reset()
		p.sample(at(sec), time.Second)
		got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
		if out.Len() == 0 {
			got = nil
		}
		if len(got) != len(want) {
			t.Fatalf("at %ds printed %q, want %d lines %q", sec, out.String(), len(want), want)
		}
		for i := range want {
			if !strings.Contains(got[i], want[i]) {
				t.Fatalf("at %ds line %d is %q, want it to hold %q", sec, i, got[i], want[i])
			}
		}
	}
	step(1, "03:04:01  0 tracks: no media yet")
	step(2) // nothing changed
	video := stats.addTrack("v1", "pub video/vp8", "track v1: video video/VP8 from pub")
	step(3, "track v1: video video/VP8 from pub", "1 tracks: pub video/vp8 no packets yet")
	video.packets.Add(30)
	video.bytes.Add(30 * 1000)
	step(4, "1 tracks: pub video/vp8 30 pkt/s 240 kbit/s (30 packets)")
	for sec := 5; sec < 14; sec++ {
		video.packets.Add(30)
		step(sec) // steady: quiet until the heartbeat
	}
	video.packets.Add(30)
	step(14, "1 tracks: pub video/vp8 30 pkt/s 0 kbit/s (330 packets)")
	audio := stats.addTrack("a1", "pub audio/opus", "track a1: audio audio/OPUS from pub")
	audio.packets.Add(50)
	video.packets.Add(30)
	step(15, "track a1", "2 tracks: pub audio/opus 50 pkt/s 0 kbit/s (50 packets); pub video/vp8 30 pkt/s")
	audio.packets.Add(50)
	step(16, "2 tracks: pub audio/opus 50 pkt/s 0 kbit/s (100 packets); pub video/vp8 stalled (360 packets)")
	audio.packets.Add(50)
	step(17) // the same: audio arrives, video stalled
	video.ended.Store(true)
	audio.packets.Add(50)
	step(18, "1 tracks: pub audio/opus 50 pkt/s 0 kbit/s (200 packets); pub video/vp8 ended (360 packets)")
	audio.packets.Add(50)
	step(19) // the ended track is left out, and nothing else changed
	audio.ended.Store(true)
	step(20, "0 tracks: pub audio/opus ended (250 packets)")
	step(21)
	step(40) // nothing arrives: no heartbeat
	if got := p.total(); got != "pub audio/opus (250 packets); pub video/vp8 (360 packets)" {
		t.Fatalf("total %q", got)
	}
}
