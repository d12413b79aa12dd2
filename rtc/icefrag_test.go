package rtc

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// rfc9725Fragment is the trickle ICE fragment of RFC 9725's example: the
// credentials in the bundle's one section, four candidates, the end.
const rfc9725Fragment = "a=group:BUNDLE 0 1\r\n" +
	"m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n" +
	"a=mid:0\r\n" +
	"a=ice-ufrag:EsAw\r\n" +
	"a=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\r\n" +
	"a=candidate:1387637174 1 udp 2122260223 192.0.2.1 61764 typ host generation 0 ufrag EsAw network-id 1\r\n" +
	"a=candidate:3471623853 1 udp 2122194687 198.51.100.2 61765 typ host generation 0 ufrag EsAw network-id 2\r\n" +
	"a=candidate:473322822 1 tcp 1518280447 192.0.2.1 9 typ host tcptype active generation 0 ufrag EsAw network-id 1\r\n" +
	"a=candidate:2154773085 1 tcp 1518214911 198.51.100.2 9 typ host tcptype active generation 0 ufrag EsAw network-id 2\r\n" +
	"a=end-of-candidates\r\n"

func TestParseICEFragment(t *testing.T) {
	f, err := ParseICEFragment(rfc9725Fragment)
	if err != nil {
		t.Fatal(err)
	}
	if f.Ufrag != "EsAw" || f.Pwd != "P2uYro0UCOQ4zxjKXaWCBui1" || len(f.Sections) != 1 || f.End {
		t.Fatalf("parsed %+v", f)
	}
	s := f.Sections[0]
	if s.Mid != "0" || s.Media != "audio" || s.MLine != "audio 9 UDP/TLS/RTP/SAVPF 111" || len(s.Candidates) != 4 || !s.End || !f.Ended() {
		t.Fatalf("section %+v", s)
	}
	if !strings.HasPrefix(s.Candidates[0], "candidate:1387637174 1 udp") {
		t.Fatalf("candidate %q", s.Candidates[0])
	}
	// What String writes parses back to the same.
	again, err := ParseICEFragment(f.String())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(f, again) {
		t.Fatalf("round trip:\n%+v\n%+v", f, again)
	}

	// Session-level credentials and end, LF line ends, two sections,
	// c= and unknown attributes ignored, a candidate of an unknown type
	// taken (it is dropped when added).
	f, err = ParseICEFragment("a=ice-ufrag:abcd\na=ice-pwd:0123456789012345678901\na=ice-options:trickle\na=end-of-candidates\n" +
		"m=video 9 UDP/TLS/RTP/SAVPF 96\nc=IN IP4 0.0.0.0\na=mid:v\na=candidate:1 1 udp 1 192.0.2.1 5000 typ elsewhere\n" +
		"m=audio 9 UDP/TLS/RTP/SAVPF 111\na=mid:a\n\n")
	if err != nil {
		t.Fatal(err)
	}
	if f.Ufrag != "abcd" || !f.End || len(f.Sections) != 2 || f.Sections[0].Mid != "v" || len(f.Sections[0].Candidates) != 1 || f.Sections[1].Mid != "a" {
		t.Fatalf("parsed %+v", f)
	}

	// A candidate alone in its section, nothing else.
	if _, err := ParseICEFragment("m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=candidate:1 1 udp 2122260223 192.0.2.1 61764 typ host\r\n"); err != nil {
		t.Fatal(err)
	}
}

func TestParseICEFragmentRefusals(t *testing.T) {
	const sec = "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n"
	for _, c := range []struct{ name, body, want string }{
		{"JSON", `{"candidate":"x"}`, "line 1: not an SDP line"},
		{"empty", "", "nothing to apply"},
		{"a full description", "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n", "line 1: v= has no place"},
		{"candidate outside a section", "a=candidate:1 1 udp 1 192.0.2.1 5000 typ host\r\n", "line 1: a=candidate outside a media section"},
		{"no mid", "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=candidate:1 1 udp 1 192.0.2.1 5000 typ host\r\n", "has no a=mid"},
		{"no mid before the next section", "m=audio 9 RTP/AVP 0\r\nm=video 9 RTP/AVP 96\r\na=mid:1\r\n", "line 2: the media section \"m=audio 9 RTP/AVP 0\" has no a=mid"},
		{"two mids", sec + "a=mid:1\r\n", "line 3: a second a=mid"},
		{"short m= line", "m=audio 9\r\na=mid:0\r\n", "line 1: an m= line needs"},
		{"m= port", "m=audio nine UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n", "port is not a number"},
		{"unparsable candidate", sec + "a=candidate:1 1 udp high 192.0.2.1 5000 typ host\r\n", "line 3: the candidate does not parse"},
		{"truncated candidate", sec + "a=candidate:1 1 udp\r\n", "line 3: the candidate does not parse"},
		{"huge candidate", sec + "a=candidate:1 1 udp 1 192.0.2.1 5000 typ host " + strings.Repeat("x", maxCandidateSize) + "\r\n", "line 3: a candidate of more than"},
		{"short ufrag", "a=ice-ufrag:abc\r\n" + sec, "line 1: a=ice-ufrag must be 4 to 256"},
		{"short pwd", "a=ice-ufrag:abcd\r\na=ice-pwd:short\r\n" + sec, "line 2: a=ice-pwd must be 22 to 256"},
		{"bad ufrag character", "a=ice-ufrag:ab;d\r\n" + sec, "not an ICE character"},
		{"credentials that disagree", "a=ice-ufrag:abcd\r\n" + sec + "a=ice-ufrag:efgh\r\n", "disagree"},
		{"pwd without ufrag", "a=ice-pwd:0123456789012345678901\r\n" + sec, "a=ice-pwd without a=ice-ufrag"},
		{"empty line inside", sec + "\r\na=candidate:1 1 udp 1 192.0.2.1 5000 typ host\r\n", "line 3: an empty line inside"},
		{"too many sections", strings.Repeat(sec, maxFragmentSections+1), "more than 64 media sections"},
		{"too many candidates", sec + strings.Repeat("a=candidate:1 1 udp 1 192.0.2.1 5000 typ host\r\n", maxFragmentCandidates+1), "more than 128 candidates"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseICEFragment(c.body)
			if !errors.Is(err, ErrInvalidDescription) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want ErrInvalidDescription saying %q", err, c.want)
			}
		})
	}
}

