package cluster

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
)

// EtcdBinEnv names the etcd executable; without it, `etcd` on PATH.
const EtcdBinEnv = "TROUPE_ETCD_BIN"

// etcdIP is the loopback address etcd serves on; the nodes take the next
// ones.
const etcdIP = "127.0.0.1"

// FindEtcd returns the etcd executable: TROUPE_ETCD_BIN, or etcd on PATH.
func FindEtcd() (string, error) {
	if p := os.Getenv(EtcdBinEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%w: %s=%s: %v", ErrNoEtcd, EtcdBinEnv, p, err)
		}
		return p, nil
	}
	p, err := exec.LookPath("etcd")
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrNoEtcd, err)
	}
	return p, nil
}

// Etcd is the cluster's etcd: one member, on loopback ports of its own
// and its own data dir, so that it never meets an etcd the system runs.
type Etcd struct {
	proc     *process
	endpoint string
}

// startEtcd starts etcd exe with its data in dir and its log in logPath,
// and returns once it answers /health. An etcd that started but is not
// ready is returned with the error, for the caller to stop.
func startEtcd(ctx context.Context, exe, dir, logPath string, client *http.Client) (*Etcd, error) {
	clientPort, err := freePort(etcdIP)
	if err != nil {
		return nil, err
	}
	peerPort, err := freePort(etcdIP)
	if err != nil {
		return nil, err
	}
	clientURL := "http://" + etcdIP + ":" + strconv.Itoa(clientPort)
	peerURL := "http://" + etcdIP + ":" + strconv.Itoa(peerPort)
	args := []string{
		"--name", "rig",
		"--data-dir", filepath.Join(dir, "etcd-data"),
		"--listen-client-urls", clientURL, "--advertise-client-urls", clientURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "rig=" + peerURL, "--initial-cluster-state", "new",
		"--logger", "zap", "--log-level", "warn",
	}
	var env []string
	if runtime.GOARCH != "amd64" {
		// etcd 3.4 refuses to start on an architecture it does not
		// support officially (arm64 among them) unless told to.
		env = append(env, "ETCD_UNSUPPORTED_ARCH="+runtime.GOARCH)
	}
	p, err := startProcess("etcd", exe, args, env, logPath)
	if err != nil {
		return nil, err
	}
	e := &Etcd{proc: p, endpoint: clientURL}
	if err := p.waitReady(ctx, func(ctx context.Context) bool {
		return httpOK(ctx, client, clientURL+"/health", `"health":"true"`)
	}); err != nil {
		return e, err // the caller stops it, and shows its log
	}
	return e, nil
}

// Endpoint is etcd's client URL, like http://127.0.0.1:41234.
func (e *Etcd) Endpoint() string { return e.endpoint }

// PID is etcd's process id.
func (e *Etcd) PID() int { return e.proc.pid() }

// Pause freezes etcd with SIGSTOP: every node's calls to it hang and its
// leases are not renewed.
func (e *Etcd) Pause() error { return e.proc.pause() }

// Resume continues etcd after Pause.
func (e *Etcd) Resume() error { return e.proc.resume() }
