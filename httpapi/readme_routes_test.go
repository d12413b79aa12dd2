package httpapi

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
)

// Every operation openapi.json serves is in README.md's API table, by
// method and path (a placeholder's name aside): an operator reads the
// table, and a route left out of it is one nobody knows to guard or use.
func TestREADMEAPITableCoversOpenAPI(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	var spec struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(doc, &spec); err != nil {
		t.Fatal(err)
	}
	placeholder := regexp.MustCompile(`\{[^}]*\}`)
	route := regexp.MustCompile("`(GET|HEAD|POST|PUT|PATCH|DELETE) (/[^` ?]*)")
	listed := map[string]bool{}
	for _, line := range strings.Split(string(readme), "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		// The first cell names the routes of a row.
		cell, _, _ := strings.Cut(strings.TrimPrefix(line, "| "), " | ")
		for _, m := range route.FindAllStringSubmatch(cell, -1) {
			listed[m[1]+" "+placeholder.ReplaceAllString(m[2], "{}")] = true
		}
	}
	// The page's own files go with the page's row (GET /).
	pageFiles := map[string]bool{"/app.js": true, "/app.css": true, "/favicon.ico": true}
	httpMethods := map[string]bool{"GET": true, "POST": true, "PUT": true, "PATCH": true, "DELETE": true, "OPTIONS": true, "HEAD": true}
	for path, ops := range spec.Paths {
		for method := range ops {
			method = strings.ToUpper(method)
			switch {
			case !httpMethods[method]:
				continue // parameters, summary...
			case method == "OPTIONS" && (strings.HasPrefix(path, "/whip/") || strings.HasPrefix(path, "/whep/")):
				continue // the table's row for OPTIONS on the WHIP and WHEP URLs
			case pageFiles[path]:
				continue
			}
			if !listed[method+" "+placeholder.ReplaceAllString(path, "{}")] {
				t.Errorf("README.md's API table lacks %s %s", method, path)
			}
		}
	}
}
