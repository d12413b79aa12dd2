package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"github.com/troupe-media/troupe/httpapi"
)

// The values of the API commands' enum flags come from the API's OpenAPI
// document (a test holds each to what the server accepts): the CLI refuses
// a wrong value itself, exit 2 before any call, listing the values the
// server would, and keeps no copy of them.

// openAPI is the decoded document.
var openAPI = sync.OnceValue(func() any {
	var doc any
	if err := json.Unmarshal(httpapi.OpenAPIDocument(), &doc); err != nil {
		panic(fmt.Sprintf("httpapi's OpenAPI document is not JSON: %v", err))
	}
	return doc
})

// at follows keys into nested objects, and a $ref where it meets one;
// nil if they lead nowhere.
func at(v any, keys ...string) any {
	for _, k := range keys {
		obj, ok := deref(v).(map[string]any)
		if !ok {
			return nil
		}
		v = obj[k]
	}
	return deref(v)
}

// deref is the object a {"$ref": "#/..."} points to, or v itself.
func deref(v any) any {
	obj, ok := v.(map[string]any)
	if !ok {
		return v
	}
	ref, ok := obj["$ref"].(string)
	if !ok || !strings.HasPrefix(ref, "#/") {
		return v
	}
	return at(openAPI(), strings.Split(strings.TrimPrefix(ref, "#/"), "/")...)
}

// enumOf is a schema's enum. The document is built in, so a schema
// without one is this program's mistake, which every test finds.
func enumOf(schema any, what string) []string {
	list, _ := at(schema, "enum").([]any)
	values := make([]string, 0, len(list))
	for _, v := range list {
		if s, ok := v.(string); ok {
			values = append(values, s)
		}
	}
	if len(values) == 0 {
		panic("the OpenAPI document lists no values for " + what)
	}
	return values
}

// schemaEnum is the values a property of a request body's schema takes.
func schemaEnum(schema, property string) []string {
	return enumOf(at(openAPI(), "components", "schemas", schema, "properties", property), schema+"."+property)
}

// queryEnum is the values a query parameter of GET route takes.
func queryEnum(route, name string) []string {
	params, _ := at(openAPI(), "paths", route, "get", "parameters").([]any)
	for _, p := range params {
		if at(p, "name") == name && at(p, "in") == "query" {
			return enumOf(at(p, "schema"), "GET "+route+"?"+name)
		}
	}
	panic("the OpenAPI document has no query parameter " + name + " of GET " + route)
}

// enumFlag is a string flag whose values the API lists.
type enumFlag struct {
	name   string
	values []string
}

// bind binds the flag to p, its usage ending with the values.
func (e enumFlag) bind(cmd *cobra.Command, p *string, value, usage string) {
	cmd.Flags().StringVar(p, e.name, value, usage+" ("+strings.Join(e.values, ", ")+")")
}

// check refuses a value given that the API would refuse: a usage error
// that lists the values, before any call.
func (e enumFlag) check(cmd *cobra.Command, v string) error {
	if !cmd.Flags().Changed(e.name) || slices.Contains(e.values, v) {
		return nil
	}
	return usageErrorf("--%s %q: must be one of %s", e.name, v, strings.Join(e.values, ", "))
}
