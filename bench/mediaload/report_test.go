package mediaload

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
)

// Each column of the tables says which figure it is: three columns all
// headed "p99 ms" cannot be told apart.
func TestTableHeadersAreUnique(t *testing.T) {
	steps := []Step{{Server: "troupe", Subscribers: 5}}
	classSteps := []Step{{Server: "troupe", Subscribers: 5, Classes: []ClassStep{{Class: "small", Width: 320, Height: 180}}}}
	for _, tc := range []struct {
		name  string
		write func(*bytes.Buffer) error
	}{
		{"table", func(b *bytes.Buffer) error { return WriteTable(b, steps) }},
		{"comparison", func(b *bytes.Buffer) error { return WriteComparison(b, steps, steps) }},
		{"classes", func(b *bytes.Buffer) error { return writeClassTable(b, classSteps) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := tc.write(&b); err != nil {
				t.Fatal(err)
			}
			header, _, _ := strings.Cut(b.String(), "\n")
			// Columns are separated by at least two spaces; names have one.
			seen := map[string]bool{}
			for _, name := range regexp.MustCompile(`\s{2,}`).Split(strings.TrimSpace(header), -1) {
				if seen[name] {
					t.Errorf("column %q appears twice in %q", name, header)
				}
				seen[name] = true
			}
			if len(seen) < 10 {
				t.Errorf("header %q: %d columns", header, len(seen))
			}
		})
	}
}

// A simulcast step's table is followed by a row per class; the other
// scenarios' tables have none.
func TestClassRows(t *testing.T) {
	var b bytes.Buffer
	if err := WriteTable(&b, []Step{{Server: "troupe"}}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "class") {
		t.Errorf("a table without classes has a class table:\n%s", b.String())
	}
	b.Reset()
	steps := []Step{{Server: "troupe", Subscribers: 3, Classes: []ClassStep{
		{Class: "small", Subscribers: 2, Width: 320, Height: 180, Layers: "q", EndLayers: "q"},
		{Class: "cut", Subscribers: 1, CutKbps: 300, Layers: "q+h", EndLayers: "h", SwitchDownP50Ms: 812},
	}}}
	if err := WriteTable(&b, steps); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"320x180", "q+h", "812", "300"} {
		if !strings.Contains(out, want) {
			t.Errorf("the class rows leave out %q:\n%s", want, out)
		}
	}
}
