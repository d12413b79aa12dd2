package main

import (
	"fmt"
	"os"
	"reflect"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// loadYAML decodes path over cfg, key by key, so that an error names the
// key, its line and what it wants, in the words the environment's and
// the flags' errors use, not the decoder's. Unknown keys are errors: a
// misspelt key silently ignored is worse than a refusal to start.
func loadYAML(path string, cfg *Config) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("%w: %s: not valid YAML: %s", ErrInvalidConfig, path, strings.TrimPrefix(oneLine(err.Error()), "yaml: "))
	}
	if len(doc.Content) == 0 {
		return nil // empty: nothing set
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		if root.Tag == "!!null" {
			return nil // only comments
		}
		return fmt.Errorf("%w: %s: want keys and their values (like http_addr: 127.0.0.1:7880)", ErrInvalidConfig, path)
	}
	fields := yamlFields(cfg)
	seen := make(map[string]int, len(root.Content)/2)
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		field, ok := fields[k.Value]
		if !ok || k.Kind != yaml.ScalarNode {
			return fmt.Errorf("%w: unknown key %s in %s (line %d)", ErrInvalidConfig, k.Value, path, k.Line)
		}
		if line, twice := seen[k.Value]; twice {
			return fmt.Errorf("%w: key %s given twice in %s (lines %d and %d)", ErrInvalidConfig, k.Value, path, line, k.Line)
		}
		seen[k.Value] = k.Line
		if err := v.Decode(field); err != nil {
			want := yamlWant(field)
			if _, text := field.(*string); !text && v.Kind == yaml.ScalarNode && v.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
				want += ", not in quotes"
			}
			return fmt.Errorf("%w: %s in %s (line %d): want %s", ErrInvalidConfig, k.Value, path, v.Line, want)
		}
	}
	return nil
}

// yamlFields maps each yaml key of Config to its field in cfg.
func yamlFields(cfg *Config) map[string]any {
	v := reflect.ValueOf(cfg).Elem()
	out := make(map[string]any, v.NumField())
	for i := range v.NumField() {
		if name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("yaml"), ","); name != "" && name != "-" {
			out[name] = v.Field(i).Addr().Interface()
		}
	}
	return out
}

// yamlWant says what a setting's value must be, by its type.
func yamlWant(field any) string {
	switch field.(type) {
	case *time.Duration:
		return "a duration like 5s (a number needs its unit: 500ms, 2s, 5m)"
	case *int:
		return "an integer"
	case *float64:
		return "a number"
	case *bool:
		return "true or false"
	case *stringList:
		return "a list of strings, or one comma-separated string"
	case *estimationMode:
		return "off, simulcast or always"
	}
	return "a string"
}
