package main

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

// The import direction of DESIGN.md, for every package of the module:
// cmd -> httpapi -> actors -> {rtc, persistence}. A package may skip a
// layer down, never import one up; the edge never touches Pebble or pion
// itself, and rtc and persistence know nothing of actors or HTTP.
func TestImportDirection(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go tool not in PATH")
	}
	const mod = "github.com/troupe-media/troupe/"
	forbidden := map[string][]string{
		mod + "httpapi":     {mod + "cmd", "github.com/cockroachdb/pebble", "github.com/pion/webrtc"},
		mod + "actors":      {mod + "cmd", mod + "httpapi", "github.com/gin-gonic/gin"},
		mod + "rtc":         {mod + "cmd", mod + "httpapi", mod + "actors", mod + "persistence", "github.com/gin-gonic/gin", "github.com/asynkron/protoactor-go"},
		mod + "persistence": {mod + "cmd", mod + "httpapi", mod + "actors", mod + "rtc", "github.com/gin-gonic/gin", "github.com/asynkron/protoactor-go", "github.com/pion/"},
		mod + "bench":       {mod + "cmd"},
	}
	out, err := exec.Command("go", "list", "-json", mod+"...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	checked := 0
	for {
		var pkg struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&pkg); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		for layer, bans := range forbidden {
			if pkg.ImportPath != layer && !strings.HasPrefix(pkg.ImportPath, layer+"/") {
				continue
			}
			checked++
			for _, imp := range pkg.Imports {
				for _, ban := range bans {
					if imp == ban || strings.HasPrefix(imp, strings.TrimSuffix(ban, "/")+"/") {
						t.Errorf("%s imports %s", pkg.ImportPath, imp)
					}
				}
			}
		}
	}
	if checked < 10 {
		t.Fatalf("checked only %d packages: the module's layout changed?", checked)
	}
}
