package rtc

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/pion/ice/v4"
)

// An ICE fragment is the body of a WHIP or WHEP client's PATCH (RFC 9725
// section 4.3): a trickle ICE SDP fragment (RFC 8840,
// application/trickle-ice-sdpfrag). It carries the ICE credentials the
// candidates belong to, at session level or in a media section, and per
// media section (an m= line named by its a=mid) the candidates and
// a=end-of-candidates. A new ufrag and pwd ask for an ICE restart.

const (
	// maxFragmentSections bounds the media sections of a fragment: a
	// bundled client sends one, and a session has a few.
	maxFragmentSections = 64
	// maxFragmentCandidates bounds the candidates of a fragment: a client
	// gathers a few per interface.
	maxFragmentCandidates = 128
)

// ICEFragment is a parsed trickle ICE SDP fragment.
type ICEFragment struct {
	// Ufrag and Pwd are the ICE credentials the fragment names (a=ice-ufrag,
	// a=ice-pwd), "" when it names none.
	Ufrag, Pwd string
	// Sections are its media sections, in order.
	Sections []ICEFragmentSection
	// End: a=end-of-candidates at session level, the end of every
	// section's candidates.
	End bool
}

// ICEFragmentSection is a media section of an ICE fragment.
type ICEFragmentSection struct {
	// Media is the m= line's media ("audio", "video", "application"),
	// and MLine the whole line after "m=".
	Media, MLine string
	// Mid names the section of the session it is about.
	Mid string
	// Candidates are its a=candidate values, "candidate:" included.
	Candidates []string
	// End: the section has a=end-of-candidates.
	End bool
}

// candidateCount returns how many candidates f holds.
func (f *ICEFragment) candidateCount() int {
	n := 0
	for _, s := range f.Sections {
		n += len(s.Candidates)
	}
	return n
}

// ParseICEFragment reads a trickle ICE SDP fragment. It takes session-level
// a=ice-ufrag, a=ice-pwd and a=ice-options (and a=group, which a bundled
// client repeats), then media sections: an m= line, a=mid, a=ice-ufrag and
// a=ice-pwd, c=, a=candidate and a=end-of-candidates; other attributes are
// ignored, as RFC 8840 lets an agent. The error (wrapping
// ErrInvalidDescription) names the line at fault: one that is no SDP line
// or no fragment's, a candidate outside a media section or that does not
// parse, a section without a mid, credentials that disagree.
func ParseICEFragment(s string) (*ICEFragment, error) {
	f := &ICEFragment{}
	var cur *ICEFragmentSection
	ufrags, pwds := map[string]bool{}, map[string]bool{}
	lines := strings.Split(strings.ReplaceAll(s, "\r\n", "\n"), "\n")
	for i, line := range lines {
		n := i + 1
		if line == "" {
			if strings.TrimSpace(strings.Join(lines[i:], "")) != "" {
				return nil, fragError(n, "an empty line inside the fragment")
			}
			break
		}
		if len(line) < 2 || line[1] != '=' {
			return nil, fragError(n, "not an SDP line (type=value)")
		}
		typ, value := line[0], line[2:]
		switch typ {
		case 'm':
			if len(f.Sections) == maxFragmentSections {
				return nil, fragError(n, "more than "+strconv.Itoa(maxFragmentSections)+" media sections")
			}
			if err := checkSection(cur, n); err != nil {
				return nil, err
			}
			fields := strings.Fields(value)
			if len(fields) < 3 {
				return nil, fragError(n, "an m= line needs a media, a port and a protocol")
			}
			if _, err := strconv.ParseUint(strings.SplitN(fields[1], "/", 2)[0], 10, 16); err != nil {
				return nil, fragError(n, "the m= line's port is not a number")
			}
			f.Sections = append(f.Sections, ICEFragmentSection{Media: fields[0], MLine: value})
			cur = &f.Sections[len(f.Sections)-1]
			continue
		case 'c':
			if cur == nil {
				return nil, fragError(n, "c= outside a media section")
			}
			continue // the address of the m= line, which ICE does not use
		case 'a':
		default:
			return nil, fragError(n, fmt.Sprintf("%c= has no place in a trickle ICE fragment", typ))
		}
		name, val, _ := strings.Cut(value, ":")
		switch name {
		case "ice-ufrag":
			if err := checkICEChars(val, 4, n, "a=ice-ufrag"); err != nil {
				return nil, err
			}
			ufrags[val] = true
		case "ice-pwd":
			if err := checkICEChars(val, 22, n, "a=ice-pwd"); err != nil {
				return nil, err
			}
			pwds[val] = true
		case "mid":
			if cur == nil {
				return nil, fragError(n, "a=mid outside a media section")
			}
			if cur.Mid != "" {
				return nil, fragError(n, "a second a=mid in one media section")
			}
			if val == "" {
				return nil, fragError(n, "an empty a=mid")
			}
			cur.Mid = val
		case "candidate":
			if cur == nil {
				return nil, fragError(n, "a=candidate outside a media section (it follows the m= line and a=mid of its section)")
			}
			if f.candidateCount() == maxFragmentCandidates {
				return nil, fragError(n, "more than "+strconv.Itoa(maxFragmentCandidates)+" candidates")
			}
			if err := checkCandidate(value); err != nil {
				return nil, fragError(n, err.Error())
			}
			cur.Candidates = append(cur.Candidates, value)
		case "end-of-candidates":
			if cur == nil {
				f.End = true // RFC 8840 allows it at session level
				continue
			}
			cur.End = true
		}
	}
	if err := checkSection(cur, len(lines)); err != nil {
		return nil, err
	}
	if len(ufrags) > 1 || len(pwds) > 1 {
		return nil, refuse(ErrInvalidDescription, "ICE fragment: its a=ice-ufrag or a=ice-pwd lines disagree")
	}
	for u := range ufrags {
		f.Ufrag = u
	}
	for p := range pwds {
		f.Pwd = p
	}
	if f.Pwd != "" && f.Ufrag == "" {
		return nil, refuse(ErrInvalidDescription, "ICE fragment: a=ice-pwd without a=ice-ufrag")
	}
	if len(f.Sections) == 0 && f.Ufrag == "" && !f.End {
		return nil, refuse(ErrInvalidDescription, "ICE fragment: no media section, ICE credentials or end of candidates: nothing to apply")
	}
	return f, nil
}

