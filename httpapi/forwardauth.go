package httpapi

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/troupe-media/troupe/httpapi/auth"
)

// ForwardAuthHeader authenticates ForwardedByHeader: a request forwarded by
// a node of the cluster carries "<unix seconds>.<mac>", an HMAC-SHA256 over
// the forwarding node's id, that time, and the request's method and path,
// keyed by a key derived from the cluster's API secret (every node has the
// same). A request whose ForwardedByHeader comes without a valid MAC is
// served as a plain outside request: the header would otherwise let anyone
// skip the per-address limits and make a node claim rooms it does not own.
const ForwardAuthHeader = "Troupe-Forward-Auth"

// ForwardAuthWindow is how far a forward's time may be from the receiving
// node's clock, either way: the nodes' clocks must agree within it. A MAC
// seen again within the window is accepted again; the MAC only proves that
// a node of the cluster sent the request, and what it grants (no per-address
// limit, no second forward) is what that node could do itself.
const ForwardAuthWindow = 30 * time.Second

// forwardKeyLabel separates the forward key from anything else derived
// from the API secret.
const forwardKeyLabel = "troupe node-to-node forward v1"

// forwardKey derives the key that signs forwards from the cluster's key.
func forwardKey(k auth.Key) []byte {
	m := hmac.New(sha256.New, []byte(k.Secret))
	m.Write([]byte(forwardKeyLabel))
	m.Write([]byte{0})
	m.Write([]byte(k.ID))
	return m.Sum(nil)
}

// forwardMAC is the MAC of a forward by node at unix time ts.
func forwardMAC(key []byte, node string, ts int64, method, path string) []byte {
	m := hmac.New(sha256.New, key)
	// Each field ends with a NUL, which none of them may contain, so that
	// no two field lists give the same bytes.
	for _, f := range []string{node, strconv.FormatInt(ts, 10), method, path} {
		m.Write([]byte(f))
		m.Write([]byte{0})
	}
	return m.Sum(nil)
}

// SignForward marks h as a request that node forwards, signed with the
// cluster's key k at now: the request's method and the path it is sent to.
func SignForward(h http.Header, k auth.Key, node, method, path string, now time.Time) {
	signForward(h, forwardKey(k), node, method, path, now)
}

func signForward(h http.Header, key []byte, node, method, path string, now time.Time) {
	ts := now.Unix()
	mac := base64.RawURLEncoding.EncodeToString(forwardMAC(key, node, ts, method, path))
	h.Set(ForwardedByHeader, node)
	h.Set(ForwardAuthHeader, strconv.FormatInt(ts, 10)+"."+mac)
}

// forwardSigned reports whether r's ForwardedByHeader carries a valid
// ForwardAuthHeader, made within ForwardAuthWindow of now.
func forwardSigned(r *http.Request, key []byte, now time.Time) bool {
	node := r.Header.Get(ForwardedByHeader)
	tsText, macText, ok := strings.Cut(r.Header.Get(ForwardAuthHeader), ".")
	if node == "" || !ok {
		return false
	}
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return false
	}
	if d := now.Sub(time.Unix(ts, 0)); d > ForwardAuthWindow || d < -ForwardAuthWindow {
		return false
	}
	mac, err := base64.RawURLEncoding.DecodeString(macText)
	if err != nil {
		return false
	}
	return hmac.Equal(mac, forwardMAC(key, node, ts, r.Method, r.URL.Path))
}

// newForwardRefused counts the requests whose ForwardedByHeader was not
// signed: forged, or sent by a node whose clock is off or whose key differs.
func newForwardRefused(reg prometheus.Registerer) (prometheus.Counter, error) {
	return register(reg, prometheus.NewCounter(prometheus.CounterOpts{
		Name: "troupe_forward_auth_refused_total",
		Help: "Requests that claimed to be forwarded by a node of the cluster without a valid signature, served as outside requests.",
	}))
}

// checkForward takes off a ForwardedByHeader that is not signed, so that
// everything after reads the request as an outside one.
func (s *Server) checkForward(r *http.Request) {
	if r.Header.Get(ForwardedByHeader) == "" && r.Header.Get(ForwardAuthHeader) == "" {
		return
	}
	if forwardSigned(r, s.forwardKey, s.cfg.Clock.Now()) {
		return
	}
	s.forwardRefused.Inc()
	s.log.Debug("a request claims to be forwarded by a node without a valid signature; served as an outside request",
		"from", r.Header.Get(ForwardedByHeader), "remote", s.clientAddr(r), "path", r.URL.Path)
	r.Header.Del(ForwardedByHeader)
	r.Header.Del(ForwardAuthHeader)
}
