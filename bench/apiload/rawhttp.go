package apiload

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// rawConn is one keep-alive HTTP/1.1 connection that writes prepared
// request bytes and reads each response with just enough parsing: the
// status and the body's length. It costs a fraction of net/http's client
// per request, so the load generator leaves the CPU to the server it
// measures; the two share the machine.
type rawConn struct {
	addr string
	c    net.Conn
	r    *bufio.Reader
}

// requestTimeout bounds one round trip, as the net/http client's Timeout does.
const requestTimeout = 30 * time.Second

var errMalformedResponse = errors.New("apiload: malformed HTTP response")

// roundTrip sends req and reads the response; on any error the connection
// is dropped and the next call dials again.
func (rc *rawConn) roundTrip(ctx context.Context, req []byte) (status int, err error) {
	if rc.c == nil {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", rc.addr)
		if err != nil {
			return 0, err
		}
		rc.c, rc.r = c, bufio.NewReaderSize(c, 16<<10)
	}
	defer func() {
		if err != nil {
			rc.close()
		}
	}()
	if err := rc.c.SetDeadline(time.Now().Add(requestTimeout)); err != nil {
		return 0, err
	}
	if _, err := rc.c.Write(req); err != nil {
		return 0, err
	}
	status, keepAlive, err := readResponse(rc.r)
	if err == nil && !keepAlive {
		rc.close()
	}
	return status, err
}

func (rc *rawConn) close() {
	if rc.c != nil {
		rc.c.Close()
		rc.c, rc.r = nil, nil
	}
}

// readResponse reads one response to a request that is not HEAD.
func readResponse(r *bufio.Reader) (status int, keepAlive bool, err error) {
	line, err := r.ReadSlice('\n')
	if err != nil {
		return 0, false, err
	}
	// "HTTP/1.1 200 OK\r\n"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, false, fmt.Errorf("%w: status line %q", errMalformedResponse, line)
	}
	status, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, false, fmt.Errorf("%w: status line %q", errMalformedResponse, line)
	}
	length, chunked, keepAlive := int64(-1), false, line[7] == '1'
	for {
		line, err = r.ReadSlice('\n')
		if err != nil {
			return 0, false, err
		}
		if len(line) <= 2 { // the blank line
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return 0, false, fmt.Errorf("%w: header %q", errMalformedResponse, line)
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.ParseInt(string(value), 10, 64); err != nil || length < 0 {
				return 0, false, fmt.Errorf("%w: content length %q", errMalformedResponse, value)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			keepAlive = !bytes.EqualFold(value, []byte("close"))
		}
	}
	switch {
	case chunked:
		err = discardChunked(r)
	case length >= 0:
		_, err = r.Discard(int(length))
	case status == 204 || status == 304 || status/100 == 1:
	default:
		// No length: the body runs to the end of the connection.
		_, err = io.Copy(io.Discard, r)
		keepAlive = false
	}
	return status, keepAlive, err
}

func discardChunked(r *bufio.Reader) error {
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return err
		}
		sizeText, _, _ := bytes.Cut(bytes.TrimSpace(line), []byte(";"))
		size, err := strconv.ParseInt(string(sizeText), 16, 64)
		if err != nil || size < 0 {
			return fmt.Errorf("%w: chunk size %q", errMalformedResponse, line)
		}
		if size == 0 {
			// Trailers, then the blank line.
			for {
				line, err := r.ReadSlice('\n')
				if err != nil {
					return err
				}
				if len(line) <= 2 {
					return nil
				}
			}
		}
		if _, err := r.Discard(int(size) + 2); err != nil { // data and its CRLF
			return err
		}
	}
}

// requestWriter prepares the bytes of one client's requests.
type requestWriter struct {
	head []byte // everything of a GET, or a POST up to its Content-Length
	buf  []byte
}

func newRequestWriter(op Op, host, path, token string) *requestWriter {
	method := "GET"
	if op == OpCreate {
		method = "POST"
	}
	head := fmt.Appendf(nil, "%s %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nUser-Agent: troupe-bench\r\n",
		method, path, host, token)
	if op == OpGet {
		head = append(head, "\r\n"...)
	} else {
		head = append(head, "Content-Type: application/json\r\nContent-Length: "...)
	}
	return &requestWriter{head: head}
}

// request returns the bytes of request n; valid until the next call.
func (w *requestWriter) request(op Op, n int64) []byte {
	if op == OpGet {
		return w.head
	}
	body := `{"name":"bench room ` + strconv.FormatInt(n, 10) + `"}`
	w.buf = append(w.buf[:0], w.head...)
	w.buf = strconv.AppendInt(w.buf, int64(len(body)), 10)
	w.buf = append(w.buf, "\r\n\r\n"...)
	w.buf = append(w.buf, body...)
	return w.buf
}
