package rtc

import (
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"

	"github.com/troupe-media/troupe/rtc/turnserver"
)

// The engine runs the built-in TURN server beside its ports: the servers
// it hands out hold the configured URLs and TURN credentials for the user
// asked about, and Close stops the TURN server with the ports.
func TestEngineBuiltInTURN(t *testing.T) {
	e, err := NewEngine(Config{
		LoopbackOnly: true, TCP: true, Logger: slog.New(slog.DiscardHandler),
		ICEURLs: []string{"stun:stun.example.com:3478"},
		TURN:    &turnserver.Config{Secret: []byte("0123456789abcdef0123456789abcdef")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if e.TURN() == nil || e.TCPAddr() == nil {
		t.Fatalf("TURN %v, TCP %v", e.TURN(), e.TCPAddr())
	}
	servers := e.ICEServers("PA_a")
	if len(servers) != 2 || !strings.HasPrefix(servers[0].URLs[0], "turn:127.0.0.1:") ||
		!strings.HasSuffix(servers[0].Username, ":PA_a") || servers[1].URLs[0] != "stun:stun.example.com:3478" {
		t.Fatalf("ICE servers %+v", servers)
	}
	turnAddr, tcpAddr := e.TURN().UDPAddr().String(), e.TCPAddr().String()
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	// Both ports are free again.
	c, err := net.ListenPacket("udp", turnAddr)
	if err != nil {
		t.Fatalf("TURN port still taken: %v", err)
	}
	c.Close()
	l, err := net.Listen("tcp", tcpAddr)
	if err != nil {
		t.Fatalf("TCP port still taken: %v", err)
	}
	l.Close()
}

// A TURN server on every interface needs the address its relays are
// announced at.
func TestEngineTURNNeedsRelayAddress(t *testing.T) {
	_, err := NewEngine(Config{BindAddr: "0.0.0.0", Logger: slog.New(slog.DiscardHandler),
		TURN: &turnserver.Config{Secret: []byte("s")}})
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Field != "TURN.RelayIP" {
		t.Fatalf("error %v, want a ConfigError on TURN.RelayIP", err)
	}
}
