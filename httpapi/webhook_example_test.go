package httpapi

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/troupe-media/troupe/actors/webhook"
)

// The two functions below are the README's webhook receiver, word for word
// (TestREADMEWebhookExample holds them together); the webhook tests use
// them as their receiver, so that the README's code is what is tested.

// verifyTroupeSignature reports whether header, a Troupe-Signature, signs
// body with secret at a time within tolerance of now.
func verifyTroupeSignature(header string, body, secret []byte, now time.Time, tolerance time.Duration) bool {
	var ts string
	var sigs []string
	for _, field := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(field), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sigs = append(sigs, v)
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || now.Sub(time.Unix(sec, 0)).Abs() > tolerance {
		return false // unsigned, or too old: maybe a replay
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	want := mac.Sum(nil)
	for _, sig := range sigs {
		if got, err := hex.DecodeString(sig); err == nil && hmac.Equal(got, want) {
			return true
		}
	}
	return false
}

// troupeWebhook accepts Troupe's deliveries signed with secret and hands
// each one's id and raw JSON body to handle.
func troupeWebhook(secret []byte, handle func(delivery string, body []byte) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			http.Error(w, "unreadable body", http.StatusBadRequest)
			return
		}
		if !verifyTroupeSignature(r.Header.Get("Troupe-Signature"), body, secret, time.Now(), 5*time.Minute) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		// At least once: a retry carries the same Troupe-Delivery id.
		if err := handle(r.Header.Get("Troupe-Delivery"), body); err != nil {
			http.Error(w, "try again later", http.StatusServiceUnavailable) // Troupe retries
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

// A Troupe-Signature made by the server's signer verifies; a changed body,
// another secret or an old signature does not.
func Example_verifyTroupeSignature() {
	secret := []byte("the room webhook's secret")
	body := []byte(`{"id":"whd_x","event":"session-started","created_at":"2030-01-02T09:00:00Z","room_id":"cs101","session_id":"ses_y","data":{}}`)
	now := time.Now()
	header := webhook.Sign(secret, now, body) // what Troupe sends

	fmt.Println(verifyTroupeSignature(header, body, secret, now, 5*time.Minute))
	fmt.Println(verifyTroupeSignature(header, []byte(`{"id":"whd_x","event":"room-deleted"}`), secret, now, 5*time.Minute))
	fmt.Println(verifyTroupeSignature(header, body, []byte("another secret"), now, 5*time.Minute))
	fmt.Println(verifyTroupeSignature(header, body, secret, now.Add(time.Hour), 5*time.Minute))
	fmt.Println(verifyTroupeSignature("v1="+header[strings.Index(header, "v1=")+3:], body, secret, now, 5*time.Minute))
	// Output:
	// true
	// false
	// false
	// false
	// false
}
