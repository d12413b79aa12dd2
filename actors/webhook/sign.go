package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Sign returns the Troupe-Signature header of body sent at t:
// "t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<unix seconds>.<body>")>".
// Signing the time with the body lets a receiver refuse replays (Verify's
// tolerance).
func Sign(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret []byte, ts string, body []byte) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(ts))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// Verify checks a Troupe-Signature header against the raw request body: one
// of its v1 signatures must be the HMAC of its t and body under secret, and
// t must be within tolerance of now (a tolerance of zero or less skips that
// check). Unknown fields in the header are ignored, so that a later scheme
// can be added alongside v1. It returns ErrSignatureMalformed,
// ErrSignatureExpired or ErrSignatureMismatch (wrapped).
func Verify(header string, secret, body []byte, now time.Time, tolerance time.Duration) error {
	var ts string
	var sigs [][]byte
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return fmt.Errorf("%w: field %q", ErrSignatureMalformed, part)
		}
		switch k {
		case "t":
			if ts != "" {
				return fmt.Errorf("%w: two timestamps", ErrSignatureMalformed)
			}
			ts = v
		case "v1":
			sig, err := hex.DecodeString(v)
			if err != nil || len(sig) != sha256.Size {
				return fmt.Errorf("%w: v1 is not a hex SHA-256 HMAC", ErrSignatureMalformed)
			}
			sigs = append(sigs, sig)
		}
	}
	if ts == "" || len(sigs) == 0 {
		return fmt.Errorf("%w: needs t and v1", ErrSignatureMalformed)
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: t is not Unix seconds", ErrSignatureMalformed)
	}
	if tolerance > 0 {
		if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
			return fmt.Errorf("%w: signed %v from now", ErrSignatureExpired, d.Round(time.Second))
		}
	}
	want := mac(secret, ts, body)
	for _, sig := range sigs {
		if hmac.Equal(sig, want) {
			return nil
		}
	}
	return ErrSignatureMismatch
}
