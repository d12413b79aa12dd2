package proc

import (
	"errors"
	"os"
	"testing"
	"time"
)

func TestStatParsing(t *testing.T) {
	// A command name with spaces and parentheses, as /proc allows.
	stat := []byte("4242 (troupe (x) y) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 75 0 0 20 0 12 0 100 123456789 3000 18446744073709551615")
	cpu, err := parseStatCPU(stat)
	if err != nil || cpu != 3250*time.Millisecond {
		t.Errorf("parseStatCPU = %v, %v; want 3.25s", cpu, err)
	}
	for _, bad := range []string{"", "4242 troupe S 1", "4242 (troupe) S 1 2 3", "4242 (t) S 1 2 3 4 5 6 7 8 9 x y 0"} {
		if _, err := parseStatCPU([]byte(bad)); !errors.Is(err, ErrNoProcess) {
			t.Errorf("parseStatCPU(%q) = %v, want ErrNoProcess", bad, err)
		}
	}
	rss, err := parseStatusRSS([]byte("Name:\ttroupe\nVmPeak:\t 9999 kB\nVmRSS:\t   51200 kB\nThreads:\t12\n"))
	if err != nil || rss != 51200*1024 {
		t.Errorf("parseStatusRSS = %d, %v", rss, err)
	}
	if _, err := parseStatusRSS([]byte("Name:\tkthread\n")); !errors.Is(err, ErrNoProcess) {
		t.Errorf("no VmRSS: %v", err)
	}
	// This process, for real.
	if cpu, err := ProcessCPU(os.Getpid()); err != nil || cpu < 0 {
		t.Errorf("ProcessCPU(self) = %v, %v", cpu, err)
	}
	if rss, err := ProcessRSS(os.Getpid()); err != nil || rss < 1<<20 {
		t.Errorf("ProcessRSS(self) = %v, %v", rss, err)
	}
	if _, err := ProcessCPU(-1); !errors.Is(err, ErrNoProcess) {
		t.Errorf("ProcessCPU(-1) = %v", err)
	}
}
