package main

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// loadWith parses args into a fresh flag set and loads the Config with env
// as the environment and, if yamlText is set, a config file holding it.
func loadWith(t *testing.T, args []string, env map[string]string, yamlText string) (Config, error) {
	t.Helper()
	if yamlText != "" {
		path := filepath.Join(t.TempDir(), "troupe.yaml")
		if err := os.WriteFile(path, []byte(yamlText), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--config", path)
	}
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	cf := newConfigFlags(fs)
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	return cf.load(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
}

func TestConfigPrecedence(t *testing.T) {
	const yamlAll = `
data_dir: /yaml/data
http_addr: 127.0.0.1:1001
rtc_udp_port: 1002
log_level: debug
log_format: json
request_timeout: 3s
passivate_after: 1m
drain_timeout: 45s
rate_limit: 10.5
rate_burst: 20
max_viewers_per_identity: 6
whip_rate: 0.5
whip_burst: 3
signaling_rate: 5.5
signaling_burst: 11
signaling_pending: 99
signaling_pending_per_addr: 3
chat_rate: 0.5
chat_burst: 4
chat_max_per_session: 77
`
	for _, tc := range []struct {
		name  string
		args  []string
		env   map[string]string
		yaml  string
		check func(Config) bool
	}{
		{"defaults", nil, nil, "", func(c Config) bool { return reflect.DeepEqual(c, DefaultConfig()) }},
		{"yaml over defaults", nil, nil, yamlAll, func(c Config) bool {
			return reflect.DeepEqual(c, Config{DataDir: "/yaml/data", HTTPAddr: "127.0.0.1:1001", RTCUDPPort: 1002, RTCTCPPort: 7881, RTCBind: "127.0.0.1", RTCBandwidthEstimation: estimateSimulcast, RTCAudioLevel: true,
				TURNUDPPort: 3478, TURNTLSPort: 5349, TURNRealm: "troupe", TURNCredentialTTL: 12 * time.Hour,
				CORSOrigins: stringList{"*"}, TrustedProxyHeader: "x-forwarded-for", WebhookEvents: stringList{"*"}, WebhookMaxAge: 24 * time.Hour, TokenMaxLifetime: 30 * 24 * time.Hour,
				LogLevel: "debug", LogFormat: "json", RequestTimeout: 3 * time.Second,
				PassivateAfter: time.Minute, DrainTimeout: 45 * time.Second, RateLimit: 10.5, RateBurst: 20, MaxViewersPerIdentity: 6, WHIPRate: 0.5, WHIPBurst: 3,
				SignalingRate: 5.5, SignalingBurst: 11, SignalingPending: 99, SignalingPendingPerAddr: 3,
				ChatRate: 0.5, ChatBurst: 4, ChatMaxPerSession: 77, ClusterLeaseTTL: 5 * time.Second,
				RecordingMaxDuration: 4 * time.Hour, RecordingMinFreeDisk: 1024})
		}},
		{"partial yaml keeps other defaults", nil, nil, "http_addr: 0.0.0.0:9000\n", func(c Config) bool {
			want := DefaultConfig()
			want.HTTPAddr = "0.0.0.0:9000"
			return reflect.DeepEqual(c, want)
		}},
		{"env over yaml", nil, map[string]string{
			"TROUPE_HTTP_ADDR": "127.0.0.1:2001", "TROUPE_RTC_UDP_PORT": "2002", "TROUPE_REQUEST_TIMEOUT": "4s",
			"TROUPE_RATE_LIMIT": "7", "TROUPE_API_KEY": "envkey", "TROUPE_API_SECRET": "envsecret",
		}, yamlAll, func(c Config) bool {
			return c.HTTPAddr == "127.0.0.1:2001" && c.RTCUDPPort == 2002 && c.RequestTimeout == 4*time.Second &&
				c.RateLimit == 7 && c.APIKey == "envkey" && c.APISecret == "envsecret" &&
				c.DataDir == "/yaml/data" && c.LogLevel == "debug" // untouched by env: from yaml
		}},
		{"flags over env over yaml", []string{"--http-addr", "127.0.0.1:3001", "--log-level", "error", "--passivate-after", "2h"},
			map[string]string{"TROUPE_HTTP_ADDR": "127.0.0.1:2001", "TROUPE_LOG_LEVEL": "warn", "TROUPE_DATA_DIR": "/env/data"},
			yamlAll, func(c Config) bool {
				return c.HTTPAddr == "127.0.0.1:3001" && c.LogLevel == "error" && c.PassivateAfter == 2*time.Hour &&
					c.DataDir == "/env/data" && c.RTCUDPPort == 1002
			}},
		{"flag set to its default still wins", []string{"--rtc-udp-port", "7882"},
			map[string]string{"TROUPE_RTC_UDP_PORT": "2002"}, "", func(c Config) bool { return c.RTCUDPPort == 7882 }},
		{"empty env is unset", nil, map[string]string{"TROUPE_HTTP_ADDR": ""}, "http_addr: 127.0.0.1:1001\n",
			func(c Config) bool { return c.HTTPAddr == "127.0.0.1:1001" }},
		{"cors origins from env, off from the flag", []string{"--cors-origins", ""}, map[string]string{"TROUPE_CORS_ORIGINS": "https://a.example"}, "",
			func(c Config) bool { return len(c.CORSOrigins) == 0 }},
		{"cors origins from yaml as one string", nil, nil, "cors_origins: https://a.example, http://localhost:5173\n",
			func(c Config) bool {
				return slices.Equal(c.CORSOrigins, []string{"https://a.example", "http://localhost:5173"})
			}},
		{"a list from yaml as a sequence", nil, nil, "ice_urls:\n  - stun:a:3478\n  - stun:b:3478\n",
			func(c Config) bool { return slices.Equal(c.ICEURLs, []string{"stun:a:3478", "stun:b:3478"}) }},
		{"an empty list from yaml", nil, nil, "cors_origins: []\n", func(c Config) bool { return len(c.CORSOrigins) == 0 }},
		{"an empty list from env, as the flag's --x=", nil, map[string]string{"TROUPE_CORS_ORIGINS": ""}, "cors_origins: [https://y.example]\n",
			func(c Config) bool { return len(c.CORSOrigins) == 0 }},
		{"an empty env of a value is unset", nil, map[string]string{"TROUPE_HTTP_ADDR": ""}, "",
			func(c Config) bool { return c.HTTPAddr == DefaultConfig().HTTPAddr }},
		{"a list from env, comma-separated", nil, map[string]string{"TROUPE_WEBHOOK_EVENTS": "room-*, participant-joined,"}, "",
			func(c Config) bool { return slices.Equal(c.WebhookEvents, []string{"room-*", "participant-joined"}) }},
		{"a list flag repeated and comma-separated replaces the default",
			[]string{"--cors-origins", "https://a.example", "--cors-origins=https://b.example,https://c.example"}, nil, "cors_origins: [https://y.example]\n",
			func(c Config) bool {
				return slices.Equal(c.CORSOrigins, []string{"https://a.example", "https://b.example", "https://c.example"})
			}},
		{"trusted proxies: flag over env over yaml", []string{"--trusted-proxies", "10.0.0.1", "--trusted-proxies", "10.0.0.2"},
			map[string]string{"TROUPE_TRUSTED_PROXIES": "192.0.2.0/24"}, "trusted_proxies: [2001:db8::/32]\n", func(c Config) bool {
				return slices.Equal(c.TrustedProxies, []string{"10.0.0.1", "10.0.0.2"})
			}},
		{"trusted proxies: env over yaml", nil, map[string]string{"TROUPE_TRUSTED_PROXIES": "192.0.2.0/24, 2001:db8::1"}, "trusted_proxies: [2001:db8::/32]\n",
			func(c Config) bool { return slices.Equal(c.TrustedProxies, []string{"192.0.2.0/24", "2001:db8::1"}) }},
		{"trusted proxy header: flag over env over yaml", []string{"--trusted-proxy-header", "forwarded"},
			map[string]string{"TROUPE_TRUSTED_PROXY_HEADER": "x-forwarded-for"}, "trusted_proxy_header: x-forwarded-for\n",
			func(c Config) bool { return c.TrustedProxyHeader == "forwarded" }},
		{"trusted proxy header: env over yaml", nil, map[string]string{"TROUPE_TRUSTED_PROXY_HEADER": "forwarded"}, "trusted_proxy_header: x-forwarded-for\n",
			func(c Config) bool { return c.TrustedProxyHeader == "forwarded" }},
		{"trusted proxy header from yaml, x-forwarded-for by default", nil, nil, "trusted_proxy_header: forwarded\n",
			func(c Config) bool {
				return c.TrustedProxyHeader == "forwarded" && DefaultConfig().TrustedProxyHeader == "x-forwarded-for"
			}},
		{"trusted proxies from yaml", nil, nil, "trusted_proxies: [2001:db8::/32, 10.0.0.0/8]\n",
			func(c Config) bool { return slices.Equal(c.TrustedProxies, []string{"2001:db8::/32", "10.0.0.0/8"}) }},
		{"config file from env", nil, map[string]string{"TROUPE_CONFIG": "testdata/minimal.yaml"}, "",
			func(c Config) bool { return c.HTTPAddr == "127.0.0.1:4001" && c.LogFormat == "json" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := loadWith(t, tc.args, tc.env, tc.yaml)
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(cfg) {
				t.Fatalf("unexpected config %+v", cfg)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	key := []string{"--api-key", "TKkey", "--api-secret", strings.Repeat("s", 32)}
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		yaml string
		want string // in the error text
	}{
		{"malformed yaml", nil, nil, "http_addr: [1,\n", "troupe.yaml"},
		{"unknown yaml key", nil, nil, "http_adr: 127.0.0.1:1\n", "unknown key http_adr in "},
		{"unknown key in a valid file", nil, nil, "log_level: warn\nlisten: x\n", "unknown key listen in "},
		{"yaml key twice", nil, nil, "log_level: warn\nlog_level: info\n", "key log_level given twice"},
		{"yaml not a mapping", nil, nil, "- http_addr\n", "want keys and their values"},
		{"yaml port in quotes", nil, nil, "rtc_udp_port: \"0\"\n", "rtc_udp_port in "},
		{"yaml port in quotes says so", nil, nil, "rtc_udp_port: \"0\"\n", "want an integer, not in quotes"},
		{"yaml wrong type", nil, nil, "rtc_udp_port: many\n", "(line 1): want an integer"},
		{"yaml duration without unit", nil, nil, "request_timeout: 5\n", "request_timeout in "},
		{"yaml duration says what it wants", nil, nil, "request_timeout: 5\n", "want a duration like 5s"},
		{"missing config file", []string{"--config", "/nonexistent/troupe.yaml"}, nil, "", "/nonexistent/troupe.yaml"},
		{"env not a number", nil, map[string]string{"TROUPE_RTC_UDP_PORT": "x"}, "", "TROUPE_RTC_UDP_PORT"},
		{"env not a duration", nil, map[string]string{"TROUPE_REQUEST_TIMEOUT": "5"}, "", "TROUPE_REQUEST_TIMEOUT"},
		{"address without port", []string{"--http-addr", "localhost"}, nil, "", "--http-addr"},
		{"address with bad port", []string{"--http-addr", "127.0.0.1:http"}, nil, "", "--http-addr"},
		{"address port out of range", []string{"--http-addr", "127.0.0.1:70000"}, nil, "", "--http-addr"},
		{"udp port negative", []string{"--rtc-udp-port", "-1"}, nil, "", "--rtc-udp-port -1"},
		{"tcp port below off", []string{"--rtc-tcp-port", "-2"}, nil, "", "--rtc-tcp-port -2: must be -1 (off) or 0..65535"},
		{"tcp port too big", nil, map[string]string{"TROUPE_RTC_TCP_PORT": "65536"}, "", "--rtc-tcp-port 65536"},
		{"tcp off passes", []string{"--rtc-tcp-port", "-1"}, nil, "", ""},
		{"turn udp port too big", []string{"--turn-enabled", "--turn-udp-port", "65536"}, nil, "", "--turn-udp-port 65536"},
		{"turn checked only when enabled", []string{"--turn-udp-port", "65536"}, nil, "", ""},
		{"turn tls port below off", []string{"--turn-enabled", "--turn-tls-port", "-2"}, nil, "", "--turn-tls-port -2"},
		{"turn relay ip not an IP", []string{"--turn-enabled", "--turn-relay-ip", "turn.example.com"}, nil, "", "--turn-relay-ip"},
		{"turn on every interface without an address", []string{"--turn-enabled", "--rtc-bind", "0.0.0.0"}, nil, "", "needs --turn-relay-ip or --rtc-announce-ip"},
		{"turn on every interface with an announced address", []string{"--turn-enabled", "--rtc-bind", "0.0.0.0", "--rtc-announce-ip", "203.0.113.7"}, nil, "", ""},
		{"turn host a URL", []string{"--turn-enabled", "--turn-host", "turn://x"}, nil, "", "--turn-host"},
		{"turn half a relay range", nil, map[string]string{"TROUPE_TURN_ENABLED": "true", "TROUPE_TURN_RELAY_PORT_MIN": "50000"}, "", "--turn-relay-port-min 50000"},
		{"turn relay range reversed", []string{"--turn-enabled", "--turn-relay-port-min", "50010", "--turn-relay-port-max", "50000"}, nil, "", "set both"},
		{"turn credential ttl too short", []string{"--turn-enabled", "--turn-credential-ttl", "30s"}, nil, "", "--turn-credential-ttl 30s"},
		{"turn empty realm", nil, nil, "turn_enabled: true\nturn_realm: \"\"\n", "--turn-realm"},
		{"rtc bind not an IP", []string{"--rtc-bind", "localhost"}, nil, "", "--rtc-bind"},
		{"ice url with a web scheme", []string{"--ice-urls", "stun:h:3478", "--ice-urls", "https://h"}, nil, "", `--ice-urls "https://h": want scheme:host[:port]`},
		{"turn url without credential", []string{"--ice-urls", "turn:h:3478", "--turn-username", "u"}, nil, "", "--turn-credential: required with TURN URLs"},
		{"yaml list of mappings", nil, nil, "log_level: warn\ncors_origins: [{a: b}]\n", "cors_origins in "},
		{"announce not an IP", nil, map[string]string{"TROUPE_RTC_ANNOUNCE_IP": "1.2.3.4, example.com"}, "", "--rtc-announce-ip \"example.com\""},
		{"webhook max age zero", []string{"--webhook-max-age", "0s"}, nil, "", "--webhook-max-age"},
		{"token max lifetime zero", []string{"--token-max-lifetime", "0s"}, nil, "", "--token-max-lifetime 0s: must be at least 1m"},
		{"token max lifetime under a second", []string{"--token-max-lifetime", "500ms"}, nil, "", "--token-max-lifetime 500ms: must be at least 1m"},
		{"token max lifetime under a minute", nil, nil, "token_max_lifetime: 59s\n", "--token-max-lifetime 59s: must be at least 1m"},
		{"token max lifetime of a minute passes", []string{"--token-max-lifetime", "1m"}, nil, "", ""},
		{"token max lifetime negative", nil, map[string]string{"TROUPE_TOKEN_MAX_LIFETIME": "-1h"}, "", "--token-max-lifetime"},
		{"recording max duration negative", []string{"--recording-max-duration", "-1s"}, nil, "", "--recording-max-duration"},
		{"recording min free disk negative", nil, map[string]string{"TROUPE_RECORDING_MIN_FREE_DISK": "-1"}, "", "--recording-min-free-disk"},
		{"webhook url not a url", []string{"--webhook-urls", "not a url"}, nil, "", "--webhook-urls"},
		{"webhook event unknown", []string{"--webhook-urls", "https://example.com/h", "--webhook-events", "room-exploded"}, nil, "", "--webhook-urls/--webhook-events"},
		{"trusted proxy a host name", []string{"--trusted-proxies", "10.0.0.1,proxy.example"}, nil, "", `--trusted-proxies "proxy.example": not an IP address or a network in CIDR notation`},
		{"trusted proxy bad mask", nil, map[string]string{"TROUPE_TRUSTED_PROXIES": "10.0.0.0/33"}, "", `--trusted-proxies "10.0.0.0/33"`},
		{"trusted proxies every address", nil, nil, "trusted_proxies: [0.0.0.0/0]\n", `--trusted-proxies "0.0.0.0/0": trusts every address`},
		{"trusted proxies pass", []string{"--trusted-proxies", "10.0.0.0/8,192.0.2.7,2001:db8::/32"}, nil, "", ""},
		{"trusted proxies together every address", []string{"--trusted-proxies", "0.0.0.0/1,128.0.0.0/1"}, nil, "", "--trusted-proxies 0.0.0.0/1, 128.0.0.0/1: together trust every address"},
		{"trusted proxy header unknown", []string{"--trusted-proxy-header", "x-real-ip"}, nil, "", `--trusted-proxy-header "x-real-ip": must be x-forwarded-for or forwarded`},
		{"trusted proxy header unknown in yaml", nil, nil, "trusted_proxy_header: both\n", `--trusted-proxy-header "both"`},
		{"trusted proxy header in any case passes", nil, map[string]string{"TROUPE_TRUSTED_PROXY_HEADER": "X-Forwarded-For"}, "", ""},
		{"cors origin with a path", []string{"--cors-origins", "https://a.example/page"}, nil, "", "--cors-origins"},
		{"cors origin without a scheme", nil, map[string]string{"TROUPE_CORS_ORIGINS": "*,a.example"}, "", "--cors-origins"},
		{"dev tokens not a bool", nil, map[string]string{"TROUPE_DEV_JOIN_TOKENS": "maybe"}, "", "not a boolean"},
		{"udp port too big", nil, nil, "rtc_udp_port: 65536\n", "--rtc-udp-port 65536"},
		{"tls cert without key", []string{"--tls-cert", "c.pem"}, nil, "", "--tls-cert and --tls-key go together"},
		{"tls key without cert", nil, map[string]string{"TROUPE_TLS_KEY": "k.pem"}, "", "--tls-cert and --tls-key go together"},
		{"debug address without port", []string{"--debug-addr", "localhost"}, nil, "", "--debug-addr"},
		{"http address not an IP", []string{"--http-addr", "999.9.9.9:17880"}, nil, "", `--http-addr "999.9.9.9:17880": 999.9.9.9 is not a valid IP address`},
		{"http address not a host name", nil, map[string]string{"TROUPE_HTTP_ADDR": "my host:7880"}, "", "neither an IP address nor a host name"},
		{"debug address not an IP", []string{"--debug-addr", "127.0.0.300:6060"}, nil, "", "--debug-addr"},
		{"debug address on every interface", []string{"--debug-addr", ":6060"}, nil, "", "--debug-addr \":6060\": the profiler is unauthenticated"},
		{"debug address not loopback", nil, map[string]string{"TROUPE_DEBUG_ADDR": "10.0.0.5:6060"}, "", "give a loopback address"},
		{"debug address of a host name", []string{"--debug-addr", "debug.example.com:6060"}, nil, "", "give a loopback address"},
		{"debug address unspecified IPv6", []string{"--debug-addr", "[::]:6060"}, nil, "", "give a loopback address"},
		{"metrics address without port", []string{"--metrics-addr", "127.0.0.1"}, nil, "", "--metrics-addr"},
		{"metrics address of a public IP", []string{"--metrics-addr", "203.0.113.7:9090"}, nil, "", `--metrics-addr "203.0.113.7:9090": binds 203.0.113.7 (a public address), where /metrics is unauthenticated`},
		{"metrics address of a public IPv6", nil, map[string]string{"TROUPE_METRICS_ADDR": "[2606:4700:4700::1111]:9090"}, "", "give a loopback or private address"},
		{"metrics address the API's", []string{"--http-addr", "127.0.0.1:7880", "--metrics-addr", "127.0.0.1:7880"}, nil, "", "must differ from --http-addr"},
		{"metrics address on loopback passes", []string{"--metrics-addr", "127.0.0.1:9090"}, nil, "", ""},
		{"metrics address private passes", nil, nil, "metrics_addr: 10.1.2.3:9090\n", ""},
		{"metrics address of an overlay network passes", []string{"--metrics-addr", "100.101.102.103:9090"}, nil, "", ""},
		{"metrics address of IPv6 ULA passes", []string{"--metrics-addr", "[fd00::5]:9090"}, nil, "", ""},
		{"metrics address of a public mapped IPv4", []string{"--metrics-addr", "[::ffff:203.0.113.7]:9090"}, nil, "", "give a loopback or private address"},
		{"metrics address on every interface", []string{"--metrics-addr", ":9090"}, nil, "", `--metrics-addr ":9090": binds 0.0.0.0 (every interface)`},
		{"metrics address on every IPv4 interface", nil, map[string]string{"TROUPE_METRICS_ADDR": "0.0.0.0:9090"}, "", "set --metrics-allow-public"},
		{"metrics address on every IPv6 interface", nil, nil, "metrics_addr: '[::]:9090'\n", "binds :: (every interface)"},
		{"metrics address on every interface allowed", []string{"--metrics-addr", ":9090", "--metrics-allow-public"}, nil, "", ""},
		{"metrics address public allowed", nil, map[string]string{"TROUPE_METRICS_ADDR": "203.0.113.7:9090", "TROUPE_METRICS_ALLOW_PUBLIC": "true"}, "", ""},
		{"metrics address of a host name passes", []string{"--metrics-addr", "metrics.internal:9090"}, nil, "", ""},
		{"debug address on localhost passes", []string{"--debug-addr", "localhost:6060"}, nil, "", ""},
		{"debug address on IPv6 loopback passes", []string{"--debug-addr", "[::1]:6060"}, nil, "", ""},
		{"http address of a host name passes", []string{"--http-addr", "localhost:7880"}, nil, "", ""},
		{"http address on every interface passes", []string{"--http-addr", ":7880"}, nil, "", ""},
		{"http address of IPv6 passes", []string{"--http-addr", "[::1]:7880"}, nil, "", ""},
		{"bad level", []string{"--log-level", "verbose"}, nil, "", "--log-level"},
		{"bad format", nil, map[string]string{"TROUPE_LOG_FORMAT": "xml"}, "", "--log-format"},
		{"empty data dir", []string{"--data-dir", ""}, nil, "", "--data-dir"},
		{"zero request timeout", []string{"--request-timeout", "0s"}, nil, "", "--request-timeout"},
		{"negative passivation", []string{"--passivate-after", "-1s"}, nil, "", "--passivate-after"},
		{"negative drain timeout", []string{"--drain-timeout", "-1s"}, nil, "", "--drain-timeout"},
		{"negative rate", []string{"--rate-limit", "-1"}, nil, "", "--rate-limit"},
		{"rate not a number", []string{"--rate-limit", "NaN"}, nil, "", "--rate-limit NaN: must be a finite number"},
		{"rate infinite", nil, map[string]string{"TROUPE_RATE_LIMIT": "Inf"}, "", "--rate-limit +Inf: must be a finite number"},
		{"rate infinite in yaml", nil, nil, "rate_limit: .inf\n", "--rate-limit +Inf"},
		{"rate minus infinity", []string{"--rate-limit", "-Inf"}, nil, "", "--rate-limit -Inf"},
		{"negative burst", []string{"--rate-burst", "-1"}, nil, "", "--rate-burst"},
		{"negative WHIP rate", []string{"--whip-rate", "-1"}, nil, "", "--whip-rate"},
		{"infinite WHIP rate", []string{"--whip-rate", "+Inf"}, nil, "", "--whip-rate"},
		{"negative WHIP burst", []string{"--whip-burst", "-1"}, nil, "", "--whip-burst"},
		{"no viewers per identity", []string{"--max-viewers-per-identity", "0"}, nil, "", "--max-viewers-per-identity"},
		{"zero signaling rate", []string{"--signaling-rate", "0"}, nil, "", "--signaling-rate"},
		{"zero signaling burst", []string{"--signaling-burst", "0"}, nil, "", "--signaling-burst"},
		{"zero signaling pending", []string{"--signaling-pending", "0"}, nil, "", "--signaling-pending 0"},
		{"zero chat rate", []string{"--chat-rate", "0"}, nil, "", "--chat-rate"},
		{"zero chat burst", []string{"--chat-burst", "0"}, nil, "", "--chat-burst"},
		{"zero chat cap", []string{"--chat-max-per-session", "0"}, nil, "", "--chat-max-per-session"},
		{"zero signaling pending per address", []string{"--signaling-pending-per-addr", "0"}, nil, "", "--signaling-pending-per-addr"},
		{"gc percent below off", []string{"--gc-percent", "-2"}, nil, "", "--gc-percent -2"},
		{"gc percent not a number", nil, map[string]string{"TROUPE_GC_PERCENT": "half"}, "", "TROUPE_GC_PERCENT"},
		{"key without secret", []string{"--api-key", "TKkey"}, nil, "", "set both or neither"},
		{"secret without key", nil, map[string]string{"TROUPE_API_SECRET": "x"}, "", "set both or neither"},
		{"short secret", []string{"--api-key", "TKkey", "--api-secret", "short"}, nil, "", "shorter than"},
		{"valid key passes", key, nil, "", ""},
		{"etcd without a key pair", []string{"--etcd-endpoints", "http://127.0.0.1:2379"}, nil, "", "--etcd-endpoints needs --api-key and --api-secret"},
		{"etcd endpoint not a url", append([]string{"--etcd-endpoints", "127.0.0.1:2379"}, key...), nil, "", `--etcd-endpoints "127.0.0.1:2379"`},
		{"node id with a slash", append([]string{"--etcd-endpoints", "http://e:2379", "--node-id", "a/b"}, key...), nil, "", "--node-id"},
		{"advertise url with a path", append([]string{"--etcd-endpoints", "http://e:2379", "--advertise-url", "http://a:7880/x"}, key...), nil, "", "--advertise-url"},
		{"public url with a path", []string{"--public-url", "https://meet.example.com/troupe"}, nil, "", "--public-url"},
		{"public url not http", []string{"--public-url", "meet.example.com"}, nil, "", "--public-url"},
		{"public url passes", []string{"--public-url", "https://meet.example.com/"}, nil, "", ""},
		{"lease ttl below a second", append([]string{"--etcd-endpoints", "http://e:2379", "--cluster-lease-ttl", "500ms"}, key...), nil, "", "--cluster-lease-ttl 500ms"},
		{"lease ttl not whole seconds", append([]string{"--etcd-endpoints", "http://e:2379", "--cluster-lease-ttl", "1500ms"}, key...), nil, "", "--cluster-lease-ttl 1.5s: must be whole seconds"},
		{"lease ttl of whole seconds passes", append([]string{"--etcd-endpoints", "http://e:2379", "--cluster-lease-ttl", "2m"}, key...), nil, "", ""},
		{"lease ttl unchecked on a single node", []string{"--cluster-lease-ttl", "0s"}, nil, "", ""},
		{"valid cluster node passes", append([]string{"--etcd-endpoints", "http://e:2379,https://f:2379", "--node-id", "n1", "--advertise-url", "http://n1:7880/"}, key...), nil, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := loadWith(t, tc.args, tc.env, tc.yaml)
			if err == nil {
				err = cfg.Validate()
			}
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("error %v does not wrap ErrInvalidConfig", err)
			}
			if msg := oneLine(err.Error()); strings.Contains(msg, "\n") {
				t.Fatalf("multi-line message %q", msg)
			}
		})
	}
}

// Every field of Config is a setting, and each can be set by its flag, its
// environment variable and its YAML key, the one Config's tag names.
func TestEveryFieldSettable(t *testing.T) {
	typ := reflect.TypeFor[Config]()
	if len(settings) != typ.NumField() {
		t.Errorf("%d settings for %d fields", len(settings), typ.NumField())
	}
	for i := range typ.NumField() {
		f := typ.Field(i)
		t.Run(f.Name, func(t *testing.T) {
			s, ok := settingOf(f)
			if !ok {
				t.Fatalf("no setting for %s", f.Name)
			}
			if tag := f.Tag.Get("yaml"); tag != yamlKey(s.name) {
				t.Fatalf("yaml tag %q, want %q", tag, yamlKey(s.name))
			}
			// A value of the field's type that no default has, as flag and
			// environment text, as YAML, and as the field holds it.
			var text, yamlValue string
			var want any
			switch f.Type {
			case reflect.TypeFor[string]():
				text, want = "v", "v"
			case reflect.TypeFor[stringList]():
				text, yamlValue, want = "a,b", "[a, b]", stringList{"a", "b"}
			case reflect.TypeFor[int]():
				text, want = "3", 3
			case reflect.TypeFor[float64]():
				text, want = "2.5", 2.5
			case reflect.TypeFor[time.Duration]():
				text, want = "3s", 3*time.Second
			case reflect.TypeFor[bool]():
				text, want = "true", true
			case reflect.TypeFor[estimationMode]():
				text, want = "always", estimateAlways
			default:
				t.Fatalf("no test value for a field of type %s", f.Type)
			}
			if yamlValue == "" {
				yamlValue = text
			}
			for _, way := range []struct {
				name string
				args []string
				env  map[string]string
				yaml string
			}{
				{"flag", []string{"--" + s.name + "=" + text}, nil, ""},
				{"env", nil, map[string]string{envName(s.name): text}, ""},
				{"yaml", nil, nil, yamlKey(s.name) + ": " + yamlValue + "\n"},
			} {
				cfg, err := loadWith(t, way.args, way.env, way.yaml)
				if err != nil {
					t.Fatalf("%s: %v", way.name, err)
				}
				if got := reflect.ValueOf(cfg).Field(i).Interface(); !reflect.DeepEqual(got, want) {
					t.Errorf("by %s: %#v, want %#v", way.name, got, want)
				}
			}
		})
	}
}

// settingOf finds the setting whose field is f.
func settingOf(f reflect.StructField) (setting, bool) {
	var c Config
	want := reflect.ValueOf(&c).Elem().FieldByIndex(f.Index).Addr().Pointer()
	for _, s := range settings {
		if reflect.ValueOf(s.field(&c)).Pointer() == want {
			return s, true
		}
	}
	return setting{}, false
}

// A setting of a type the loader cannot set fails at once, rather than
// ignoring its flag and variable.
func TestUnsupportedSettingTypeFails(t *testing.T) {
	var u uint
	if err := setFromString(&u, "3"); err == nil {
		t.Error("setFromString took a uint")
	}
	defer func() {
		if recover() == nil {
			t.Error("bindFlag took a uint")
		}
	}()
	bindFlag(pflag.NewFlagSet("test", pflag.ContinueOnError), "unsigned", "", &u)
}

// The rooms' links are on --public-url, or on the API's own address, a
// wildcard host made the host name.
func TestPublicURLDefault(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Skip("no host name:", err)
	}
	for _, tc := range []struct {
		cfg  Config
		addr string
		want string
	}{
		{Config{PublicURL: "https://meet.example.com/"}, "127.0.0.1:7880", "https://meet.example.com"},
		{Config{}, "127.0.0.1:7880", "http://127.0.0.1:7880"},
		{Config{}, "0.0.0.0:7880", "http://" + net.JoinHostPort(host, "7880")},
		{Config{TLSCert: "c.pem", TLSKey: "k.pem"}, "[::]:443", "https://" + net.JoinHostPort(host, "443")},
	} {
		if got, err := tc.cfg.publicURL(tc.addr); err != nil || got != tc.want {
			t.Errorf("%+v on %s: %q, %v; want %q", tc.cfg.PublicURL, tc.addr, got, err, tc.want)
		}
	}
}

// --rtc-bandwidth-estimation takes off, simulcast or always, and still
// the booleans it took before (false: off, true: simulcast), from a flag,
// the environment or YAML; anything else is refused. Each mode reaches
// the engine's configuration.
func TestBandwidthEstimationSetting(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  string
		yaml string
		want estimationMode
	}{
		{nil, "", "", estimateSimulcast},
		{[]string{"--rtc-bandwidth-estimation=false"}, "", "", estimateOff},
		{[]string{"--rtc-bandwidth-estimation=always"}, "", "", estimateAlways},
		{[]string{"--rtc-bandwidth-estimation", "off"}, "always", "", estimateOff},
		{nil, "true", "", estimateSimulcast},
		{nil, "Always", "", estimateAlways},
		{nil, "", "rtc_bandwidth_estimation: false\n", estimateOff},
		{nil, "", "rtc_bandwidth_estimation: always\n", estimateAlways},
	} {
		env := map[string]string{"TROUPE_RTC_BANDWIDTH_ESTIMATION": tc.env}
		cfg, err := loadWith(t, tc.args, env, tc.yaml)
		if err != nil {
			t.Fatalf("%v %q %q: %v", tc.args, tc.env, tc.yaml, err)
		}
		if cfg.RTCBandwidthEstimation != tc.want {
			t.Errorf("%v %q %q: %q, want %q", tc.args, tc.env, tc.yaml, cfg.RTCBandwidthEstimation, tc.want)
		}
		rc := cfg.rtcConfig(nil)
		if rc.NoBandwidthEstimation != (tc.want == estimateOff) || rc.BandwidthEstimationAlways != (tc.want == estimateAlways) {
			t.Errorf("%q: engine config off %v, always %v", tc.want, rc.NoBandwidthEstimation, rc.BandwidthEstimationAlways)
		}
	}
	for _, tc := range []struct {
		args []string
		env  string
		yaml string
	}{
		{[]string{"--rtc-bandwidth-estimation=sometimes"}, "", ""},
		{nil, "1x", ""},
		{nil, "", "rtc_bandwidth_estimation: [always]\n"},
		{nil, "", "rtc_bandwidth_estimation: often\n"},
	} {
		if _, err := loadWith(t, tc.args, map[string]string{"TROUPE_RTC_BANDWIDTH_ESTIMATION": tc.env}, tc.yaml); err == nil {
			t.Errorf("%v %q %q: accepted", tc.args, tc.env, tc.yaml)
		}
	}
}
