package webhook

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestImportDirection asserts that webhook depends on neither actors (which
// imports it) nor the layers above: imports point actors -> webhook ->
// persistence.
func TestImportDirection(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not in PATH")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, goTool, "list", "-deps", "-f", "{{.ImportPath}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list returned %d packages, too few to be the dependency list", len(deps))
	}
	for _, dep := range deps {
		for _, f := range []string{"github.com/troupe-media/troupe/actors", "github.com/troupe-media/troupe/httpapi", "github.com/troupe-media/troupe/rtc", "github.com/gin-gonic/gin", "github.com/asynkron/protoactor-go"} {
			if dep != "github.com/troupe-media/troupe/actors/webhook" && (dep == f || strings.HasPrefix(dep, f+"/")) {
				t.Errorf("webhook depends on %s", dep)
			}
		}
	}
}

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
