// Package cluster is the multi-process fault rig of Troupe's cluster mode:
// it runs an etcd process and several `troupe serve` processes on their own
// loopback addresses (127.0.0.2, 127.0.0.3, ...; each node's HTTP API and
// UDP media on its own address), and injects the faults a cluster must
// survive: SIGKILL of a node (and its restart, with its id, address and
// data), SIGSTOP and SIGCONT of a node or of etcd, another node joining. Its Members join rooms through a chosen node with
// the bench client and remember the ICE candidates the server gave them.
//
// Every process belongs to the test that started it: it is stopped when
// the test ends, its output is kept in a log file in the test's temporary
// dir, the logs are shown when the test fails, and a node that panicked,
// reported a data race or exited by itself fails the test.
//
// etcd is the binary named by TROUPE_ETCD_BIN, else `etcd` on PATH (Debian's
// etcd-server 3.4 or any later etcd). Without one, Start skips the test,
// unless TROUPE_CLUSTER_TESTS=1 asks for the cluster suite, when it fails
// it instead. The troupe executable is built once by BuildTroupe, or given.
//
// The package's tests are the cluster suite (routing through a node that
// does not own the room, placement, scale-out, failover and takeover,
// durability and webhooks across kills, a recording that goes on as its
// next part when its node is killed, a frozen node, a frozen etcd, the
// media benchmark through a cluster); its benchmarks measure the figures
// of bench/RESULTS.md.
//
// Only tests and benchmarks import it.
package cluster
