package httpapi

import (
	"encoding/json"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"maps"
	"net/http"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/troupe-media/troupe/actors"
	"github.com/troupe-media/troupe/actors/webhook"
)

type openAPIDoc struct {
	OpenAPI    string                                `json:"openapi"`
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components map[string]map[string]json.RawMessage `json:"components"`
}

type openAPIOperation struct {
	Security  *[]any                     `json:"security"`
	Responses map[string]json.RawMessage `json:"responses"`
}

// Every route served is documented and every documented route is served.
func TestOpenAPICoversRoutes(t *testing.T) {
	s := newStack(t, nil)
	r := s.do(t, http.MethodGet, "/api/v1/openapi.json", "", header{"Authorization", ""})
	mustStatus(t, r, http.StatusOK)
	var doc openAPIDoc
	if err := json.Unmarshal(r.body, &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.1.") {
		t.Fatalf("openapi = %q", doc.OpenAPI)
	}

	var served, documented []string
	for _, route := range s.api.engine.Routes() {
		parts := strings.Split(route.Path, "/")
		for i, p := range parts {
			if strings.HasPrefix(p, ":") {
				parts[i] = "{" + p[1:] + "}"
			}
		}
		served = append(served, route.Method+" "+strings.Join(parts, "/"))
	}
	methods := []string{"get", "put", "post", "patch", "delete", "head", "options"}
	for path, item := range doc.Paths {
		for m, raw := range item {
			if !slices.Contains(methods, m) {
				continue
			}
			documented = append(documented, strings.ToUpper(m)+" "+path)
			var op openAPIOperation
			if err := json.Unmarshal(raw, &op); err != nil {
				t.Fatalf("%s %s: %v", m, path, err)
			}
			public := op.Security != nil && len(*op.Security) == 0
			if !public {
				required := []string{"401", "403", "500"}
				if strings.HasPrefix(path, "/api/v1/") {
					// Rate limits apply to the REST API's keys only.
					required = append(required, "429")
				}
				for _, code := range required {
					if _, ok := op.Responses[code]; !ok {
						t.Errorf("%s %s does not document %s", m, path, code)
					}
				}
			}
			if m == "post" && !strings.Contains(string(raw), "IdempotencyKey") {
				t.Errorf("POST %s does not document Idempotency-Key", path)
			}
		}
	}
	sort.Strings(served)
	sort.Strings(documented)
	if !slices.Equal(served, documented) {
		t.Fatalf("served routes:\n  %s\ndocumented routes:\n  %s",
			strings.Join(served, "\n  "), strings.Join(documented, "\n  "))
	}

	// Every $ref points at something that exists.
	var refs []string
	collectRefs(t, r.body, &refs)
	for _, ref := range refs {
		parts := strings.Split(strings.TrimPrefix(ref, "#/components/"), "/")
		if len(parts) != 2 {
			t.Errorf("odd $ref %q", ref)
			continue
		}
		if _, ok := doc.Components[parts[0]][parts[1]]; !ok {
			t.Errorf("dangling $ref %q", ref)
		}
	}
	// The documented error codes are the ones errors.go defines.
	var codes struct {
		Components struct {
			Schemas struct {
				Error struct {
					Properties struct {
						Error struct {
							Properties struct {
								Code struct {
									Enum []string `json:"enum"`
								} `json:"code"`
							} `json:"properties"`
						} `json:"error"`
					} `json:"properties"`
				} `json:"Error"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(r.body, &codes); err != nil {
		t.Fatal(err)
	}
	enum := codes.Components.Schemas.Error.Properties.Error.Properties.Code.Enum
	sent := sentErrorCodes(t)
	slices.Sort(enum)
	if !slices.Equal(enum, sent) {
		var missing, extra []string
		for _, c := range sent {
			if !slices.Contains(enum, c) {
				missing = append(missing, c)
			}
		}
		for _, c := range enum {
			if !slices.Contains(sent, c) {
				extra = append(extra, c)
			}
		}
		t.Errorf("Error.error.code's enum lacks %v and lists %v that the server never sends", missing, extra)
	}
}

// sentErrorCodes reads the error codes the HTTP API sends from the
// package's source: every string constant named code... outside
// signalmsg.go, whose codes only the signaling socket sends
// (docs/signaling.md lists those). Every error body is built from one of
// them: an error built with a literal code fails the test, so that a new
// code cannot be sent without its entry in openapi.json.
func sentErrorCodes(t *testing.T) []string {
	t.Helper()
	fset := token.NewFileSet()
	pkgs, err := parser.ParseDir(fset, ".", func(fi fs.FileInfo) bool {
		return !strings.HasSuffix(fi.Name(), "_test.go")
	}, 0)
	if err != nil {
		t.Fatal(err)
	}
	var codes []string
	for _, f := range pkgs["httpapi"].Files {
		name := filepath.Base(fset.Position(f.Pos()).Filename)
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.GenDecl:
				if n.Tok != token.CONST || name == "signalmsg.go" {
					return true
				}
				for _, spec := range n.Specs {
					vs := spec.(*ast.ValueSpec)
					for i, id := range vs.Names {
						if !strings.HasPrefix(id.Name, "code") || i >= len(vs.Values) {
							continue
						}
						if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
							c, err := strconv.Unquote(lit.Value)
							if err != nil {
								t.Fatal(err)
							}
							codes = append(codes, c)
						}
					}
				}
			case *ast.CallExpr:
				// newAPIError(status, code, ...), namedError(status, code, ...)
				if fn, ok := n.Fun.(*ast.Ident); ok && (fn.Name == "newAPIError" || fn.Name == "namedError") && len(n.Args) > 1 {
					if _, lit := n.Args[1].(*ast.BasicLit); lit {
						t.Errorf("%s: %s with a literal code: name it with a code constant", fset.Position(n.Pos()), fn.Name)
					}
				}
			case *ast.KeyValueExpr:
				if k, ok := n.Key.(*ast.Ident); ok && k.Name == "code" {
					if _, lit := n.Value.(*ast.BasicLit); lit {
						t.Errorf("%s: an error with a literal code: name it with a code constant", fset.Position(n.Pos()))
					}
				}
			}
			return true
		})
	}
	if len(codes) < 10 {
		t.Fatalf("found %d error codes in the source: %v", len(codes), codes)
	}
	slices.Sort(codes)
	return slices.Compact(codes)
}

func collectRefs(t *testing.T, raw []byte, out *[]string) {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && k == "$ref" {
					*out = append(*out, s)
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(v)
}

// The documented schemas have exactly the fields the handlers render, all
// of them required (every field is always present, null or not).
func TestOpenAPISchemasMatchTypes(t *testing.T) {
	type objectSchema struct {
		Ref        string                     `json:"$ref"`
		Required   []string                   `json:"required"`
		Properties map[string]json.RawMessage `json:"properties"`
		AllOf      []objectSchema             `json:"allOf"`
	}
	var doc struct {
		Components struct {
			Schemas map[string]objectSchema `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(openAPIDocument, &doc); err != nil {
		t.Fatal(err)
	}
	// flat merges an allOf's parts (a $ref to another schema among them)
	// into one object schema, as a validator reads it.
	var flat func(objectSchema) objectSchema
	flat = func(o objectSchema) objectSchema {
		if o.Ref != "" {
			return flat(doc.Components.Schemas[strings.TrimPrefix(o.Ref, "#/components/schemas/")])
		}
		for _, part := range o.AllOf {
			p := flat(part)
			o.Required = append(o.Required, p.Required...)
			if o.Properties == nil {
				o.Properties = map[string]json.RawMessage{}
			}
			maps.Copy(o.Properties, p.Properties)
		}
		return o
	}
	for name, v := range map[string]any{
		"Room": roomJSON{}, "RoomList": roomListJSON{}, "Participant": participantJSON{}, "ListedParticipant": listedParticipantJSON{},
		"Session": sessionJSON{}, "SessionList": sessionListJSON{}, "SessionParticipant": sessionParticipantJSON{}, "SessionParticipantList": sessionParticipantListJSON{},
		"MediaStats": mediaStatsJSON{}, "ParticipantStats": participantStatsJSON{}, "SessionStats": sessionStatsJSON{},
		"WebhookDelivery": deliveryJSON{}, "WebhookDeliveryList": deliveryListJSON{}, "WebhookEvent": webhook.Payload{},
		"Node": nodeJSON{}, "NodeList": nodeListJSON{},
		"Recording": actors.RecordingJSON{}, "RecordingFile": actors.RecordingFileJSON{}, "RecordingList": recordingListJSON{},
	} {
		schema, ok := doc.Components.Schemas[name]
		if !ok {
			t.Errorf("schema %s is not documented", name)
			continue
		}
		schema = flat(schema)
		fields := jsonFields(reflect.TypeOf(v))
		var props []string
		for p := range schema.Properties {
			props = append(props, p)
		}
		required := slices.Clone(schema.Required)
		for _, l := range [][]string{fields, props, required} {
			sort.Strings(l)
		}
		if !slices.Equal(fields, props) || !slices.Equal(fields, required) {
			t.Errorf("schema %s: rendered fields %v, properties %v, required %v", name, fields, props, required)
		}
	}
}

// jsonFields lists the JSON names encoding/json gives a struct's fields,
// embedded structs flattened.
func jsonFields(typ reflect.Type) []string {
	var out []string
	for i := range typ.NumField() {
		f := typ.Field(i)
		tag := f.Tag.Get("json")
		if f.Anonymous && tag == "" {
			out = append(out, jsonFields(f.Type)...)
			continue
		}
		if !f.IsExported() || tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if name == "" {
			name = f.Name
		}
		out = append(out, name)
	}
	return out
}

// A session's end_reason is documented as an enum: exactly the words of
// the actors' end reasons (and null while in progress).
func TestOpenAPIEndReasons(t *testing.T) {
	var defined []string
	for _, r := range []actors.EndReason{
		actors.EndEmptyTimeout, actors.EndSessionLength, actors.EndAutoClose, actors.EndViaAPI,
		actors.EndRoomDeleted, actors.EndServerRestart, actors.EndServerShutdown, actors.EndRoomFailed,
	} {
		defined = append(defined, string(r))
	}
	wantDocumentedEnum(t, "Session", "end_reason", defined)
}

// wantDocumentedEnum checks that the OpenAPI document gives the property
// of the schema exactly the words defined as its enum, in any order (a
// null among them, for a field not set yet, is not a word).
func wantDocumentedEnum(t *testing.T, schema, property string, defined []string) {
	t.Helper()
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]struct {
					Enum []*string `json:"enum"`
				} `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(openAPIDocument, &doc); err != nil {
		t.Fatal(err)
	}
	prop, ok := doc.Components.Schemas[schema].Properties[property]
	if !ok {
		t.Fatalf("%s.%s is not documented", schema, property)
	}
	var documented []string
	for _, w := range prop.Enum {
		if w != nil {
			documented = append(documented, *w)
		}
	}
	slices.Sort(documented)
	defined = slices.Sorted(slices.Values(defined))
	if !slices.Equal(documented, defined) {
		t.Errorf("%s.%s documents %v, defined %v", schema, property, documented, defined)
	}
}

// What a WHEP viewer may ask is documented as it is read: the query
// parameters of its POST are whepQueryParams, the properties of its
// PATCH's body are those decodeLayerSettings takes, each refused by name
// when of the wrong type, and max_quality's words are the qualities.
func TestOpenAPIWHEPSettings(t *testing.T) {
	var doc struct {
		Paths      map[string]map[string]json.RawMessage `json:"paths"`
		Components struct {
			Schemas map[string]json.RawMessage `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(openAPIDocument, &doc); err != nil {
		t.Fatal(err)
	}
	var post struct {
		Parameters []struct {
			Name   string `json:"name"`
			In     string `json:"in"`
			Schema struct {
				Enum []string `json:"enum"`
			} `json:"schema"`
		} `json:"parameters"`
	}
	if err := json.Unmarshal(doc.Paths["/whep/{room}"]["post"], &post); err != nil {
		t.Fatal(err)
	}
	var query []string
	for _, p := range post.Parameters {
		if p.In == "query" {
			query = append(query, p.Name)
			if p.Name == "max_quality" && !slices.Equal(p.Schema.Enum, actors.Qualities()) {
				t.Errorf("the query's max_quality %v, want %v", p.Schema.Enum, actors.Qualities())
			}
		}
	}
	slices.Sort(query)
	if !slices.Equal(query, whepQueryParams) {
		t.Errorf("WHEP POST query parameters %v, want %v", query, whepQueryParams)
	}
	var settings struct {
		Properties map[string]struct {
			Type string   `json:"type"`
			Enum []string `json:"enum"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(doc.Components.Schemas["WHEPSettings"], &settings); err != nil {
		t.Fatal(err)
	}
	props := settings.Properties
	if len(props) == 0 {
		t.Fatal("no WHEPSettings schema")
	}
	if !slices.Equal(props["max_quality"].Enum, actors.Qualities()) {
		t.Errorf("WHEPSettings max_quality %v, want %v", props["max_quality"].Enum, actors.Qualities())
	}
	valid := map[string]string{"integer": "10", "string": `"360p"`, "boolean": "true"}
	wrong := map[string]string{"integer": `"10"`, "string": "10", "boolean": `"yes"`}
	var all []string
	for name, p := range props {
		if valid[p.Type] == "" {
			t.Fatalf("WHEPSettings.%s of type %q", name, p.Type)
		}
		all = append(all, strconv.Quote(name)+":"+valid[p.Type])
		o, err := parseObject([]byte(`{"` + name + `":` + wrong[p.Type] + `}`))
		if err != nil {
			t.Fatal(err)
		}
		var ae *apiError
		if _, err := decodeLayerSettings(o); !errors.As(err, &ae) || ae.details["field"] != name {
			t.Errorf("WHEPSettings.%s of a wrong type: %v, want an error naming it", name, err)
		}
	}
	o, err := parseObject([]byte("{" + strings.Join(all, ",") + "}"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := decodeLayerSettings(o); err != nil {
		t.Errorf("every WHEPSettings property: %v", err)
	} else if err := o.finish(); err != nil {
		t.Errorf("a WHEPSettings property is not read: %v", err)
	}
}

// Every GET that can answer 400 invalid_query documents its 400: asked
// with a limit that is not an integer, each documented GET (path
// parameters naming nothing) either refuses it so, and then lists 400,
// or does not read a limit at all. An operation documenting a limit
// parameter must be among the first kind, and list the 422 of a limit out
// of range as well.
func TestOpenAPIQueryErrorsDocumented(t *testing.T) {
	s := newStack(t, nil)
	var doc openAPIDoc
	if err := json.Unmarshal(openAPIDocument, &doc); err != nil {
		t.Fatal(err)
	}
	for path, item := range doc.Paths {
		raw, ok := item["get"]
		if !ok || !strings.HasPrefix(path, "/api/v1/") {
			continue
		}
		var op struct {
			openAPIOperation
			Parameters []struct {
				Ref  string `json:"$ref"`
				Name string `json:"name"`
			} `json:"parameters"`
		}
		if err := json.Unmarshal(raw, &op); err != nil {
			t.Fatal(err)
		}
		paged := false
		for _, p := range op.Parameters {
			paged = paged || p.Name == "limit" || p.Ref == "#/components/parameters/Limit"
		}
		url := path
		for strings.Contains(url, "{") {
			i, j := strings.Index(url, "{"), strings.Index(url, "}")
			url = url[:i] + "nothing" + url[j+1:]
		}
		r := s.do(t, http.MethodGet, url+"?limit=some", "")
		refused := r.status == http.StatusBadRequest && r.errorCode(t) == codeInvalidQuery
		if _, listed := op.Responses["400"]; refused && !listed {
			t.Errorf("GET %s answers 400 invalid_query (%s) but does not document 400", path, r.body)
		}
		if paged && !refused {
			t.Errorf("GET %s documents a limit, but ?limit=some got %d %s", path, r.status, r.body)
		}
		if _, listed := op.Responses["422"]; paged && !listed {
			t.Errorf("GET %s documents a limit, but not the 422 of one out of range", path)
		}
	}
}
