package rtc

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportDirection keeps the data plane free of the control plane and
// the HTTP edge: rtc never imports actors, httpapi, gin or protoactor.
func TestImportDirection(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/troupe-media/troupe/rtc/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	forbidden := []string{
		"github.com/troupe-media/troupe/actors",
		"github.com/troupe-media/troupe/httpapi",
		"github.com/troupe-media/troupe/persistence",
		"github.com/gin-gonic/gin",
		"github.com/asynkron/protoactor-go",
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if pkg == f || strings.HasPrefix(pkg, f+"/") {
				t.Errorf("rtc depends on %s", pkg)
			}
		}
	}
}
