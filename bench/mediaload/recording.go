package mediaload

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// This file records the rooms of a scenario that asks for it
// (scenarios.Scenario.Record): each room is created with recording
// enabled, one recording per room starts once its publishers have joined,
// and each step reports what the recordings wrote over its window.

// startRecordings starts a recording of each room, with the API's
// defaults (a file per participant).
func (r *runner) startRecordings(ctx context.Context) error {
	for _, room := range r.rooms {
		var rec struct {
			ID string `json:"id"`
		}
		if err := r.post(ctx, "/api/v1/rooms/"+room+"/recordings", map[string]any{}, http.StatusCreated, &rec); err != nil {
			return fmt.Errorf("start recording: %w", err)
		}
		r.recordings = append(r.recordings, rec.ID)
	}
	return nil
}

// recordedBytes is the size of every recording's files so far, as GET
// /api/v1/recordings/{id} lists them while they are written.
func (r *runner) recordedBytes(ctx context.Context) (int64, error) {
	var total int64
	for _, id := range r.recordings {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(r.cfg.Target.BaseURL, "/")+"/api/v1/recordings/"+id, nil)
		if err != nil {
			return 0, err
		}
		if r.cfg.Target.Token != "" {
			req.Header.Set("Authorization", "Bearer "+r.cfg.Target.Token)
		}
		resp, err := r.http.Do(req)
		if err != nil {
			return 0, fmt.Errorf("GET recording %s: %w", id, err)
		}
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return 0, fmt.Errorf("GET recording %s: %s", id, resp.Status)
		}
		var rec struct {
			Status string `json:"status"`
			Size   int64  `json:"size"`
		}
		if err := json.Unmarshal(data, &rec); err != nil {
			return 0, fmt.Errorf("GET recording %s: %w", id, err)
		}
		if rec.Status != "recording" {
			return 0, fmt.Errorf("%w: recording %s is %s", ErrRecording, id, rec.Status)
		}
		total += rec.Size
	}
	return total, nil
}

// btoi is 1 for true.
func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
