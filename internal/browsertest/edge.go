package browsertest

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"testing"

	"github.com/chromedp/chromedp"
)

// TrustCertificate makes Chromium accept the certificate of certPEM (its
// first block), wherever it is served: the page over HTTPS, its WSS, and
// TURN over TLS. It names that certificate's public key, so that any
// other certificate is still refused as a browser refuses it.
func TrustCertificate(t *testing.T, certPEM []byte) chromedp.ExecAllocatorOption {
	t.Helper()
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatal("TrustCertificate: no PEM certificate")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	spki := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return chromedp.Flag("ignore-certificate-errors-spki-list", base64.StdEncoding.EncodeToString(spki[:]))
}

// UDPBlocked makes Chromium's WebRTC use no UDP at all, as behind a
// firewall that lets only TCP out: it reaches a media server over TCP
// (ICE over TCP, TURN over TCP or TLS) or not at all.
func UDPBlocked() chromedp.ExecAllocatorOption {
	return chromedp.Flag("webrtc-ip-handling-policy", "disable_non_proxied_udp")
}
