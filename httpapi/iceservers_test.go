package httpapi

import "testing"

func TestICEServerLink(t *testing.T) {
	for _, tc := range []struct {
		url, username, credential, want string
	}{
		{"stun:stun.example.net", "", "", `<stun:stun.example.net>; rel="ice-server"`},
		{"turn:198.51.100.7:3478?transport=udp", "1700000000:PA_x", "a+b/c=",
			`<turn:198.51.100.7:3478?transport=udp>; rel="ice-server"; username="1700000000:PA_x"; credential="a+b/c="; credential-type="password"`},
		{"turns:t.example.net:5349?transport=tcp", `we"ird\user`, "p",
			`<turns:t.example.net:5349?transport=tcp>; rel="ice-server"; username="we\"ird\\user"; credential="p"; credential-type="password"`},
	} {
		if got := iceServerLink(tc.url, tc.username, tc.credential); got != tc.want {
			t.Errorf("iceServerLink(%q, %q, %q)\n got %s\nwant %s", tc.url, tc.username, tc.credential, got, tc.want)
		}
	}
}
