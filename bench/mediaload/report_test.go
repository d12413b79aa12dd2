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
	for _, tc := range []struct {
		name  string
		write func(*bytes.Buffer) error
	}{
		{"table", func(b *bytes.Buffer) error { return WriteTable(b, steps) }},
		{"comparison", func(b *bytes.Buffer) error { return WriteComparison(b, steps, steps) }},
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
