package etcdtest

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/troupe-media/troupe/internal/leaktest"
	"github.com/troupe-media/troupe/internal/poll"
)

// echoServer answers every line it reads on a connection with the same
// line, until the test ends; it returns its address as a client URL.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				io.Copy(c, c)
				c.Close()
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return "http://" + ln.Addr().String()
}

// echo dials the link, sends a line and returns what comes back: the line,
// or the error of a connection the link dropped.
func echo(t *testing.T, l *Link, line string) (string, error) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(l.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return exchange(c, line)
}

func exchange(c net.Conn, line string) (string, error) {
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		return "", err
	}
	return bufio.NewReader(c).ReadString('\n')
}

// A link relays both ways until cut; a cut drops the connections it
// relays and refuses new ones, and once mended it relays again.
func TestLinkCutAndMend(t *testing.T) {
	leaktest.Check(t)
	l := NewLink(t, echoServer(t))
	if got, err := echo(t, l, "one"); err != nil || got != "one\n" {
		t.Fatalf("through the link: %q, %v", got, err)
	}
	open, err := net.Dial("tcp", strings.TrimPrefix(l.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	if got, err := exchange(open, "two"); err != nil || got != "two\n" {
		t.Fatalf("through the link: %q, %v", got, err)
	}

	l.Cut(true)
	// The open connection ends (the deadline only bounds a failure).
	open.SetReadDeadline(time.Now().Add(poll.Timeout))
	if got, err := bufio.NewReader(open).ReadString('\n'); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a connection open across the cut read %q, %v", got, err)
	}
	if got, err := echo(t, l, "three"); err == nil {
		t.Fatalf("a connection made while cut echoed %q", got)
	}

	l.Cut(false)
	if got, err := echo(t, l, "four"); err != nil || got != "four\n" {
		t.Fatalf("through the mended link: %q, %v", got, err)
	}
}
