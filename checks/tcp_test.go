package checks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"syscall"
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

// TestTCPClose checks how a probe hangs up: with a reset once the check
// is done (no TIME_WAIT left on the director), but in order when it sent
// data and waited for nothing, so that the data is not discarded.
func TestTCPClose(t *testing.T) {
	tests := []struct {
		name      string
		p         TCP
		wantRead  string
		wantReset bool
	}{
		{"connect only", TCP{}, "", true},
		{"send expect", TCP{Send: "PING\n", Expect: "PONG"}, "PING\n", true},
		{"send only", TCP{Send: "QUIT\r\n"}, "QUIT\r\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := make(chan error, 1)
			var read []byte
			target := listen(t, func(c net.Conn) {
				if tt.p.Expect != "" {
					buf := make([]byte, len(tt.p.Send))
					if _, err := io.ReadFull(c, buf); err != nil {
						got <- err
						return
					}
					read = buf
					io.WriteString(c, tt.p.Expect)
				}
				rest, err := io.ReadAll(c)
				read = append(read, rest...)
				got <- err
			})
			if r := probeWithin(t, tt.p, target, time.Second); !r.OK {
				t.Fatalf("probe failed: %v", r.Err)
			}
			err := <-got
			if reset := errors.Is(err, syscall.ECONNRESET); reset != tt.wantReset {
				t.Fatalf("server's read ended with %v; want a reset: %v", err, tt.wantReset)
			}
			if string(read) != tt.wantRead {
				t.Fatalf("server read %q, want %q", read, tt.wantRead)
			}
		})
	}
}

func TestTCPTargets(t *testing.T) {
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	tests := []struct {
		target  string
		errLike string
	}{
		{fmt.Sprintf("[::1]:%d", port), ""},
		// A zone by name and by index: both resolve (loopback is index 1).
		{fmt.Sprintf("[::1%%lo]:%d", port), ""},
		{fmt.Sprintf("[::1%%1]:%d", port), ""},
		{fmt.Sprintf("[::1%%nosuch0]:%d", port), `unknown IPv6 zone "nosuch0"`},
		// IPv4-mapped: probed over IPv4, where nothing listens on it.
		{fmt.Sprintf("[::ffff:127.0.0.1]:%d", closedPort(t).Port()), "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			r := probeWithin(t, TCP{}, netip.MustParseAddrPort(tt.target), time.Second)
			if tt.errLike == "" {
				if !r.OK {
					t.Fatalf("probe failed: %v", r.Err)
				}
				return
			}
			if r.OK || !strings.Contains(r.Err.Error(), tt.errLike) {
				t.Fatalf("probe: OK %v, err %v; want an error mentioning %q", r.OK, r.Err, tt.errLike)
			}
		})
	}
}

// TestTCPCancel: cancelling the probe's context (the engine stopping)
// ends a probe waiting on a silent server at once, not at its deadline.
func TestTCPCancel(t *testing.T) {
	hangs := make(chan struct{})
	t.Cleanup(func() { close(hangs) })
	accepted := make(chan struct{}, 1)
	target := listen(t, func(net.Conn) { accepted <- struct{}{}; <-hangs })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	go func() { <-accepted; cancel() }()
	start := time.Now()
	r := TCP{Expect: "never"}.Probe(ctx, target)
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("probe returned %v after the cancel", took)
	}
	if r.OK || !errors.Is(r.Err, context.Canceled) {
		t.Fatalf("probe: OK %v, err %v; want context.Canceled", r.OK, r.Err)
	}
}
