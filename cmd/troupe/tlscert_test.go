package main

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/troupe-media/troupe/internal/testcert"
)

// issue writes a certificate of ca for 127.0.0.1 with the serial number
// given, valid until notAfter, and its key, as PEM files.
func issue(t *testing.T, ca *testcert.CA, certFile, keyFile string, serial int64, notAfter time.Time) {
	t.Helper()
	certPEM, keyPEM := ca.Issue(t, serial, notAfter)
	writeFile(t, certFile, certPEM)
	writeFile(t, keyFile, keyPEM)
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// tlsServer starts a server on HTTPS with a certificate of serial 1 issued
// by a new CA, and returns it with the CA and the certificate's files.
func tlsServer(t *testing.T, mods ...func(*Config)) (s *testServer, ca *testcert.CA, certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	ca = testcert.NewCA(t)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	issue(t, ca, certFile, keyFile, 1, time.Now().Add(time.Hour))
	cfg := testConfig(filepath.Join(dir, "data"))
	cfg.TLSCert, cfg.TLSKey = certFile, keyFile
	cfg.LogLevel = "info"
	for _, mod := range mods {
		mod(&cfg)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// A connection per request, so that each one shows the certificate
	// served at that moment.
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool}, DisableKeepAlives: true}
	return startServerWith(t, cfg, ln, tr), ca, certFile, keyFile
}

// servedSerial is the serial number of the certificate a new connection
// to s gets.
func servedSerial(t *testing.T, s *testServer) int64 {
	t.Helper()
	resp, err := s.client.Get(s.url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.TLS == nil {
		t.Fatalf("GET /healthz: status %d, TLS %v", resp.StatusCode, resp.TLS != nil)
	}
	return resp.TLS.PeerCertificates[0].SerialNumber.Int64()
}

func TestHTTPSServesRotatedCertificate(t *testing.T) {
	s, ca, certFile, keyFile := tlsServer(t)
	if got := servedSerial(t, s); got != 1 {
		t.Fatalf("serial %d served, want 1", got)
	}
	if !strings.Contains(s.out.String(), "https://"+s.addr) {
		t.Errorf("banner does not give the https URL: %s", s.out.String())
	}
	s.mustDo(http.StatusCreated, "POST", "/api/v1/rooms", `{"id":"r1","name":"r1"}`)

	// Plain HTTP on the TLS port is refused.
	resp, err := http.Get("http://" + s.addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("plain HTTP to the HTTPS port: status %d, want 400", resp.StatusCode)
	}

	// Signaling runs over WSS.
	tok := s.mustDo(http.StatusOK, "POST", "/api/v1/rooms/r1/tokens", `{"identity":"alice","role":"subscriber"}`)["token"].(string)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // a bound against a hang
	defer cancel()
	ws, msg := s.join(ctx, tok, nil)
	if !strings.Contains(string(msg), `"type":"joined"`) {
		t.Fatalf("answer to join over WSS: %s", msg)
	}
	ws.Close(websocket.StatusNormalClosure, "")

	// A renewal written over the files is served on the next connection.
	issue(t, ca, certFile, keyFile, 2, time.Now().Add(time.Hour))
	if got := servedSerial(t, s); got != 2 {
		t.Fatalf("serial %d served after rotation, want 2", got)
	}

	// A broken renewal keeps the certificate served and is logged.
	writeFile(t, certFile, []byte("not a certificate"))
	if got := servedSerial(t, s); got != 2 {
		t.Fatalf("serial %d served after a broken renewal, want 2", got)
	}
	if !strings.Contains(s.log.String(), "does not load") {
		t.Errorf("broken renewal not logged: %s", s.log.String())
	}
	// Replaced by a rename, as certbot and cert-manager do.
	dir := filepath.Dir(certFile)
	issue(t, ca, filepath.Join(dir, "new-cert.pem"), filepath.Join(dir, "new-key.pem"), 3, time.Now().Add(time.Hour))
	for _, f := range []string{"cert", "key"} {
		if err := os.Rename(filepath.Join(dir, "new-"+f+".pem"), filepath.Join(dir, f+".pem")); err != nil {
			t.Fatal(err)
		}
	}
	if got := servedSerial(t, s); got != 3 {
		t.Fatalf("serial %d served after a renewal by rename, want 3", got)
	}
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
}

func TestBadCertificateRefusedAtStart(t *testing.T) {
	dir := t.TempDir()
	ca := testcert.NewCA(t)
	good, goodKey := filepath.Join(dir, "good.pem"), filepath.Join(dir, "good-key.pem")
	issue(t, ca, good, goodKey, 1, time.Now().Add(time.Hour))
	other, otherKey := filepath.Join(dir, "other.pem"), filepath.Join(dir, "other-key.pem")
	issue(t, ca, other, otherKey, 2, time.Now().Add(time.Hour))
	expired, expiredKey := filepath.Join(dir, "expired.pem"), filepath.Join(dir, "expired-key.pem")
	issue(t, ca, expired, expiredKey, 3, time.Now().Add(-time.Hour))
	garbage := filepath.Join(dir, "garbage.pem")
	writeFile(t, garbage, []byte("-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n"))

	for _, tc := range []struct {
		name, cert, key, want string
	}{
		{"missing file", filepath.Join(dir, "none.pem"), goodKey, "--tls-cert: stat"},
		{"not a certificate", garbage, goodKey, "--tls-cert " + garbage},
		{"key of another certificate", good, otherKey, "private key does not match public key"},
		{"expired", expired, expiredKey, "certificate has expired"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(filepath.Join(dir, "data"))
			cfg.TLSCert, cfg.TLSKey = tc.cert, tc.key
			s, err := NewServer(cfg, nil, &strings.Builder{}, &strings.Builder{})
			if err == nil {
				s.Shutdown(context.Background())
				t.Fatal("server built")
			}
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want ErrInvalidConfig with %q", err, tc.want)
			}
		})
	}
}

// The built-in TURN server's TLS port serves the API's certificate, and
// its renewal too.
func TestTURNOverTLSServesTheCertificate(t *testing.T) {
	s, ca, certFile, keyFile := tlsServer(t, func(c *Config) { c.TURNEnabled = true })
	s.mustDo(http.StatusCreated, "POST", "/api/v1/rooms", `{"id":"r1","name":"r1"}`)
	var addr string
	servers := linkICEServers(t, whepOptions(t, s, "r1", viewerToken(s, "r1")))
	for _, is := range servers {
		if u, ok := strings.CutPrefix(is.URLs[0], "turns:"); ok && is.Username != "" {
			addr = strings.TrimSuffix(u, "?transport=tcp")
		}
	}
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Fatalf("ICE servers %+v, want a turns: URL with credentials", servers)
	}
	served := func() int64 {
		t.Helper()
		conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool, MinVersion: tls.VersionTLS12})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
	}
	if got := served(); got != 1 {
		t.Fatalf("TURN over TLS serves serial %d, want 1", got)
	}
	issue(t, ca, certFile, keyFile, 2, time.Now().Add(time.Hour))
	if got := served(); got != 2 {
		t.Fatalf("TURN over TLS serves serial %d after the renewal, want 2", got)
	}
}
