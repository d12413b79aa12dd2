package proc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

const (
	// readyTimeout bounds a child's start, from exec to its /readyz.
	readyTimeout = 30 * time.Second
	// StopTimeout is how long a child has to stop after SIGTERM before it
	// is killed.
	StopTimeout = 30 * time.Second
	// readyPoll is how often /readyz is asked while a child starts.
	readyPoll = 50 * time.Millisecond
)

// ChildConfig describes a child process to start.
type ChildConfig struct {
	// Exe is the executable; default this process's own, so that the
	// server measured is the build that measures it.
	Exe string
	// Args returns the child's arguments, given the temporary dir it may
	// use and the loopback host:port it is to serve HTTP on. Required.
	Args func(dir, addr string) []string
	// Env is added to this process's environment, from which TROUPE_*
	// variables are dropped so that the child runs with exactly the
	// settings chosen for it.
	Env []string
	// Stderr receives the child's stderr; its stdout is discarded.
	Stderr io.Writer
}

// Child is a server running as a child process. Its temporary dir is
// removed when it stops.
type Child struct {
	cmd     *exec.Cmd
	exited  chan struct{} // closed when cmd.Wait returns
	waitErr error         // set before exited is closed
	dir     string
	url     string
}

// StartChild starts a child process as cfg says, on a new temporary dir
// and a free loopback port, and returns once its /readyz answers 200. If
// it fails, nothing is left running or on disk.
func StartChild(ctx context.Context, cfg ChildConfig) (_ *Child, err error) {
	if cfg.Args == nil {
		return nil, errors.New("proc: ChildConfig.Args is required")
	}
	exe := cfg.Exe
	if exe == "" {
		if exe, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("proc: find own executable: %w", err)
		}
	}
	addr, err := freeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "troupe-bench-")
	if err != nil {
		return nil, fmt.Errorf("proc: %w", err)
	}
	c := &Child{dir: dir, url: "http://" + addr, exited: make(chan struct{})}
	c.cmd = exec.Command(exe, cfg.Args(dir, addr)...)
	c.cmd.Env = append(WithoutTroupeEnv(os.Environ()), cfg.Env...)
	c.cmd.Stdout = io.Discard
	c.cmd.Stderr = cfg.Stderr
	// A benchmark killed outright takes its server down with it.
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := c.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("proc: start server: %w", err)
	}
	// The one goroutine a Child owns: it ends when the process does, which
	// Stop sees to.
	go func() {
		c.waitErr = c.cmd.Wait()
		close(c.exited)
	}()
	defer func() {
		if err != nil {
			err = errors.Join(err, c.Stop())
		}
	}()
	return c, c.waitReady(ctx)
}

// URL is the child's base URL, like http://127.0.0.1:40123.
func (c *Child) URL() string { return c.url }

// PID is the child's process id, for ProcessCPU and ProcessRSS.
func (c *Child) PID() int { return c.cmd.Process.Pid }

// WithoutTroupeEnv returns env without its TROUPE_* variables.
func WithoutTroupeEnv(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, "TROUPE_") {
			out = append(out, kv)
		}
	}
	return out
}

func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("proc: find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func (c *Child) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	defer client.CloseIdleConnections()
	tick := time.NewTicker(readyPoll)
	defer tick.Stop()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url+"/readyz", nil)
		if err != nil {
			return err
		}
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-c.exited:
			return fmt.Errorf("%w: it exited: %v", ErrNotReady, c.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ErrNotReady, ctx.Err())
		case <-tick.C:
		}
	}
}

// Stop asks the child to shut down as an operator would (SIGTERM), kills
// it if it has not stopped within StopTimeout, and removes its dir. It
// reports a child that had to be killed or that exited with an error.
func (c *Child) Stop() error {
	var err error
	select {
	case <-c.exited:
	default:
		c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.exited:
		case <-time.After(StopTimeout):
			c.cmd.Process.Kill()
			<-c.exited
			err = errors.New("proc: server did not stop on SIGTERM; killed")
		}
	}
	if err == nil && c.waitErr != nil {
		err = fmt.Errorf("proc: server exited: %w", c.waitErr)
	}
	return errors.Join(err, os.RemoveAll(c.dir))
}
