package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// testCA is an ephemeral certificate authority that issues the server's
// certificates in a test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "Troupe test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// issue writes a certificate for 127.0.0.1 with the serial number given,
// valid until notAfter, and its key, as PEM files.
func (ca *testCA) issue(t *testing.T, certFile, keyFile string, serial int64, notAfter time.Time) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "troupe.test"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-2 * time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	writeFile(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// tlsServer starts a server on HTTPS with a certificate of serial 1 issued
// by a new CA, and returns it with the CA and the certificate's files.
func tlsServer(t *testing.T) (s *testServer, ca *testCA, certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	ca = newTestCA(t)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	ca.issue(t, certFile, keyFile, 1, time.Now().Add(time.Hour))
	cfg := testConfig(filepath.Join(dir, "data"))
	cfg.TLSCert, cfg.TLSKey = certFile, keyFile
	cfg.LogLevel = "info"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// A connection per request, so that each one shows the certificate
	// served at that moment.
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool}, DisableKeepAlives: true}
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
	ws, _, err := websocket.Dial(ctx, "wss://"+s.addr+"/rtc", &websocket.DialOptions{HTTPClient: s.client})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	if err := ws.Write(ctx, websocket.MessageText, []byte(`{"type":"join","token":"`+tok+`"}`)); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := ws.Read(ctx); err != nil || !strings.Contains(string(msg), `"type":"joined"`) {
		t.Fatalf("answer to join over WSS: %s, %v", msg, err)
	}
	ws.Close(websocket.StatusNormalClosure, "")

	// A renewal written over the files is served on the next connection.
	ca.issue(t, certFile, keyFile, 2, time.Now().Add(time.Hour))
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
	ca.issue(t, filepath.Join(dir, "new-cert.pem"), filepath.Join(dir, "new-key.pem"), 3, time.Now().Add(time.Hour))
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
	ca := newTestCA(t)
	good, goodKey := filepath.Join(dir, "good.pem"), filepath.Join(dir, "good-key.pem")
	ca.issue(t, good, goodKey, 1, time.Now().Add(time.Hour))
	other, otherKey := filepath.Join(dir, "other.pem"), filepath.Join(dir, "other-key.pem")
	ca.issue(t, other, otherKey, 2, time.Now().Add(time.Hour))
	expired, expiredKey := filepath.Join(dir, "expired.pem"), filepath.Join(dir, "expired-key.pem")
	ca.issue(t, expired, expiredKey, 3, time.Now().Add(-time.Hour))
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
