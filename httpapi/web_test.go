package httpapi

import (
	"bytes"
	"encoding/binary"
	"image/png"
	"net/http"
	"strings"
	"testing"
)

// The icon browsers ask for is served: an ICO holding one 32×32 PNG, as
// the page's <link rel="icon"> says.
func TestWebIcon(t *testing.T) {
	s := newStack(t, nil)
	r := s.do(t, http.MethodGet, "/favicon.ico", "", header{"Authorization", ""})
	mustStatus(t, r, http.StatusOK)
	if ct := r.header.Get("Content-Type"); ct != "image/x-icon" {
		t.Errorf("Content-Type %q", ct)
	}
	// ICONDIR (reserved, type 1, count) then one ICONDIRENTRY.
	var dir struct {
		Reserved, Type, Count uint16
		Width, Height         uint8
		Colors, Reserved2     uint8
		Planes, Bits          uint16
		Size, Offset          uint32
	}
	if err := binary.Read(bytes.NewReader(r.body), binary.LittleEndian, &dir); err != nil {
		t.Fatal(err)
	}
	if dir.Reserved != 0 || dir.Type != 1 || dir.Count != 1 || int(dir.Offset)+int(dir.Size) != len(r.body) {
		t.Fatalf("ICO header %+v for %d bytes", dir, len(r.body))
	}
	img, err := png.Decode(bytes.NewReader(r.body[dir.Offset:]))
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 32 || b.Dy() != 32 || dir.Width != 32 || dir.Height != 32 {
		t.Errorf("icon %v, directory says %d×%d", b, dir.Width, dir.Height)
	}
	if !bytes.Contains(s.api.page, []byte(`<link rel="icon" href="/favicon.ico"`)) {
		t.Error("the page does not link its icon")
	}
}

// The page and its files are served with headers that keep them to their
// own origin: no framing, no sniffing, no Referer; the page connects only
// to the server it came from.
func TestWebHeaders(t *testing.T) {
	s := newStack(t, nil)
	for _, path := range []string{"/", "/rooms/studio", "/app.js", "/app.css", "/favicon.ico"} {
		r := s.do(t, http.MethodGet, path, "", header{"Authorization", ""})
		mustStatus(t, r, http.StatusOK)
		if got := r.header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("%s: X-Content-Type-Options %q", path, got)
		}
		if got := r.header.Get("Referrer-Policy"); got != "no-referrer" {
			t.Errorf("%s: Referrer-Policy %q", path, got)
		}
		if path != "/" && path != "/rooms/studio" {
			continue
		}
		csp := map[string]string{}
		for _, d := range strings.Split(r.header.Get("Content-Security-Policy"), ";") {
			name, value, _ := strings.Cut(strings.TrimSpace(d), " ")
			csp[name] = value
		}
		if csp["frame-ancestors"] != "'none'" || csp["connect-src"] != "'self'" || csp["default-src"] != "'self'" {
			t.Errorf("%s: Content-Security-Policy %q", path, r.header.Get("Content-Security-Policy"))
		}
		if got := r.header.Get("X-Frame-Options"); got != "DENY" {
			t.Errorf("%s: X-Frame-Options %q", path, got)
		}
	}
}
