package mediaload

import (
	"bytes"
	"encoding/xml"
	"io"
	"math"
	"strings"
	"testing"
	"time"
)

func ms(v ...int) []time.Duration {
	out := make([]time.Duration, len(v))
	for i, x := range v {
		out[i] = time.Duration(x) * time.Millisecond
	}
	return out
}

func TestPercentile(t *testing.T) {
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond
	}
	cases := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"none", nil, 50, 0},
		{"one", ms(7), 99, 7 * time.Millisecond},
		{"median of odd", ms(1, 2, 3), 50, 2 * time.Millisecond},
		{"median of even is the lower", ms(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{"p99 of 100", hundred, 99, 99 * time.Millisecond},
		{"p50 of 100", hundred, 50, 50 * time.Millisecond},
		{"p100 is the max", hundred, 100, 100 * time.Millisecond},
		{"p99 of 10 is the max", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 99, 10 * time.Millisecond},
		{"tiny p is the min", ms(5, 6, 7), 0.1, 5 * time.Millisecond},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := percentile(c.sorted, c.p); got != c.want {
				t.Errorf("percentile(%v, %v) = %v, want %v", c.sorted, c.p, got, c.want)
			}
		})
	}
	s := summarize(ms(9, 1, 5, 3, 7))
	if s.P50 != 5 || s.P99 != 9 || s.Max != 9 || s.N != 5 {
		t.Errorf("summarize = %+v", s)
	}
}

func TestPacketMath(t *testing.T) {
	cases := []struct {
		name               string
		cpu                time.Duration
		expected, received int64
		loss, usPer, perCo float64
	}{
		{"nothing", 0, 0, 0, 0, 0, 0},
		{"no loss", 2 * time.Second, 100000, 100000, 0, 20, 50000},
		{"1% loss", time.Second, 1000, 990, 0.01, 1e6 / 990, 990},
		{"all lost", time.Second, 1000, 0, 1, 0, 0},
		{"duplicates never make negative loss", time.Second, 1000, 1200, 0, 1e6 / 1200, 1200},
		{"no cpu measured", 0, 500, 500, 0, 0, 0},
	}
	near := func(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := lossRatio(c.expected, c.received); !near(got, c.loss) {
				t.Errorf("loss = %v, want %v", got, c.loss)
			}
			if got := cpuPerPacketUs(c.cpu, c.received); !near(got, c.usPer) {
				t.Errorf("µs per packet = %v, want %v", got, c.usPer)
			}
			if got := packetsPerCoreSecond(c.cpu, c.received); !near(got, c.perCo) {
				t.Errorf("packets per core second = %v, want %v", got, c.perCo)
			}
		})
	}
	if r := Ratio(16, 4); r != 4 {
		t.Errorf("Ratio(16, 4) = %v", r)
	}
	if r := Ratio(16, 0); r != 0 {
		t.Errorf("Ratio with no Troupe figure = %v", r)
	}
}

func TestWindow(t *testing.T) {
	w := newWindow(100, 200)
	for _, c := range []uint32{99, 100, 100, 150, 199, 200, 150, 65} {
		w.add(c)
	}
	if w.n != 3 || w.expected() != 100 {
		t.Errorf("window counted %d of %d, want 3 of 100", w.n, w.expected())
	}
	if e := newWindow(5, 5); e.add(5) || e.expected() != 0 {
		t.Error("an empty window took a packet")
	}
}

func TestWriteSVG(t *testing.T) {
	steps := []Step{
		{Server: "troupe", Subscribers: 10, CPUPerPacketUs: 12.5, LatencyP99Ms: 2.1},
		{Server: "troupe", Subscribers: 20, CPUPerPacketUs: 10.2, LatencyP99Ms: 3.4},
		{Server: "naive-pion", Subscribers: 10, CPUPerPacketUs: 30, LatencyP99Ms: 5},
		{Server: "naive-pion", Subscribers: 20, CPUPerPacketUs: 28, LatencyP99Ms: 9.9},
	}
	cases := []struct {
		name      string
		title     string
		steps     []Step
		polylines int
	}{
		{"two servers", "video-fanout <&> \"quoted\"", steps, 4},
		{"one step", "one", steps[:1], 2},
		{"nothing", "empty", nil, 0},
		{"zeros", "no cpu", []Step{{Server: "troupe", Participants: 4}}, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := WriteSVG(&b, c.title, c.steps); err != nil {
				t.Fatal(err)
			}
			// Well-formed XML with an svg root, the title as text, and a
			// line for each server and measure.
			dec := xml.NewDecoder(bytes.NewReader(b.Bytes()))
			var root string
			polylines, titleFound := 0, false
			for {
				tok, err := dec.Token()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("not well-formed XML: %v\n%s", err, b.String())
				}
				switch tok := tok.(type) {
				case xml.StartElement:
					if root == "" {
						root = tok.Name.Local
						if tok.Name.Space != "http://www.w3.org/2000/svg" {
							t.Errorf("svg namespace %q", tok.Name.Space)
						}
					}
					if tok.Name.Local == "polyline" {
						polylines++
					}
				case xml.CharData:
					if string(tok) == c.title {
						titleFound = true
					}
				}
			}
			if root != "svg" || polylines != c.polylines || !titleFound {
				t.Errorf("root %q, %d polylines (want %d), title found %v", root, polylines, c.polylines, titleFound)
			}
			if strings.Contains(b.String(), "NaN") || strings.Contains(b.String(), "Inf") {
				t.Errorf("chart has NaN or Inf coordinates:\n%s", b.String())
			}
		})
	}
}
