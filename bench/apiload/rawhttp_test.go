package apiload

import (
	"bufio"
	"io"
	"strings"
	"testing"
)

func TestReadResponse(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		status    int
		keepAlive bool
		rest      string // what must be left unread: the next response
		err       bool
	}{
		{"content length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloNEXT", 200, true, "NEXT", false},
		{"chunked", "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3;x=y\r\nabc\r\n0\r\nTrailer: v\r\n\r\nNEXT", 201, true, "NEXT", false},
		{"no content", "HTTP/1.1 204 No Content\r\n\r\nNEXT", 204, true, "NEXT", false},
		{"close", "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 2\r\n\r\nnoNEXT", 503, false, "NEXT", false},
		{"http/1.0 without length", "HTTP/1.0 200 OK\r\n\r\nbody to the end", 200, false, "", false},
		{"header names any case", "HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\nxNEXT", 200, true, "NEXT", false},
		{"garbage status", "SMTP ready\r\n\r\n", 0, false, "", true},
		{"bad status code", "HTTP/1.1 2x0 OK\r\n\r\n", 0, false, "", true},
		{"bad length", "HTTP/1.1 200 OK\r\nContent-Length: -3\r\n\r\n", 0, false, "", true},
		{"header without colon", "HTTP/1.1 200 OK\r\nbroken\r\n\r\n", 0, false, "", true},
		{"bad chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 0, false, "", true},
		{"truncated body", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", 0, false, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := bufio.NewReader(strings.NewReader(tt.in))
			status, keepAlive, err := readResponse(r)
			if tt.err {
				if err == nil {
					t.Fatalf("want an error, got status %d", status)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if status != tt.status || keepAlive != tt.keepAlive {
				t.Fatalf("status %d keepAlive %v, want %d %v", status, keepAlive, tt.status, tt.keepAlive)
			}
			rest, _ := io.ReadAll(r)
			if string(rest) != tt.rest {
				t.Fatalf("left %q unread, want %q", rest, tt.rest)
			}
		})
	}
}

func TestRequestWriter(t *testing.T) {
	get := newRequestWriter(OpGet, "127.0.0.1:1", "/api/v1/rooms/r1", "tok")
	if got := string(get.request(OpGet, 1)); got != "GET /api/v1/rooms/r1 HTTP/1.1\r\nHost: 127.0.0.1:1\r\nAuthorization: Bearer tok\r\nUser-Agent: troupe-bench\r\n\r\n" {
		t.Fatalf("GET request %q", got)
	}
	post := newRequestWriter(OpCreate, "h", "/api/v1/rooms", "tok")
	got := string(post.request(OpCreate, 42))
	body := `{"name":"bench room 42"}`
	if !strings.HasSuffix(got, "Content-Length: 24\r\n\r\n"+body) || !strings.HasPrefix(got, "POST /api/v1/rooms HTTP/1.1\r\n") {
		t.Fatalf("POST request %q", got)
	}
}