// Ended reports whether f ends the client's candidates, at session level
// or in a section.
func (f *ICEFragment) Ended() bool {
	if f.End {
		return true
	}
	for _, s := range f.Sections {
		if s.End {
			return true
		}
	}
	return false
}

// checkSection refuses a media section that ends without its mid.
func checkSection(s *ICEFragmentSection, line int) error {
	if s != nil && s.Mid == "" {
		return fragError(line, "the media section "+strconv.Quote("m="+s.MLine)+" has no a=mid")
	}
	return nil
}

// checkICEChars checks an ICE credential: ice-chars (letters, digits, +
// and /), from minLen to 256 of them (RFC 8839 section 5.4).
func checkICEChars(v string, minLen, line int, what string) error {
	if len(v) < minLen || len(v) > 256 {
		return fragError(line, fmt.Sprintf("%s must be %d to 256 characters", what, minLen))
	}
	for _, c := range v {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '+' || c == '/') {
			return fragError(line, what+" has a character that is not an ICE character")
		}
	}
	return nil
}

// checkCandidate checks the value of an a=candidate line. A candidate
// whose type or transport the server does not know, or whose address is a
// host name (which the server does not resolve), is taken, and dropped
// when added (RFC 9725 section 4.3.2: the server discards candidates it
// cannot use); one that does not parse is refused.
func checkCandidate(v string) error {
	if len(v) > maxCandidateSize {
		return fmt.Errorf("a candidate of more than %d bytes", maxCandidateSize)
	}
	_, err := ice.UnmarshalCandidate(v)
	if err == nil || unusableCandidate(err) {
		return nil
	}
	// pion takes an address only as an IP or an mDNS name: a candidate
	// that parses with an IP in place of its host name is well formed.
	if fields := strings.Fields(v); len(fields) > 4 && isHostName(fields[4]) {
		fields[4] = "192.0.2.1"
		if _, err := ice.UnmarshalCandidate(strings.Join(fields, " ")); err == nil || unusableCandidate(err) {
			return nil
		}
	}
	return fmt.Errorf("the candidate does not parse: %v", err)
}

// unusableCandidate reports whether err is pion's refusal of a well-formed
// candidate of a type or transport it does not know.
func unusableCandidate(err error) bool {
	return errors.Is(err, ice.ErrUnknownCandidateTyp) || errors.Is(err, ice.ErrDetermineNetworkType)
}

// usableCandidate reports whether the server can use the candidate v,
// which checkCandidate took: pion reads it.
func usableCandidate(v string) bool {
	_, err := ice.UnmarshalCandidate(v)
	return err == nil
}

// isHostName reports whether s is a DNS host name: labels of letters,
// digits and hyphens, at most 253 characters.
func isHostName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(s, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

func fragError(line int, reason string) error {
	return refuse(ErrInvalidDescription, "ICE fragment, line %d: %s", line, reason)
}

// String writes f as a trickle ICE SDP fragment, lines ended by CRLF.
func (f *ICEFragment) String() string {
	var b strings.Builder
	if f.Ufrag != "" {
		b.WriteString("a=ice-ufrag:" + f.Ufrag + "\r\n")
	}
	if f.Pwd != "" {
		b.WriteString("a=ice-pwd:" + f.Pwd + "\r\n")
	}
	if f.End {
		b.WriteString("a=end-of-candidates\r\n")
	}
	for _, s := range f.Sections {
		b.WriteString("m=" + s.MLine + "\r\n")
		b.WriteString("a=mid:" + s.Mid + "\r\n")
		for _, c := range s.Candidates {
			b.WriteString("a=" + c + "\r\n")
		}
		if s.End {
			b.WriteString("a=end-of-candidates\r\n")
		}
	}
	return b.String()
}
