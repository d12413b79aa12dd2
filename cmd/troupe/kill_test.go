package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/troupe-media/troupe/bench/proc"
	"github.com/troupe-media/troupe/httpapi/auth"
	"github.com/troupe-media/troupe/internal/poll"
)

// A server killed with SIGKILL while webhook events wait for delivery
// delivers them after it restarts; an event delivered twice carries the
// same delivery id both times.
func TestKilledServerDeliversPendingEventsAfterRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the server twice as a child process")
	}
	// The receiver refuses everything until the server has been killed.
	var mu sync.Mutex
	accepting := false
	attempted := map[string]string{} // delivery id -> room id, refused before the kill
	delivered := map[string]string{} // room id -> delivery id, accepted after
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var payload struct {
			ID     string `json:"id"`
			RoomID string `json:"room_id"`
		}
		if err := json.Unmarshal(body, &payload); err != nil {
			t.Errorf("body %q: %v", body, err)
		}
		mu.Lock()
		defer mu.Unlock()
		if r.Header.Get("Troupe-Delivery") != payload.ID {
			t.Errorf("header delivery id %q, body %q", r.Header.Get("Troupe-Delivery"), payload.ID)
		}
		if !accepting {
			attempted[payload.ID] = payload.RoomID
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		if prev, ok := delivered[payload.RoomID]; ok && prev != payload.ID {
			t.Errorf("room %s delivered under %s and %s", payload.RoomID, prev, payload.ID)
		}
		delivered[payload.RoomID] = payload.ID
	}))
	defer receiver.Close()

	dataDir := t.TempDir()
	key := auth.Key{ID: "TKkill", Secret: "0123456789abcdef0123456789abcdef"}
	addr := freeAddr(t)
	start := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "serve", "--data-dir", dataDir, "--http-addr", addr, "--rtc-udp-port", "0", "--rtc-tcp-port", "0",
			"--log-level", "error", "--webhook-urls", receiver.URL+"/hook", "--webhook-events", "room-created",
			"--webhook-allow-private")
		cmd.Env = append(proc.WithoutTroupeEnv(os.Environ()), mainEnv+"=1",
			envName("api-key")+"="+key.ID, envName("api-secret")+"="+key.Secret)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		waitReady(t, "http://"+addr)
		return cmd
	}
	token, err := auth.Mint(key, auth.AdminClaims(time.Now(), time.Hour))
	if err != nil {
		t.Fatal(err)
	}

	server := start()
	const rooms = 20
	for i := range rooms {
		req, _ := http.NewRequest("POST", "http://"+addr+"/api/v1/rooms", strings.NewReader(fmt.Sprintf(`{"id":"k%d","name":"K"}`, i)))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("create: %d", resp.StatusCode)
		}
	}
	poll.Until(t, "delivery attempts before the kill", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(attempted) > 0
	})
	if err := server.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	server.Wait()
	mu.Lock()
	accepting = true
	refused := make(map[string]string, len(attempted))
	for id, room := range attempted {
		refused[id] = room
	}
	mu.Unlock()

	server = start()
	defer func() {
		server.Process.Signal(syscall.SIGTERM)
		server.Wait()
	}()
	poll.Until(t, "every room's event delivered after the restart", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(delivered) == rooms
	})
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d deliveries refused before the kill, %d rooms' events delivered after it", len(refused), len(delivered))
	for id, room := range refused {
		if delivered[room] != id {
			t.Errorf("room %s: refused as %s before the kill, delivered as %s after", room, id, delivered[room])
		}
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitReady(t *testing.T, base string) {
	t.Helper()
	poll.Until(t, "the server to be ready", func() bool {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}
