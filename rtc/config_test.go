package rtc

import (
	"errors"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   Config
		field string // of the *ConfigError; empty: valid
		text  string // its text with the field named "--x"
	}{
		{"zero value", Config{}, "", ""},
		{"every interface", Config{BindAddr: "0.0.0.0", UDPPort: 65535}, "", ""},
		{"stun and turn with credentials", Config{ICEURLs: []string{"stun:h:3478", "turns:h:5349?transport=tcp"},
			TURNUsername: "u", TURNCredential: "c"}, "", ""},
		{"bind to a name", Config{BindAddr: "localhost"}, "BindAddr", `--x "localhost": not an IP address`},
		{"negative port", Config{UDPPort: -1}, "UDPPort", "--x -1: must be 0..65535"},
		{"port too big", Config{UDPPort: 65536}, "UDPPort", "--x 65536: must be 0..65535"},
		{"tcp port too big", Config{TCP: true, TCPPort: 65536}, "TCPPort", "--x 65536: must be 0..65535"},
		{"tcp port negative", Config{TCPPort: -1}, "TCPPort", "--x -1: must be 0..65535"},
		{"announce a name", Config{AnnounceIPs: []string{"1.2.3.4", "example.com"}}, "AnnounceIPs", `--x "example.com": not an IP address`},
		{"url without host", Config{ICEURLs: []string{"stun:"}}, "ICEURLs", `--x "stun:": want scheme:host[:port]`},
		{"url with a web scheme", Config{ICEURLs: []string{"https://h"}}, "ICEURLs", `--x "https://h": want scheme:host[:port]`},
		{"url with another scheme", Config{ICEURLs: []string{"sip:h"}}, "ICEURLs", `--x "sip:h": scheme must be stun, stuns, turn or turns`},
		{"turn without username", Config{ICEURLs: []string{"turn:h"}, TURNCredential: "c"}, "TURNUsername", "--x: required with TURN URLs"},
		{"turn without credential", Config{ICEURLs: []string{"turn:h"}, TURNUsername: "u"}, "TURNCredential", "--x: required with TURN URLs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.field == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			var ce *ConfigError
			if !errors.As(err, &ce) || !errors.Is(err, ErrBadConfig) {
				t.Fatalf("error %v is not a *ConfigError wrapping ErrBadConfig", err)
			}
			if ce.Field != tc.field || ce.Named("--x") != tc.text {
				t.Fatalf("field %s, text %q; want %s, %q", ce.Field, ce.Named("--x"), tc.field, tc.text)
			}
			// NewEngine refuses it the same way, before opening anything.
			if _, err := NewEngine(tc.cfg); !errors.As(err, &ce) || ce.Field != tc.field {
				t.Fatalf("NewEngine: %v", err)
			}
		})
	}
}
