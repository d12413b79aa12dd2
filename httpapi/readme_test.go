package httpapi

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"strings"
	"testing"
)

// The README's webhook receiver is the code of webhook_example_test.go,
// which the example and the webhook tests run: it cannot rot unnoticed.
func TestREADMEWebhookExample(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n## Webhooks\n")
	if !ok {
		t.Fatal("README has no Webhooks section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	_, block, ok := strings.Cut(section, "```go\n")
	if !ok {
		t.Fatal("the Webhooks section has no Go block")
	}
	block, _, ok = strings.Cut(block, "```")
	if !ok {
		t.Fatal("the Go block is not closed")
	}

	const file = "webhook_example_test.go"
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, file, src, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	var parts []string
	for _, name := range []string{"verifyTroupeSignature", "troupeWebhook"} {
		var fn *ast.FuncDecl
		for _, d := range f.Decls {
			if d, ok := d.(*ast.FuncDecl); ok && d.Name.Name == name {
				fn = d
			}
		}
		if fn == nil || fn.Doc == nil {
			t.Fatalf("%s: no documented func %s", file, name)
		}
		parts = append(parts, string(src[fset.Position(fn.Doc.Pos()).Offset:fset.Position(fn.End()).Offset]))
	}
	if want := strings.Join(parts, "\n\n") + "\n"; block != want {
		t.Fatalf("the README's Go block differs from %s; it should read:\n%s", file, want)
	}
}
