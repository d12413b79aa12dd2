package proc

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// cpuMetric is the Prometheus process collector's CPU time, in seconds.
const cpuMetric = "process_cpu_seconds_total"

// MetricsCPU is the CPU time a server has used, as its /metrics reports
// it: the figure for a server on another machine, or one whose process id
// is not known.
func MetricsCPU(ctx context.Context, client *http.Client, baseURL string) (time.Duration, error) {
	s, err := Metric(ctx, client, baseURL, cpuMetric)
	if err != nil {
		return 0, err
	}
	return time.Duration(s * float64(time.Second)), nil
}

// Metric reads an unlabelled gauge or counter from the /metrics of the
// server at baseURL; ErrNoMetric when it does not carry one of that name.
func Metric(ctx context.Context, client *http.Client, baseURL, name string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(baseURL, "/")+"/metrics", nil)
	if err != nil {
		return 0, fmt.Errorf("proc: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("proc: /metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("proc: /metrics: %s", resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), name+" ")
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil {
			return 0, fmt.Errorf("proc: /metrics: %s %q: %w", name, v, err)
		}
		return f, nil
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("proc: /metrics: %w", err)
	}
	return 0, fmt.Errorf("%w: /metrics has no %s", ErrNoMetric, name)
}
