package persistence

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestImportDirection asserts that persistence, its tests included, depends
// on none of the layers above it: imports point cmd -> httpapi -> actors ->
// persistence, never back.
func TestImportDirection(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not in PATH")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, goTool, "list", "-deps", "-test", "-f", "{{.ImportPath}}", ".").Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("go list: %v\n%s", err, stderr)
	}
	forbidden := []string{
		"github.com/troupe-media/troupe/actors",
		"github.com/troupe-media/troupe/httpapi",
		"github.com/troupe-media/troupe/rtc",
		"github.com/gin-gonic/gin",
		"github.com/asynkron/protoactor-go",
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list returned %d packages, too few to be the dependency list: %q", len(deps), out)
	}
	for _, dep := range deps {
		for _, f := range forbidden {
			if dep == f || strings.HasPrefix(dep, f+"/") {
				t.Errorf("persistence depends on %s", dep)
			}
		}
	}
}
