// Package webhooktest helps test what resolves webhook endpoints: a DNS
// server on 127.0.0.1 that knows only the names a test gives it, and a
// resolver that asks nothing else, so that no test depends on real DNS.
// Only tests import it.
package webhooktest

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// DNS is a DNS server on 127.0.0.1 answering A and AAAA questions from a
// fixed table, and NXDOMAIN for any name outside it.
type DNS struct {
	// Addr is the server's address: what a resolver's error would name.
	Addr  string
	hosts map[string][]netip.Addr
	conn  net.PacketConn
	done  chan struct{}
}

// NewDNS starts a DNS server that answers for hosts (names without the
// final dot, in any case). It stops when the test ends.
func NewDNS(t testing.TB, hosts map[string][]netip.Addr) *DNS {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &DNS{Addr: conn.LocalAddr().String(), hosts: map[string][]netip.Addr{}, conn: conn, done: make(chan struct{})}
	for name, addrs := range hosts {
		d.hosts[strings.ToLower(name)+"."] = addrs
	}
	go d.serve()
	t.Cleanup(func() {
		conn.Close()
		<-d.done
	})
	return d
}

// Resolver returns a resolver that sends every query to d, whatever the
// system's configuration names.
func (d *DNS) Resolver() *net.Resolver {
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dialer net.Dialer
			return dialer.DialContext(ctx, "udp", d.Addr)
		},
	}
}

func (d *DNS) serve() {
	defer close(d.done)
	buf := make([]byte, 1500)
	for {
		n, from, err := d.conn.ReadFrom(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue
		}
		if reply, ok := d.answer(buf[:n]); ok {
			d.conn.WriteTo(reply, from)
		}
	}
}

// answer builds the reply to one query; false drops a query that does not
// parse.
func (d *DNS) answer(query []byte) ([]byte, bool) {
	var q dnsmessage.Message
	if err := q.Unpack(query); err != nil || len(q.Questions) != 1 {
		return nil, false
	}
	question := q.Questions[0]
	reply := dnsmessage.Message{
		Header: dnsmessage.Header{
			ID: q.Header.ID, Response: true, Authoritative: true,
			RecursionDesired: q.Header.RecursionDesired, RecursionAvailable: true,
		},
		Questions: q.Questions,
	}
	addrs, known := d.hosts[strings.ToLower(question.Name.String())]
	if !known {
		reply.Header.RCode = dnsmessage.RCodeNameError
	}
	for _, a := range addrs {
		h := dnsmessage.ResourceHeader{Name: question.Name, Class: dnsmessage.ClassINET, TTL: 60}
		switch {
		case question.Type == dnsmessage.TypeA && a.Is4():
			h.Type = dnsmessage.TypeA
			reply.Answers = append(reply.Answers, dnsmessage.Resource{Header: h, Body: &dnsmessage.AResource{A: a.As4()}})
		case question.Type == dnsmessage.TypeAAAA && !a.Is4():
			h.Type = dnsmessage.TypeAAAA
			reply.Answers = append(reply.Answers, dnsmessage.Resource{Header: h, Body: &dnsmessage.AAAAResource{AAAA: a.As16()}})
		}
	}
	b, err := reply.Pack()
	return b, err == nil
}
