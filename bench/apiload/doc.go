// Package apiload is a load generator for Troupe's REST API: a fixed number
// of closed-loop clients (each sends its next request as soon as the last
// one is answered) share one keep-alive HTTP client, and every latency is
// recorded so the percentiles are exact rather than estimated.
//
// `troupe bench api` drives it; it knows nothing of the server's internals
// and talks to it over HTTP only.
package apiload
