package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/troupe-media/troupe/bench/client"
	"github.com/troupe-media/troupe/httpapi/auth"
	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/rtc/rtctest"
)

// A two-person call, joined and left as it should be, logs no warning: a
// warning is for something an operator should look at. The logs at debug
// level are JSON objects whose keys are unique, and a refused join is
// logged at info with its reason.
func TestJoinAndLeaveLogNoWarning(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a call over loopback")
	}
	cfg := testConfig(t.TempDir())
	cfg.LogLevel, cfg.LogFormat = "debug", "json"
	s := startServer(t, cfg)
	s.mustDo(http.StatusCreated, http.MethodPost, "/api/v1/rooms",
		`{"id":"talk","name":"Talk","config":{"max_participants":2}}`)
	key, err := loadKey(cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	api, err := rtctest.ClientAPI()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dial := func(identity string, onTrack func(*webrtc.TrackRemote)) (*client.Client, error) {
		token, err := auth.Mint(key, auth.JoinClaims(time.Now(), time.Hour, "talk", identity, identity, auth.RolePublisher))
		if err != nil {
			t.Fatal(err)
		}
		return client.Dial(ctx, client.Config{URL: s.url, Token: token, API: api, OnTrack: onTrack,
			Logger: slog.New(slog.DiscardHandler)})
	}

	alice, err := dial("alice", nil)
	if err != nil {
		t.Fatal(err)
	}
	received := make(chan struct{})
	bob, err := dial("bob", func(tr *webrtc.TrackRemote) {
		buf := make([]byte, 1500)
		if _, _, err := tr.Read(buf); err == nil {
			close(received)
		}
		for {
			if _, _, err := tr.Read(buf); err != nil {
				return
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	track, err := webrtc.NewTrackLocalStaticRTP(rtctest.VP8, "video", "alice")
	if err != nil {
		t.Fatal(err)
	}
	senders, err := alice.Publish(ctx, track)
	if err != nil {
		t.Fatal(err)
	}
	sender := &rtctest.Sender{Track: track, PayloadSize: 1000, TimestampStep: 3000}
	go sender.ServeKeyframeRequests(senders[0]) // ends with alice's peer connection
	sendCtx, stopSending := context.WithCancel(ctx)
	sent := make(chan error, 1)
	go func() { sent <- sender.RunFrames(sendCtx, 33*time.Millisecond) }()
	select {
	case <-received:
	case <-ctx.Done():
		t.Fatal("bob received no video")
	}

	// The room is full: a third join is refused.
	if carol, err := dial("carol", nil); !errors.Is(err, client.ErrRefused) {
		if carol != nil {
			carol.Close()
		}
		t.Fatalf("carol's join: %v, want a refusal", err)
	}

	stopSending()
	if err := <-sent; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	bob.Close()
	alice.Close()
	poll.Until(t, "everyone to have left", func() bool {
		_, v := s.do(http.MethodGet, "/api/v1/rooms/talk/participants", "")
		list, ok := v.([]any)
		return ok && len(list) == 0
	})
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}

	var refusal bool
	for _, line := range strings.Split(strings.TrimSpace(s.log.String()), "\n") {
		rec, err := decodeUniqueKeys([]byte(line))
		if err != nil {
			t.Errorf("log line %s: %v", line, err)
			continue
		}
		switch rec["level"] {
		case "WARN", "ERROR":
			t.Errorf("%s", line)
		}
		if rec["level"] == "INFO" && rec["msg"] == "join refused" && rec["identity"] == "carol" &&
			strings.Contains(fmt.Sprint(rec["reason"]), "full") {
			refusal = true
		}
	}
	if !refusal {
		t.Errorf("no info record of carol's refused join with its reason")
	}
}

// decodeUniqueKeys decodes one JSON object, failing on a key that appears
// twice at one level: encoding/json would keep the last one silently.
func decodeUniqueKeys(data []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := checkUniqueKeys(dec); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("more than one JSON value")
	}
	var rec map[string]any
	return rec, json.Unmarshal(data, &rec)
}

// checkUniqueKeys reads the next value from dec.
func checkUniqueKeys(dec *json.Decoder) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch tok {
	case json.Delim('{'):
		seen := map[string]bool{}
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return err
			}
			key := k.(string)
			if seen[key] {
				return fmt.Errorf("key %q appears twice", key)
			}
			seen[key] = true
			if err := checkUniqueKeys(dec); err != nil {
				return err
			}
		}
		_, err = dec.Token() // }
		return err
	case json.Delim('['):
		for dec.More() {
			if err := checkUniqueKeys(dec); err != nil {
				return err
			}
		}
		_, err = dec.Token() // ]
		return err
	}
	return nil
}

// A logger named again by a package under its caller's name writes the
// key once, with the inner name; groups keep their own keys.
func TestLoggerWritesEachKeyOnce(t *testing.T) {
	var buf bytes.Buffer
	cfg := DefaultConfig()
	cfg.LogLevel, cfg.LogFormat = "debug", "json"
	log := newLogger(&buf, cfg)
	log.With("component", "actors", "room", "r1").With("component", "protoactor").Debug("one")
	log.With("component", "httpapi").WithGroup("req").With("component", "inner").Info("two", "status", 200)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines: %q", len(lines), buf.String())
	}
	one, err := decodeUniqueKeys([]byte(lines[0]))
	if err != nil {
		t.Fatalf("%s: %v", lines[0], err)
	}
	if one["component"] != "protoactor" || one["room"] != "r1" {
		t.Errorf("first line %s", lines[0])
	}
	two, err := decodeUniqueKeys([]byte(lines[1]))
	if err != nil {
		t.Fatalf("%s: %v", lines[1], err)
	}
	group, _ := two["req"].(map[string]any)
	if two["component"] != "httpapi" || group["component"] != "inner" || group["status"] != 200.0 {
		t.Errorf("second line %s", lines[1])
	}
}

// Every record of a start and a stop names its component, the server's own
// ones "server"; with ICE over TCP off the start line says so.
func TestStartAndStopRecordsNameTheirComponent(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.LogLevel, cfg.LogFormat = "info", "json"
	cfg.RTCTCPPort = rtcTCPOff
	var logs []string
	for range 2 { // the first start generates the key, the second loads it
		s := startServer(t, cfg)
		if err := s.stop(); err != nil {
			t.Fatal(err)
		}
		logs = append(logs, strings.Split(strings.TrimSpace(s.log.String()), "\n")...)
	}
	own := map[string]bool{}
	for _, line := range logs {
		rec, err := decodeUniqueKeys([]byte(line))
		if err != nil {
			t.Fatalf("log line %s: %v", line, err)
		}
		c, _ := rec["component"].(string)
		if c == "" {
			t.Errorf("no component: %s", line)
		}
		msg, _ := rec["msg"].(string)
		if c == "server" {
			own[msg] = true
		}
		if msg == "troupe serving" && rec["rtc_tcp"] != "off" {
			t.Errorf("start line with ICE over TCP off: %s", line)
		}
	}
	for _, msg := range []string{"troupe serving", "generated a new API key", "loaded API key", "shutting down: closing the store", "stopped"} {
		if !own[msg] {
			t.Errorf("no %q record of component server", msg)
		}
	}
}
