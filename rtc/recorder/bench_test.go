package recorder

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/troupe-media/troupe/internal/clock"
	"github.com/troupe-media/troupe/internal/leaktest"
)

// opusRecorder is a recorder (on the system clock) of one Opus track,
// closed when the test ends.
func opusRecorder(t testing.TB) (*Recorder, *Track) {
	t.Helper()
	r, err := New(Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = r.Close(context.Background()) })
	tr, err := r.AddTrack(opusInfo("kim", "a1"))
	if err != nil {
		t.Fatal(err)
	}
	return r, tr
}

// WriteRTP is on the forwarding path: it allocates nothing once the
// buffer pool is warm, that is once the writer keeps up.
func TestWriteRTPAllocatesNothing(t *testing.T) {
	leaktest.Check(t)
	r, tr := opusRecorder(t)
	p := &rtp.Packet{Header: rtp.Header{SSRC: 1, PayloadType: 111}, Payload: make([]byte, 80)}
	p.Payload[0] = 0x78 // an Opus TOC byte
	write := func() {
		p.SequenceNumber++
		p.Timestamp += 960
		tr.WriteRTP(p)
	}
	for range 2000 {
		write()
	}
	r.barrier() // every buffer is back in the pool
	if n := testing.AllocsPerRun(1000, write); n != 0 {
		t.Fatalf("WriteRTP allocates %v times per packet", n)
	}
}

// BenchmarkWriteRTP is the forwarding path's cost of a recorded track: a
// copy into a pooled buffer and a queue send. The writer is waited for
// (timer stopped) every 1024 packets, as if packets came at a real rate.
func BenchmarkWriteRTP(b *testing.B) {
	r, tr := opusRecorder(b)
	p := &rtp.Packet{Header: rtp.Header{SSRC: 1, PayloadType: 111}, Payload: make([]byte, 1100)}
	b.SetBytes(int64(len(p.Payload)))
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		p.SequenceNumber++
		p.Timestamp += 960
		tr.WriteRTP(p)
		if n++; n%1024 == 0 {
			b.StopTimer()
			r.barrier()
			b.StartTimer()
		}
	}
	b.StopTimer()
	r.barrier()
	b.ReportMetric(float64(r.Stats().QueueDrops)/float64(n), "drops/op")
}

// clipPackets packetizes the VP8 and Opus clips once: the packets a
// participant sends in 4 s.
func clipPackets(b *testing.B, participant string) []event {
	return schedule([]source{
		{info: opusInfo(participant, participant+"-a"), frames: loadOgg(b, "opus.ogg")},
		{info: videoInfo(participant, participant+"-v", webrtc.MimeTypeVP8), frames: loadIVF(b, "vp8.ivf")},
	}, impair{})
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRecordParticipants records participants sending the VP8 (300
// kbit/s) and Opus clips, played again and again (their sequence numbers
// and timestamps going on) on a manual clock, and reports the process's
// CPU time per recorded packet, the share of one core that recording them
// in real time takes, and the heap each recorded track adds.
func BenchmarkRecordParticipants(b *testing.B) {
	for _, n := range []int{1, 10, 20} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			benchRecord(b, n)
		})
	}
}

func liveHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func benchRecord(b *testing.B, participants int) {
	clk := clock.NewManual(epoch)
	r, err := New(Config{Dir: b.TempDir(), Clock: clk})
	if err != nil {
		b.Fatal(err)
	}
	tracks := make([]*Track, 2*participants)
	var evs []event // every participant's 4 s, in time order
	count := make([]int, len(tracks))
	for i := range participants {
		for _, e := range clipPackets(b, fmt.Sprint("p", i)) {
			if e.pkt != nil {
				e.src += 2 * i
				count[e.src]++
				evs = append(evs, e)
			}
		}
	}
	slices.SortStableFunc(evs, func(a, b event) int { return int(a.at - b.at) })
	base := liveHeap() // with the packets to send, without the tracks
	for i := range participants {
		id := fmt.Sprint("p", i)
		for j, info := range []TrackInfo{opusInfo(id, id+"-a"), videoInfo(id, id+"-v", webrtc.MimeTypeVP8)} {
			if tracks[2*i+j], err = r.AddTrack(info); err != nil {
				b.Fatal(err)
			}
		}
	}
	const clipLen = 4 * time.Second
	packets, rounds := 0, 0
	var heap uint64
	b.ResetTimer()
	cpu0 := cpuTime()
	for b.Loop() {
		// One round: the 4 s again, each packet shifted on by the rounds
		// before, written as a forwarder would, the writer waited for every
		// 20 ms.
		start := clk.Now()
		for _, e := range evs {
			if d := start.Add(e.at).Sub(clk.Now()); d >= 20*time.Millisecond {
				r.barrier()
				clk.Advance(d)
			}
			p := *e.pkt
			p.SequenceNumber += uint16(rounds * count[e.src]) //nolint:gosec // wraps on purpose
			rate := uint32(90000)
			if e.src%2 == 0 {
				rate = 48000
			}
			p.Timestamp += uint32(rounds) * uint32(clipLen/time.Second) * rate //nolint:gosec // wraps on purpose
			tracks[e.src].WriteRTP(&p)
			packets++
		}
		clk.Advance(start.Add(clipLen).Sub(clk.Now()))
		r.barrier()
		if rounds++; rounds == 1 {
			b.StopTimer()
			heap = liveHeap() - base
			b.StartTimer()
		}
	}
	cpu := cpuTime() - cpu0
	b.StopTimer()
	if _, err := r.Close(context.Background()); err != nil {
		b.Fatal(err)
	}
	if s := r.Stats(); s.QueueDrops != 0 || s.Lost != 0 {
		b.Fatalf("the benchmark lost packets: %+v", s)
	}
	b.ReportMetric(float64(cpu)/float64(packets), "cpu-ns/pkt")
	b.ReportMetric(100*float64(cpu)/float64(rounds)/float64(clipLen), "%core")
	b.ReportMetric(float64(heap)/float64(len(tracks)), "heap-B/track")
}
