package main

import (
	"net"
	"os"
	"path/filepath"
	"testing"
)

// The API commands find the server as serve would listen: TROUPE_URL,
// else TROUPE_HTTP_ADDR, else http_addr of --config; a server that does
// not answer is named with where its address came from.
func TestCLIFindsTheServerByItsConfiguration(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, testConfig(dir))
	t.Setenv("TROUPE_URL", "")
	t.Setenv("TROUPE_TOKEN", "")
	t.Setenv("TROUPE_HTTP_ADDR", "")
	s.mustDo(201, "POST", "/api/v1/rooms", `{"id":"found","name":"found"}`)

	yaml := filepath.Join(t.TempDir(), "troupe.yaml")
	if err := os.WriteFile(yaml, []byte("data_dir: "+dir+"\nhttp_addr: "+s.addr+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := mustCLI(t, "room", "list", "--config", yaml); rowOf(out, "found") == "" {
		t.Fatalf("room list --config printed:\n%s", out)
	}

	// The environment comes before the file, as for serve.
	dead := freeAddr(t)
	wrong := filepath.Join(t.TempDir(), "wrong.yaml")
	if err := os.WriteFile(wrong, []byte("data_dir: "+dir+"\nhttp_addr: "+dead+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	wantExit(t, 1, "cannot reach the server at http://"+dead+" (the address from http_addr of the configuration file)",
		"room", "list", "--config", wrong)
	t.Setenv("TROUPE_HTTP_ADDR", s.addr)
	if out := mustCLI(t, "room", "list", "--config", wrong); rowOf(out, "found") == "" {
		t.Fatalf("room list with TROUPE_HTTP_ADDR printed:\n%s", out)
	}
	t.Setenv("TROUPE_HTTP_ADDR", dead)
	wantExit(t, 1, "cannot reach the server at http://"+dead+" (the address from TROUPE_HTTP_ADDR)", "room", "list", "--data-dir", dir)
	// A wildcard host is dialed on loopback.
	_, port, _ := net.SplitHostPort(s.addr)
	t.Setenv("TROUPE_HTTP_ADDR", "0.0.0.0:"+port)
	if out := mustCLI(t, "room", "list", "--data-dir", dir); rowOf(out, "found") == "" {
		t.Fatalf("room list with a wildcard TROUPE_HTTP_ADDR printed:\n%s", out)
	}
	// --url comes first.
	wantExit(t, 1, "(the address from --url)", "room", "list", "--data-dir", dir, "--url", "http://"+dead)
}
