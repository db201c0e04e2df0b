package checks

import (
	"context"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// listen starts a TCP listener on 127.0.0.1 that hands each connection to
// handle; it is closed when the test ends.
func listen(t *testing.T, handle func(net.Conn)) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); handle(c) }()
		}
	}()
	return netip.MustParseAddrPort(ln.Addr().String())
}

// closedPort returns an address where nothing listens.
func closedPort(t *testing.T) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ap := netip.MustParseAddrPort(ln.Addr().String())
	ln.Close()
	return ap
}

func probeWithin(t *testing.T, p Prober, target netip.AddrPort, timeout time.Duration) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	r := p.Probe(ctx, target)
	if took := time.Since(start); took > timeout+execWaitDelay+200*time.Millisecond {
		t.Errorf("probe took %v, timeout was %v", took, timeout)
	}
	return r
}

func TestTCP(t *testing.T) {
	hangs := make(chan struct{})
	t.Cleanup(func() { close(hangs) })
	hang := func(c net.Conn) { <-hangs }
	echoBanner := func(c net.Conn) {
		buf := make([]byte, 5)
		if _, err := io.ReadFull(c, buf); err != nil {
			return
		}
		io.WriteString(c, "hello "+string(buf)+"\r\nOK ready\r\n")
	}
	accepting := listen(t, hang)
	banner := listen(t, echoBanner)
	chatty := listen(t, func(c net.Conn) { io.WriteString(c, strings.Repeat("x", 2*maxRead)) })
	closer := listen(t, func(c net.Conn) { io.WriteString(c, "bye") })

	tests := []struct {
		name    string
		p       TCP
		target  netip.AddrPort
		ok      bool
		errLike string
	}{
		{"connect", TCP{}, accepting, true, ""},
		{"closed port", TCP{}, closedPort(t), false, "connection refused"},
		{"send expect", TCP{Send: "PING\n", Expect: "OK ready"}, banner, true, ""},
		{"expect but hangs", TCP{Expect: "OK"}, accepting, false, "deadline exceeded"},
		{"expect but closed", TCP{Expect: "OK"}, closer, false, "connection closed after 3 bytes"},
		{"expect bounded read", TCP{Expect: "OK"}, chatty, false, "not in the first"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := probeWithin(t, tt.p, tt.target, 300*time.Millisecond)
			if r.OK != tt.ok {
				t.Fatalf("OK = %v (err %v), want %v", r.OK, r.Err, tt.ok)
			}
			if tt.errLike != "" && (r.Err == nil || !strings.Contains(r.Err.Error(), tt.errLike)) {
				t.Fatalf("err = %v, want it to mention %q", r.Err, tt.errLike)
			}
			if r.Weight != NoWeight {
				t.Fatalf("Weight = %d, want NoWeight", r.Weight)
			}
		})
	}
}

func TestNone(t *testing.T) {
	if r := (None{}).Probe(context.Background(), netip.AddrPort{}); !r.OK {
		t.Fatalf("none: %+v", r)
	}
}
