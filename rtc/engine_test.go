package rtc

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
)

// fingerprint returns the DTLS fingerprint a peer connection offers.
func fingerprint(t *testing.T, pc *webrtc.PeerConnection) string {
	t.Helper()
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo); err != nil {
		t.Fatal(err)
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(offer.SDP, "\r\n") {
		if fp, ok := strings.CutPrefix(line, "a=fingerprint:"); ok {
			return fp
		}
	}
	t.Fatal("no fingerprint in the offer")
	return ""
}

// Every connection presents the engine's one certificate until it nears
// expiry; then a new one is made.
func TestEngineSharesCertificate(t *testing.T) {
	e := testEngine(t, defaultInterceptors)
	defer e.Close()
	newPC := func() *webrtc.PeerConnection {
		pc, err := e.NewPeerConnection()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pc.Close() })
		return pc
	}
	first, second := fingerprint(t, newPC()), fingerprint(t, newPC())
	if first != second {
		t.Fatalf("two connections, two certificates: %s, %s", first, second)
	}

	// A certificate that expires within certRenewBefore is replaced.
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	expiring, err := webrtc.NewCertificate(key, x509.Certificate{
		SerialNumber: big.NewInt(1),
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(certRenewBefore / 2),
	})
	if err != nil {
		t.Fatal(err)
	}
	e.mu.Lock()
	e.cert = expiring
	e.mu.Unlock()
	renewed := fingerprint(t, newPC())
	if renewed == first {
		t.Fatal("the certificate was not renewed")
	}
	e.mu.Lock()
	got := e.cert
	e.mu.Unlock()
	if got == expiring || time.Until(got.Expires()) <= certRenewBefore {
		t.Fatalf("engine certificate expires %v", got.Expires())
	}
	if again := fingerprint(t, newPC()); again != renewed {
		t.Fatal("the renewed certificate was not kept")
	}

	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.NewPeerConnection(); !errors.Is(err, ErrEngineClosed) {
		t.Fatalf("NewPeerConnection after Close = %v, want ErrEngineClosed", err)
	}
}
