// Command troupe is the Troupe media server and its tools.
//
//	troupe [serve]      run the server (the default when no subcommand is given)
//	troupe token        mint an admin or join token with the data dir's API key
//	troupe bench api    load the REST API and report throughput and latency
//	troupe bench media  forward media through real WebRTC clients and measure the server
//	troupe version      print the build version
//	troupe room ...     the REST API from the command line: room, participant,
//	troupe participant  session and recording commands (cli_api.go: --url, --token
//	troupe session      or the local key, a table or --json)
//	troupe recording
//	troupe join         join a room from the terminal: print what arrives, --publish sends
//
// This package owns the process: configuration (flags, TROUPE_* environment,
// a YAML file), the data dir (datadir.go: private to the server's user,
// whatever existed before), the API key kept in it, the TLS certificate of
// the API port (tlscert.go: read again when its files change), and the
// Server, which
// wires the store, the media engine, the room actors, the webhook deliverer
// and the HTTP API together, starts them, and shuts them down in order;
// main turns SIGINT and SIGTERM into that shutdown, after a drain
// (drain.go: no new rooms or joins while the calls go on, up to
// --drain-timeout). In cluster mode it also
// holds the node's membership (cluster.go: the lease, the node record) and
// the placement of new rooms on the least loaded node, with the load each
// node publishes (placement.go says how both work). The benchmarks' own
// machinery lives under bench/; `troupe bench` only wires it to flags. It
// holds no domain logic of its own. A command line it cannot understand
// exits with status 2, any other failure with 1.
package main
