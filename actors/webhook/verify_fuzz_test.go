package webhook

import (
	"strings"
	"testing"
	"time"
)

// FuzzVerify feeds arbitrary headers to Verify, which parses what receivers
// are sent and must reject, never panic on, what it cannot parse.
func FuzzVerify(f *testing.F) {
	body := []byte(`{"id":"whd_1"}`)
	f.Add(Sign([]byte("k"), time.Unix(1772362800, 0), body))
	f.Add("t=1,v1=")
	f.Add(",,=")
	f.Fuzz(func(t *testing.T, header string) {
		if err := Verify(header, []byte("k"), body, time.Unix(1772362800, 0), time.Minute); err == nil {
			if !strings.Contains(header, "v1=") {
				t.Fatalf("accepted %q without a v1 signature", header)
			}
		}
	})
}
