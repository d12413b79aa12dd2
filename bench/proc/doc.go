// Package proc is the server process a benchmark measures: it starts one as
// a child process on a temporary dir and a free loopback port, waits for it
// to be ready and stops it as an operator would; and it reads what a
// server costs, its CPU time and memory from /proc when it runs on this
// machine, its CPU time from its /metrics otherwise, and any other figure
// its /metrics carries.
//
// The commands under `troupe bench` use it; it knows nothing of how the
// server is built, only its /readyz and /metrics endpoints.
package proc
