package main

import (
	"strings"
	"testing"
)

// The start records of the media ports say off for a port that is off,
// as the server's own start line does, not Go's empty or nil values.
func TestStartRecordsSayOff(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.LogLevel, cfg.LogFormat = "info", "text"
	cfg.RTCTCPPort = rtcTCPOff
	cfg.TURNEnabled = true // without a certificate: no TURN over TLS
	s := startServer(t, cfg)
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"rtc engine listening": " tcp=off ", "TURN server listening": " tls=off ", "troupe serving": " rtc_tcp=off"}
	for _, line := range strings.Split(s.log.String(), "\n") {
		for msg, says := range want {
			if strings.Contains(line, `msg="`+msg+`"`) {
				if !strings.Contains(line+" ", says) || strings.Contains(line, "<nil>") || strings.Contains(line, `=""`) {
					t.Errorf("%s", line)
				}
				delete(want, msg)
			}
		}
	}
	if len(want) > 0 {
		t.Fatalf("no records %v in:\n%s", want, s.log.String())
	}
}
