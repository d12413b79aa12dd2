package rtc

import (
	"encoding/binary"
	"testing"
)

// vp8Packet is a packet whose payload starts with a VP8 descriptor that
// carries a 15-bit (or 7-bit) picture id and a TL0PICIDX.
func vp8Packet(seq uint16, ts uint32, pic uint16, pic15 bool, tl0 uint8) *packet {
	p := &packet{}
	p.h.seq, p.h.timestamp = seq, ts
	payload := []byte{0x90, 0xc0} // X, S; I and L
	if pic15 {
		payload = binary.BigEndian.AppendUint16(payload, 0x8000|pic)
	} else {
		payload = append(payload, byte(pic&0x7f))
	}
	payload = append(payload, tl0, 0x00, 0xaa)
	n := copy(p.buf[12:], payload)
	p.h.payloadStart, p.h.payloadEnd, p.h.end = 12, 12+n, 12+n
	parseVP8Desc(p.payload(), &p.vp8)
	return p
}

// TestRewriterAcrossSwitches moves a stream from source to source and
// checks every packet out: sequence numbers one apart, timestamps where
// the switch put them and then as the source spaced them, picture ids and
// TL0PICIDX one apart, across the wraparound of each.
func TestRewriterAcrossSwitches(t *testing.T) {
	type in struct {
		seq   uint16
		ts    uint32
		pic   uint16
		tl0   uint8
		begin bool   // the first packet of a new source
		next  uint32 // its timestamp out, with begin
	}
	type out struct {
		seq uint16
		ts  uint32
		pic uint16
		tl0 uint8
	}
	tests := []struct {
		name  string
		pic15 bool
		from  rewriter // the stream so far
		in    []in
		want  []out
	}{
		{
			name:  "sequence and timestamp wrap at the switch",
			pic15: true,
			from:  rewriter{started: true, lastSeq: 65534, lastTS: 0xffffff00, lastPic: 0x7ffe, lastTL0: 254, picSeen: true, tl0Seen: true},
			in: []in{
				{seq: 100, ts: 5000, pic: 7, tl0: 3, begin: true, next: 2744}, // 0xffffff00 + 3000, wrapped
				{seq: 101, ts: 5000, pic: 7, tl0: 3},
				{seq: 102, ts: 8000, pic: 8, tl0: 4},
			},
			want: []out{
				{seq: 65535, ts: 2744, pic: 0x7fff, tl0: 255},
				{seq: 0, ts: 2744, pic: 0x7fff, tl0: 255},
				{seq: 1, ts: 5744, pic: 0, tl0: 0},
			},
		},
		{
			name:  "the new source wraps, the stream does not",
			pic15: true,
			from:  rewriter{started: true, lastSeq: 1000, lastTS: 90000, lastPic: 10, lastTL0: 5, picSeen: true, tl0Seen: true},
			in: []in{
				{seq: 65535, ts: 0xfffffc00, pic: 0x7fff, tl0: 255, begin: true, next: 93000},
				{seq: 0, ts: 1976, pic: 0, tl0: 0}, // 0xfffffc00 + 3000, wrapped
				{seq: 1, ts: 4976, pic: 1, tl0: 1},
			},
			want: []out{
				{seq: 1001, ts: 93000, pic: 11, tl0: 6},
				{seq: 1002, ts: 96000, pic: 12, tl0: 7},
				{seq: 1003, ts: 99000, pic: 13, tl0: 8},
			},
		},
		{
			name: "two switches, seven-bit picture ids",
			from: rewriter{started: true, lastSeq: 500, lastTS: 1000, lastPic: 126, lastTL0: 9, picSeen: true, tl0Seen: true},
			in: []in{
				{seq: 40, ts: 7000, pic: 50, tl0: 1, begin: true, next: 4000},
				{seq: 41, ts: 10000, pic: 51, tl0: 2},
				{seq: 9000, ts: 123, pic: 3, tl0: 200, begin: true, next: 7001},
				{seq: 9001, ts: 3123, pic: 4, tl0: 201},
			},
			want: []out{
				{seq: 501, ts: 4000, pic: 127, tl0: 10},
				{seq: 502, ts: 7000, pic: 0, tl0: 11},
				{seq: 503, ts: 7001, pic: 1, tl0: 12},
				{seq: 504, ts: 10001, pic: 2, tl0: 13},
			},
		},
		{
			name:  "a late packet of the current source keeps its place",
			pic15: true,
			from:  rewriter{started: true, lastSeq: 9, lastTS: 100, lastPic: 1, lastTL0: 1, picSeen: true, tl0Seen: true},
			in: []in{
				{seq: 20, ts: 500, pic: 30, tl0: 7, begin: true, next: 200},
				{seq: 22, ts: 800, pic: 31, tl0: 7},
				{seq: 21, ts: 500, pic: 30, tl0: 7},
				{seq: 23, ts: 800, pic: 31, tl0: 7},
			},
			want: []out{
				{seq: 10, ts: 200, pic: 2, tl0: 2},
				{seq: 12, ts: 500, pic: 3, tl0: 2},
				{seq: 11, ts: 200, pic: 2, tl0: 2},
				{seq: 13, ts: 500, pic: 3, tl0: 2},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.from
			for i, pin := range tt.in {
				p := vp8Packet(pin.seq, pin.ts, pin.pic, tt.pic15, pin.tl0)
				if pin.begin {
					r.begin(p, pin.next)
				}
				seq, ts := r.next(p)
				payload := append([]byte(nil), p.payload()...)
				if r.rewritesPayload(p) {
					p.vp8.patch(payload, r.picOff, r.tl0Off)
				}
				var d vp8Desc
				if !parseVP8Desc(payload, &d) {
					t.Fatalf("packet %d: the rewritten descriptor does not parse", i)
				}
				got := out{seq: seq, ts: ts, pic: d.picID, tl0: d.tl0}
				if got != tt.want[i] {
					t.Errorf("packet %d: got %+v, want %+v", i, got, tt.want[i])
				}
				if d.pic15 != tt.pic15 {
					t.Errorf("packet %d: picture id width changed", i)
				}
				if string(payload[d.hdrAt:]) != string(p.payload()[p.vp8.hdrAt:]) {
					t.Errorf("packet %d: the rewrite touched the VP8 payload after the descriptor", i)
				}
			}
		})
	}
}

