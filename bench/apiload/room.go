package apiload

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// CreateRoom creates the room a run of OpGet reads, with an admin token,
// and returns its id.
func CreateRoom(ctx context.Context, client *http.Client, baseURL, token string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(baseURL, "/")+"/api/v1/rooms",
		strings.NewReader(`{"name":"bench"}`))
	if err != nil {
		return "", fmt.Errorf("create bench room: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("create bench room: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("create bench room: %s: %s", resp.Status, bytes.TrimSpace(body))
	}
	var room struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(body, &room); err != nil || room.ID == "" {
		return "", fmt.Errorf("create bench room: unexpected reply %q", body)
	}
	return room.ID, nil
}
