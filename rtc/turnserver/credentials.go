package turnserver

import (
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // the scheme TURN clients and servers share is HMAC-SHA1
	"encoding/base64"
	"strconv"
	"strings"
	"time"
)

// Credentials returns the username and password that let user allocate
// relays until expires: "<expiry unix time>:<user>" and
// base64(HMAC-SHA1(secret, username)).
func Credentials(secret []byte, user string, expires time.Time) (username, password string) {
	username = strconv.FormatInt(expires.Unix(), 10) + ":" + user
	return username, passwordOf(secret, username)
}

func passwordOf(secret []byte, username string) string {
	mac := hmac.New(sha1.New, secret)
	mac.Write([]byte(username))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// parseUsername splits a username into its expiry and user; ok is false
// if it is not of the form Credentials makes.
func parseUsername(username string) (expires time.Time, user string, ok bool) {
	ts, user, found := strings.Cut(username, ":")
	if !found || user == "" {
		return time.Time{}, "", false
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || sec <= 0 {
		return time.Time{}, "", false
	}
	return time.Unix(sec, 0), user, true
}
