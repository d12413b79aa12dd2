package main

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const mod = "github.com/troupe-media/troupe/"

// The import direction of the README's project layout, for every package of the module:
// cmd -> httpapi -> actors -> {rtc, persistence}. A package may skip a
// layer down, never import one up, and the edge never touches Pebble or
// pion itself: it reaches the store through actors. The record schema
// (persistence/recordpb, generated, no Pebble in it) is the one part of
// persistence the edge may name.
func TestImportDirection(t *testing.T) {
	forbidden := map[string][]string{
		mod + "httpapi": {mod + "cmd", mod + "persistence", "github.com/cockroachdb/pebble", "github.com/pion/webrtc"},
		mod + "actors":  {mod + "cmd", mod + "httpapi", "github.com/gin-gonic/gin"},
		mod + "bench":   {mod + "cmd"},
	}
	allowed := map[string][]string{
		mod + "httpapi": {mod + "persistence/recordpb"},
	}
	checked := 0
	for _, pkg := range goList(t, "-json", mod+"...") {
		for layer, bans := range forbidden {
			if pkg.ImportPath == layer || strings.HasPrefix(pkg.ImportPath, layer+"/") {
				checked++
				for _, imp := range pkg.Imports {
					if banned(imp, bans) && !banned(imp, allowed[layer]) {
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

// The lower layers know nothing of what is built on them, not even through
// a dependency or in their tests: the data plane (rtc) and the store
// (persistence) neither each other, nor actors, HTTP or protoactor; the
// webhook deliverer nothing of the actors that drive it. The clock, which
// every layer takes, and the tests' poll, leak check and shared buffer
// know nothing of Troupe at all; the tests' browsers know only poll (and
// Firefox's also the shared buffer and, in its tests, the leak check).
func TestLowerLayersStandAlone(t *testing.T) {
	above := []string{mod + "cmd", mod + "httpapi", mod + "actors", "github.com/gin-gonic/gin", "github.com/asynkron/protoactor-go"}
	for layer, bans := range map[string][]string{
		mod + "rtc":                  append([]string{mod + "persistence"}, above...),
		mod + "persistence":          append([]string{mod + "rtc", "github.com/pion/"}, above...),
		mod + "actors/webhook":       append([]string{mod + "rtc"}, above...),
		mod + "internal/clock":       {mod},
		mod + "internal/poll":        {mod},
		mod + "internal/leaktest":    {mod},
		mod + "internal/syncbuf":     {mod},
		mod + "internal/browsertest": {mod + "cmd", mod + "httpapi", mod + "actors", mod + "rtc", mod + "persistence", mod + "bench"},
		mod + "internal/firefoxtest": {mod + "cmd", mod + "httpapi", mod + "actors", mod + "rtc", mod + "persistence", mod + "bench"},
	} {
		deps := goList(t, "-deps", "-test", "-json", layer+"/...")
		if len(deps) < 10 {
			t.Fatalf("%s: go list gave %d packages, too few to be its dependencies", layer, len(deps))
		}
		for _, dep := range deps {
			inside := dep.ImportPath == layer || strings.HasPrefix(dep.ImportPath, layer+"/") ||
				strings.HasPrefix(dep.ImportPath, layer+".test") || strings.HasPrefix(dep.ImportPath, layer+" ")
			if !inside && banned(dep.ImportPath, bans) {
				t.Errorf("%s depends on %s", layer, dep.ImportPath)
			}
		}
	}
}

type listedPackage struct {
	ImportPath string
	Imports    []string
}

func goList(t *testing.T, args ...string) []listedPackage {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go tool not in PATH")
	}
	out, err := exec.Command("go", append([]string{"list"}, args...)...).Output()
	if err != nil {
		t.Fatalf("go list %v: %v", args, err)
	}
	var pkgs []listedPackage
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p listedPackage
		if err := dec.Decode(&p); err == io.EOF {
			return pkgs
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
}

// banned reports whether path is one of bans or below one of them.
func banned(path string, bans []string) bool {
	for _, ban := range bans {
		if path == ban || strings.HasPrefix(path, strings.TrimSuffix(ban, "/")+"/") {
			return true
		}
	}
	return false
}
