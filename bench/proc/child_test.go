package proc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/troupe-media/troupe/internal/leaktest"
)

// childEnv makes the test binary a child server (see childMain).
const childEnv = "PROCTEST_CHILD"

func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		os.Exit(childMain(mode, os.Args[1:]))
	}
	leaktest.VerifyTestMain(m)
}

// childMain is the child process: "serve" serves /readyz, /metrics and
// /env (the variables named in its query) on args[1] until SIGTERM and
// leaves a file in its dir, args[0]; "fail" exits at once with status 3.
func childMain(mode string, args []string) int {
	if mode != "serve" {
		return 3
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if err := os.WriteFile(filepath.Join(args[0], "data"), []byte("x"), 0o600); err != nil {
		return 1
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/readyz", func(http.ResponseWriter, *http.Request) {})
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
		cpu, _ := ProcessCPU(os.Getpid())
		fmt.Fprintf(w, "# TYPE %[1]s counter\n%[1]s %g\n", cpuMetric, cpu.Seconds())
	})
	mux.HandleFunc("/env", func(w http.ResponseWriter, r *http.Request) {
		for _, name := range r.URL.Query()["name"] {
			fmt.Fprintf(w, "%s=%s\n", name, os.Getenv(name))
		}
	})
	ln, err := net.Listen("tcp", args[1])
	if err != nil {
		return 1
	}
	srv := &http.Server{Handler: mux}
	go func() {
		<-ctx.Done()
		srv.Shutdown(context.Background())
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return 1
	}
	return 0
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

// A child starts with the environment it is given and none of the
// caller's TROUPE_* variables, reports its CPU through /proc and /metrics,
// and stops on SIGTERM with its dir removed.
func TestChildLifecycle(t *testing.T) {
	t.Setenv("TROUPE_LEAKED", "from the parent")
	var dir string
	c, err := StartChild(context.Background(), ChildConfig{
		Exe: os.Args[0],
		Args: func(d, addr string) []string {
			dir = d
			return []string{d, addr}
		},
		Env:    []string{childEnv + "=serve", "TROUPE_GIVEN=yes"},
		Stderr: os.Stderr,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(c.URL(), "http://127.0.0.1:") {
		t.Errorf("URL %q is not on loopback", c.URL())
	}
	if got := get(t, c.URL()+"/env?name=TROUPE_LEAKED&name=TROUPE_GIVEN"); got != "TROUPE_LEAKED=\nTROUPE_GIVEN=yes\n" {
		t.Errorf("child environment:\n%s", got)
	}
	if _, err := ProcessCPU(c.PID()); err != nil {
		t.Errorf("ProcessCPU(child): %v", err)
	}
	client := &http.Client{}
	defer client.CloseIdleConnections()
	if cpu, err := MetricsCPU(context.Background(), client, c.URL()+"/"); err != nil || cpu < 0 {
		t.Errorf("MetricsCPU(child) = %v, %v", cpu, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); err != nil {
		t.Fatalf("the child's dir: %v", err)
	}
	http.DefaultClient.CloseIdleConnections()
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("dir %s left after Stop: %v", dir, err)
	}
}

// A child that exits before it is ready is an error, and leaves nothing.
func TestChildExitsBeforeReady(t *testing.T) {
	var dir string
	_, err := StartChild(context.Background(), ChildConfig{
		Exe:  os.Args[0],
		Args: func(d, _ string) []string { dir = d; return nil },
		Env:  []string{childEnv + "=fail"},
	})
	if !errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("err = %v, want ErrNotReady naming exit status 3", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("dir %s left after a failed start: %v", dir, err)
	}
}

func TestMetricsCPU(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		status     int
		want       float64 // seconds, when no error is wanted
		wantErr    error
		errText    string
	}{
		{"value", "# HELP x\nprocess_cpu_seconds_total_other 9\nprocess_cpu_seconds_total 12.5\n", 200, 12.5, nil, ""},
		{"missing", "go_goroutines 7\n", 200, 0, ErrNoMetric, ""},
		{"not a number", "process_cpu_seconds_total lots\n", 200, 0, nil, `"lots"`},
		{"not served", "", http.StatusNotFound, 0, nil, "404"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/metrics" {
					t.Errorf("path %s", r.URL.Path)
				}
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
			}))
			defer srv.Close()
			cpu, err := MetricsCPU(context.Background(), srv.Client(), srv.URL)
			switch {
			case tc.wantErr != nil && !errors.Is(err, tc.wantErr):
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			case tc.errText != "" && (err == nil || !strings.Contains(err.Error(), tc.errText)):
				t.Fatalf("err = %v, want one containing %s", err, tc.errText)
			case tc.wantErr == nil && tc.errText == "" && (err != nil || cpu.Seconds() != tc.want):
				t.Fatalf("MetricsCPU = %v, %v; want %vs", cpu, err, tc.want)
			}
		})
	}
}

// Metric reads the figure of the name asked for, not one whose name it
// begins.
func TestMetricByName(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "troupe_room_actors_total 9\ntroupe_room_actors 3\n")
	}))
	defer srv.Close()
	if v, err := Metric(context.Background(), srv.Client(), srv.URL, "troupe_room_actors"); err != nil || v != 3 {
		t.Fatalf("Metric(troupe_room_actors) = %v, %v; want 3", v, err)
	}
	if _, err := Metric(context.Background(), srv.Client(), srv.URL, "troupe_participants"); !errors.Is(err, ErrNoMetric) {
		t.Fatalf("Metric(troupe_participants) = %v, want ErrNoMetric", err)
	}
}
