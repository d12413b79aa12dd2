package httpapi

import (
	"bytes"
	"encoding/json"
	"maps"
	"mime"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// Request bodies are decoded field by field rather than into structs, so
// that every failure names its JSON path (details.field), unknown fields are
// refused at any depth, and an absent field differs from an explicit null
// (PATCH clears nullable fields with null).

// requireJSON checks the Content-Type and emptiness of a body that the
// route requires, and parses it as a JSON object.
func requireJSON(r *http.Request, body []byte) (*jsonObject, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, newAPIError(http.StatusBadRequest, codeEmptyBody, "a JSON request body is required")
	}
	if err := checkContentType(r); err != nil {
		return nil, err
	}
	return parseObject(body)
}

// optionalJSON is requireJSON for routes whose body may be omitted: an
// empty body yields an empty object.
func optionalJSON(r *http.Request, body []byte) (*jsonObject, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return &jsonObject{fields: map[string]json.RawMessage{}}, nil
	}
	return requireJSON(r, body)
}

func checkContentType(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return newAPIError(http.StatusUnsupportedMediaType, codeUnsupportedMediaType, "Content-Type must be application/json")
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return newAPIError(http.StatusUnsupportedMediaType, codeUnsupportedMediaType, "Content-Type must be application/json")
	}
	return nil
}

func parseObject(body []byte) (*jsonObject, error) {
	// encoding/json would replace invalid bytes with U+FFFD and store
	// something the client never sent; JSON text is UTF-8 (RFC 8259).
	if !utf8.Valid(body) {
		return nil, newAPIError(http.StatusBadRequest, codeInvalidUTF8, "the request body is not valid UTF-8")
	}
	if !json.Valid(body) {
		return nil, newAPIError(http.StatusBadRequest, codeMalformedJSON, "the request body is not valid JSON")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil || fields == nil {
		return nil, newAPIError(http.StatusBadRequest, codeMalformedJSON, "the request body must be a JSON object")
	}
	return &jsonObject{fields: fields}, nil
}

// jsonObject is a JSON object whose fields are taken one by one; finish
// reports any field left over as unknown.
type jsonObject struct {
	path   string // "" at the top level
	fields map[string]json.RawMessage
}

// fieldPath is the JSON path of name: parent.name, with a name that is not
// a plain word quoted so that the path stays unambiguous ("" included).
func (o *jsonObject) fieldPath(name string) string {
	if !plainName(name) {
		name = strconv.Quote(name)
	}
	if o.path == "" {
		return name
	}
	return o.path + "." + name
}

func plainName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// take removes and returns the raw value of name. null reports an explicit
// JSON null.
func (o *jsonObject) take(name string) (raw json.RawMessage, present, null bool) {
	raw, present = o.fields[name]
	if !present {
		return nil, false, false
	}
	delete(o.fields, name)
	return raw, true, bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
}

// finish fails on the first (in sorted order, so errors are stable) field
// that no one took.
func (o *jsonObject) finish() error {
	if len(o.fields) == 0 {
		return nil
	}
	names := make([]string, 0, len(o.fields))
	for n := range o.fields {
		names = append(names, n)
	}
	slices.Sort(names)
	return fieldError(o.fieldPath(names[0]), "unknown field")
}

// object takes name as a nested object. A null is reported as null, with a
// nil object.
func (o *jsonObject) object(name string) (_ *jsonObject, present, null bool, _ error) {
	raw, present, null := o.take(name)
	if !present || null {
		return nil, present, null, nil
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return nil, true, false, typeError(o.fieldPath(name), "an object")
	}
	return &jsonObject{path: o.fieldPath(name), fields: fields}, true, false, nil
}

// value takes name and decodes it into a T. what names T for the error
// ("a string", "an integer from 0 to 4294967295"...).
func value[T any](o *jsonObject, name, what string) (v T, present, null bool, err error) {
	raw, present, null := o.take(name)
	if !present || null {
		return v, present, null, nil
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		if !sameType(raw, reflect.TypeFor[T]()) {
			return v, true, false, typeError(o.fieldPath(name), what)
		}
		// The right JSON type, but a value T cannot hold: a number out
		// of range or not whole.
		return v, true, false, fieldError(o.fieldPath(name), "must be "+what)
	}
	return v, true, false, nil
}

// typeError is a 400 for a field of the wrong JSON type (a string where a
// number goes...): the body is not of the request's shape, as a malformed
// one is not. details.field names the field, as a 422 does.
func typeError(field, what string) *apiError {
	return namedError(http.StatusBadRequest, codeInvalidType, field, "must be "+what)
}

// sameType reports whether raw, valid JSON, has the JSON type that t
// decodes from: arrays element by element, objects value by value.
func sameType(raw json.RawMessage, t reflect.Type) bool {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return false
	}
	switch t.Kind() {
	case reflect.String:
		return raw[0] == '"'
	case reflect.Bool:
		return raw[0] == 't' || raw[0] == 'f'
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9'
	case reflect.Slice, reflect.Map:
		var elems []json.RawMessage
		if t.Kind() == reflect.Slice {
			if raw[0] != '[' || json.Unmarshal(raw, &elems) != nil {
				return false
			}
		} else {
			var fields map[string]json.RawMessage
			if raw[0] != '{' || json.Unmarshal(raw, &fields) != nil {
				return false
			}
			elems = slices.Collect(maps.Values(fields))
		}
		return !slices.ContainsFunc(elems, func(e json.RawMessage) bool { return !sameType(e, t.Elem()) })
	}
	return false
}

// nonNull is value for fields that may be absent but not null.
func nonNull[T any](o *jsonObject, name, what string) (*T, error) {
	v, present, null, err := value[T](o, name, what)
	switch {
	case err != nil:
		return nil, err
	case null:
		return nil, fieldError(o.fieldPath(name), "must not be null")
	case !present:
		return nil, nil
	}
	return &v, nil
}

const (
	whatString  = "a string"
	whatBool    = "a boolean"
	whatUint32  = "an integer from 0 to 4294967295"
	whatInt     = "an integer"
	whatStrings = "an array of strings"
	whatTime    = "an RFC 3339 time, e.g. 2026-01-02T15:04:05Z"
)

// timeValue takes name as an RFC 3339 time, normalized to UTC.
func timeValue(o *jsonObject, name string) (t time.Time, present, null bool, err error) {
	s, present, null, err := value[string](o, name, whatTime)
	if err != nil || !present || null {
		return time.Time{}, present, null, err
	}
	// A string that is not a time is a 422, as any value of the right
	// type that fails its rule.
	t, perr := time.Parse(time.RFC3339Nano, s)
	if perr != nil {
		return time.Time{}, true, false, fieldError(o.fieldPath(name), "must be "+whatTime)
	}
	return t.UTC(), true, false, nil
}