func TestCandidateUfrag(t *testing.T) {
	for c, want := range map[string]string{
		"candidate:1 1 udp 1 192.0.2.1 5000 typ host generation 0 ufrag EsAw network-id 1":         "EsAw",
		"candidate:1 1 udp 1 192.0.2.1 5000 typ srflx raddr 10.0.0.1 rport 9 ufrag abcd":           "abcd",
		"candidate:1 1 udp 1 192.0.2.1 5000 typ host":                                              "",
		"candidate:1 1 udp 1 192.0.2.1 5000 typ host generation ufrag":                             "",
		"candidate:1 1 udp 1 192.0.2.1 5000 typ srflx raddr ufrag rport 9 network-id 1 ufrag wxyz": "wxyz",
	} {
		got, ok := candidateUfrag(c)
		if got != want || ok != (want != "") {
			t.Errorf("candidateUfrag(%q) = %q, %v; want %q", c, got, ok, want)
		}
	}
}

// FuzzParseICEFragment: any body is parsed or refused with
// ErrInvalidDescription, never a panic; what parses is written back
// (String) to a fragment that parses to the same.
func FuzzParseICEFragment(f *testing.F) {
	f.Add(rfc9725Fragment)
	f.Add("a=ice-ufrag:abcd\na=ice-pwd:0123456789012345678901\na=end-of-candidates\n")
	f.Add("m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:v\r\na=candidate:1 1 udp 1 192.0.2.1 5000 typ host\r\n")
	f.Add("a=candidate:1 1 udp 1 192.0.2.1 5000 typ host\r\n")
	f.Add("m=audio 9\r\n")
	f.Fuzz(func(t *testing.T, body string) {
		frag, err := ParseICEFragment(body)
		if err != nil {
			if !errors.Is(err, ErrInvalidDescription) {
				t.Fatalf("error %v is not ErrInvalidDescription", err)
			}
			return
		}
		again, err := ParseICEFragment(frag.String())
		if err != nil {
			t.Fatalf("%q parsed, but its String %q does not: %v", body, frag.String(), err)
		}
		if !reflect.DeepEqual(frag, again) {
			t.Fatalf("round trip of %q:\n%+v\n%+v", body, frag, again)
		}
	})
}

// The description a restart applies has the new credentials, at session
// and media level, no candidate, and every line ended by CRLF, whether the
// client's ended them by CRLF or LF.
func TestWithICECredentials(t *testing.T) {
	const want = "v=0\r\na=ice-ufrag:NEWU\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=ice-ufrag:NEWU\r\na=ice-pwd:NEWPWD\r\na=setup:actpass\r\n"
	for _, eol := range []string{"\r\n", "\n"} {
		d := strings.Join([]string{"v=0", "a=ice-ufrag:old1", "m=audio 9 UDP/TLS/RTP/SAVPF 111", "a=mid:0", "a=ice-ufrag:old1",
			"a=ice-pwd:oldoldoldoldoldoldoldold", "a=candidate:1 1 udp 1 192.0.2.1 5000 typ host", "a=setup:actpass", "a=end-of-candidates", ""}, eol)
		if got := withICECredentials(d, "NEWU", "NEWPWD"); got != want {
			t.Errorf("with %q line ends:\n%q\nwant\n%q", eol, got, want)
		}
	}
}

// A Peer takes ICE fragments from a WHIP or WHEP client once it has its
// offer: a signaling client's, or one before the offer, is refused, and
// counted so.
func TestApplyICEFragmentState(t *testing.T) {
	engine := testEngine(t, defaultInterceptors)
	defer engine.Close()
	m := NewMetrics()
	for _, c := range []struct {
		mode PeerMode
		says string
	}{
		{PeerSignaling, "trickles its candidates as messages"},
		{PeerWHIP, "no offer yet"},
	} {
		p, err := NewPeer(PeerConfig{Engine: engine, Mode: c.mode, Metrics: m})
		if err != nil {
			t.Fatal(err)
		}
		_, err = p.ApplyICEFragment(rfc9725Fragment)
		if !errors.Is(err, ErrNegotiationState) || !strings.Contains(err.Error(), c.says) || p.ICERestarts() != 0 {
			t.Errorf("%s peer: %v, want ErrNegotiationState saying %q", c.mode, err, c.says)
		}
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if got := testutil.ToFloat64(m.link.iceFragments.WithLabelValues("refused")); got != 2 {
		t.Errorf("refused fragments counted %v, want 2", got)
	}
}
