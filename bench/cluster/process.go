package cluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	// readyTimeout bounds a process's start, from exec to its first
	// healthy answer.
	readyTimeout = 60 * time.Second
	// readyPoll is the pause between two health checks while a process
	// starts.
	readyPoll = 20 * time.Millisecond
	// stopTimeout is how long a process has to stop on SIGTERM before the
	// rig kills it and reports it stuck.
	stopTimeout = 30 * time.Second
	// pauseTimeout bounds the wait for every thread of a process to have
	// stopped on SIGSTOP.
	pauseTimeout = 10 * time.Second
)

// process is one child process of the rig, its output in a log file.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	log     *os.File
	exited  chan struct{} // closed when cmd.Wait has returned
	waitErr error         // set before exited is closed

	mu       sync.Mutex // guards the following
	paused   bool       // SIGSTOPped and not resumed
	expected bool       // the rig ended it, so its exit is no failure
}

// startProcess runs exe with args and env (added to this process's
// environment without its TROUPE_* and ETCD_* variables, so that the child
// runs with exactly what the rig chose), its stdout and stderr going to
// logPath.
func startProcess(name, exe string, args, env []string, logPath string) (*process, error) {
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("cluster: %s log: %w", name, err)
	}
	p := &process{name: name, logPath: logPath, log: log, exited: make(chan struct{})}
	p.cmd = exec.Command(exe, args...)
	p.cmd.Env = append(cleanEnv(os.Environ()), env...)
	p.cmd.Stdout, p.cmd.Stderr = log, log
	// A test binary killed outright takes its processes with it.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("cluster: start %s: %w", name, err)
	}
	// The one goroutine a process owns: it ends when the process does,
	// which stop sees to.
	go func() {
		p.waitErr = p.cmd.Wait()
		p.log.Close()
		close(p.exited)
	}()
	return p, nil
}

// cleanEnv returns env without the variables that would configure a
// troupe or an etcd behind the rig's back.
func cleanEnv(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, "TROUPE_") && !strings.HasPrefix(kv, "ETCD_") {
			out = append(out, kv)
		}
	}
	return out
}

func (p *process) pid() int { return p.cmd.Process.Pid }

// alive reports whether the process has not exited.
func (p *process) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *process) kill() {
	p.mu.Lock()
	p.expected = true
	p.mu.Unlock()
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// pause stops the process with SIGSTOP: it keeps its sockets but answers
// nothing, as a machine that froze. It returns once every thread of the
// process has stopped: the signal is sent at once, but a thread that runs
// on another CPU (or a vCPU the host has not scheduled) stops only when it
// next enters the kernel, and a test must not reach a process that still
// answers.
func (p *process) pause() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		return fmt.Errorf("cluster: SIGSTOP %s: %w", p.name, err)
	}
	p.paused = true
	tick := time.NewTicker(readyPoll / 4)
	defer tick.Stop()
	deadline := time.After(pauseTimeout)
	for {
		stopped, err := allStopped(p.cmd.Process.Pid)
		if err != nil || stopped {
			return err
		}
		select {
		case <-tick.C:
		case <-deadline:
			return fmt.Errorf("cluster: %s still runs %v after SIGSTOP", p.name, pauseTimeout)
		case <-p.exited:
			return fmt.Errorf("cluster: %s exited when stopped", p.name)
		}
	}
}

// allStopped reports whether every thread of process pid is stopped (state
// T in /proc/PID/task/TID/stat).
func allStopped(pid int) (bool, error) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return false, fmt.Errorf("cluster: threads of process %d: %w", pid, err)
	}
	for _, task := range tasks {
		stat, err := os.ReadFile(dir + "/" + task.Name() + "/stat")
		if errors.Is(err, os.ErrNotExist) {
			continue // the thread ended
		}
		if err != nil {
			return false, fmt.Errorf("cluster: thread %s of process %d: %w", task.Name(), pid, err)
		}
		// The state follows the command's closing parenthesis.
		i := strings.LastIndexByte(string(stat), ')')
		if i < 0 || i+2 >= len(stat) {
			return false, fmt.Errorf("cluster: thread %s of process %d: malformed stat", task.Name(), pid)
		}
		if state := stat[i+2]; state != 'T' && state != 't' {
			return false, nil
		}
	}
	return true, nil
}

// resume continues a paused process with SIGCONT.
func (p *process) resume() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		return fmt.Errorf("cluster: SIGCONT %s: %w", p.name, err)
	}
	p.paused = false
	return nil
}

// stop asks the process to end as an operator would (SIGTERM, after
// SIGCONT if it is paused) and waits for it. It reports a process that
// had exited by itself before, that had to be killed after stopTimeout,
// or that exited with an error.
func (p *process) stop() error {
	p.mu.Lock()
	expected, paused := p.expected, p.paused
	p.expected = true
	p.mu.Unlock()
	select {
	case <-p.exited:
		if expected {
			return nil
		}
		return fmt.Errorf("cluster: %s exited by itself: %v", p.name, p.waitErr)
	default:
	}
	if paused {
		_ = p.cmd.Process.Signal(syscall.SIGCONT)
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(stopTimeout):
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.exited
		return fmt.Errorf("cluster: %s did not stop within %v of SIGTERM: killed", p.name, stopTimeout)
	}
	if p.waitErr != nil && !endedBy(p.waitErr, syscall.SIGTERM) {
		return fmt.Errorf("cluster: %s: %w", p.name, p.waitErr)
	}
	return nil
}

// endedBy reports whether a process's exit error is its death by sig:
// etcd, once it has stopped cleanly on SIGTERM, raises it again.
func endedBy(err error, sig syscall.Signal) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == sig
}

// waitReady calls ok until it reports true, or fails once the process has
// exited or readyTimeout has passed.
func (p *process) waitReady(ctx context.Context, ok func(context.Context) bool) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	tick := time.NewTicker(readyPoll)
	defer tick.Stop()
	for !ok(ctx) {
		select {
		case <-p.exited:
			return fmt.Errorf("%w: %s exited: %v", ErrNotReady, p.name, p.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("%w: %s: %w", ErrNotReady, p.name, ctx.Err())
		case <-tick.C:
		}
	}
	return nil
}

// httpOK reports whether GET url answers 200 and its body holds want.
func httpOK(ctx context.Context, client *http.Client, url, want string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var body strings.Builder
	_, _ = bufio.NewReader(resp.Body).WriteTo(&body)
	return resp.StatusCode == http.StatusOK && strings.Contains(body.String(), want)
}

// troubles lists what a log shows went wrong in its process: a panic, a
// fatal runtime error, a data race.
func troubles(logPath string) ([]string, error) {
	f, err := os.Open(logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		for _, sign := range []string{"panic: ", "fatal error: ", "WARNING: DATA RACE"} {
			if strings.HasPrefix(line, sign) {
				out = append(out, line)
			}
		}
	}
	return out, sc.Err()
}

// tail returns the last n lines of a log.
func tail(logPath string, n int) string {
	data, err := os.ReadFile(logPath)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("... (%d lines before)", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// freePort returns a TCP port free on ip now. The rig gives each node an
// address of its own, so that no other process is likely to take the port
// before the node binds it.
func freePort(ip string) (int, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return 0, fmt.Errorf("cluster: find a free port on %s: %w", ip, err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