// TestRewriterFirstSourceKeepsPictureIDs checks the start of a stream:
// random sequence number and timestamp, the publisher's picture ids.
func TestRewriterFirstSourceKeepsPictureIDs(t *testing.T) {
	var r rewriter
	p := vp8Packet(10, 20, 300, true, 4)
	r.begin(p, 0)
	seq, ts := r.next(p)
	q := vp8Packet(11, 3020, 301, true, 5)
	seq2, ts2 := r.next(q)
	if seq2 != seq+1 || ts2 != ts+3000 {
		t.Fatalf("second packet %d/%d after %d/%d", seq2, ts2, seq, ts)
	}
	if r.rewritesPayload(p) || r.rewritesPayload(q) {
		t.Fatal("the first source's picture ids are rewritten")
	}
}

func TestSwitchTS(t *testing.T) {
	tests := []struct {
		name                    string
		lastTS, frameTS         uint32
		frameMS, keyMS, clockHz uint32
		want                    uint32
	}{
		{"a frame later", 9000, 9000, 1000, 1033, 90000, 9000 + 2970},
		{"milliseconds wrap", 9000, 9000, 0xfffffff0, 0x11, 90000, 9000 + 33*90},
		{"timestamp wraps", 0xffffff00, 0xffffff00, 5, 38, 90000, 2714}, // 0xffffff00 + 2970, wrapped
		{"the keyframe came first: after the last sent", 5000, 5000, 2000, 1990, 90000, 5001},
		{"same moment as the last frame sent", 5000, 5000, 2000, 2000, 90000, 5001},
		{"the old layer's last frame is older than the last packet", 12000, 9000, 100, 160, 90000, 9000 + 5400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := switchTS(tt.lastTS, tt.frameTS, tt.frameMS, tt.keyMS, tt.clockHz); got != tt.want {
				t.Fatalf("switchTS = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestPickLayer(t *testing.T) {
	tests := []struct {
		name   string
		active []bool
		target int
		want   int
	}{
		{"auto takes the highest", []bool{true, true, true}, LayerAuto, 2},
		{"auto falls back when the top stops", []bool{true, true, false}, LayerAuto, 1},
		{"the target itself", []bool{true, true, true}, 1, 1},
		{"below the target when it stops", []bool{true, false, true}, 1, 0},
		{"above when nothing below arrives", []bool{false, false, true}, 0, 2},
		{"a target past the top is the top", []bool{true, true}, 7, 1},
		{"nothing arrives", []bool{false, false}, LayerAuto, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pickLayer(tt.active, tt.target); got != tt.want {
				t.Fatalf("pickLayer(%v, %d) = %d, want %d", tt.active, tt.target, got, tt.want)
			}
		})
	}
}
