// Package scenarios holds the media benchmark's scenarios, as YAML files in
// this directory embedded in the binary, and the loader that reads and
// checks them. A scenario says how many rooms, publishers and subscribers
// take part, what media each publisher sends, how people join and for how
// long the load is measured; `troupe bench media` runs it, with flags that
// override the counts and the duration.
package scenarios
