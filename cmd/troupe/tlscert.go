package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// certReloader serves the certificate of --tls-cert and --tls-key and
// reads the files again when they change, so that a renewed certificate
// (certbot, cert-manager) is served without a restart. Each handshake
// stats the two files, which costs two system calls beside the
// handshake's public-key operations; a pair that does not load (a
// renewal half written, a key that does not match) is logged once and the
// certificate served until then stays.
type certReloader struct {
	certFile, keyFile string
	log               *slog.Logger

	mu sync.Mutex // guards the following
	// cert is the certificate served.
	cert *tls.Certificate
	// seen are the files' stamps last read, loaded or not: a pair that
	// failed is tried again only once a file changes again.
	seen [2]fileStamp
}

// fileStamp is what tells that a file changed: its size and modification
// time.
type fileStamp struct {
	size    int64
	modTime time.Time
}

func stampOf(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{size: fi.Size(), modTime: fi.ModTime()}, nil
}

// newCertReloader loads the pair, or says why it cannot.
func newCertReloader(certFile, keyFile string, log *slog.Logger) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile, log: log}
	stamps, err := r.stamps()
	if err != nil {
		return nil, err
	}
	cert, err := loadCertPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	r.cert, r.seen = cert, stamps
	return r, nil
}

func (r *certReloader) stamps() ([2]fileStamp, error) {
	c, err := stampOf(r.certFile)
	if err != nil {
		return [2]fileStamp{}, fmt.Errorf("--tls-cert: %w", err)
	}
	k, err := stampOf(r.keyFile)
	if err != nil {
		return [2]fileStamp{}, fmt.Errorf("--tls-key: %w", err)
	}
	return [2]fileStamp{c, k}, nil
}

// loadCertPair loads a certificate chain and its key, and checks that the
// leaf is valid now: an expired certificate given at start is a mistake
// the operator hears of at once rather than from every browser.
func loadCertPair(certFile, keyFile string) (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert %s / --tls-key %s: %w", certFile, keyFile, err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("--tls-cert %s: %w", certFile, err)
	}
	if now := time.Now(); now.After(leaf.NotAfter) {
		return nil, fmt.Errorf("--tls-cert %s: %w (not after %s)", certFile, errCertExpired, leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	cert.Leaf = leaf
	return &cert, nil
}

var errCertExpired = errors.New("certificate has expired")

// GetCertificate is the tls.Config hook: the current certificate, read
// again first if a file changed.
func (r *certReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	stamps, err := r.stamps()
	if err != nil {
		// A file being replaced may be missing for a moment: keep serving.
		if r.seen != ([2]fileStamp{}) {
			r.log.Warn("TLS certificate files unreadable; serving the one loaded before", "err", err)
			r.seen = [2]fileStamp{}
		}
		return r.cert, nil
	}
	if stamps == r.seen {
		return r.cert, nil
	}
	r.seen = stamps
	cert, err := loadCertPair(r.certFile, r.keyFile)
	if err != nil {
		r.log.Warn("TLS certificate changed but does not load; serving the one loaded before", "err", err)
		return r.cert, nil
	}
	r.cert = cert
	r.log.Info("TLS certificate reloaded", "subject", cert.Leaf.Subject.String(),
		"not_after", cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
	return r.cert, nil
}

// tlsConfig is the servers' TLS configuration, serving r's certificate.
func (r *certReloader) tlsConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: r.GetCertificate,
	}
}
