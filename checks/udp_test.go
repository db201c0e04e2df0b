package checks

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/directorlb/director/config"
)

// udpServer runs a real UDP server on addr ("127.0.0.1:0", "[::1]:0"):
// each datagram is answered by reply(datagram), or not at all if reply
// returns nil.
func udpServer(t *testing.T, addr string, reply func([]byte) []byte) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Skipf("no UDP socket on %s: %v", addr, err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			// A copy that is not nil even for an empty datagram.
			if r := reply(append(make([]byte, 0, n), buf[:n]...)); r != nil {
				_, _ = pc.WriteTo(r, from)
			}
		}
	}()
	return pc.LocalAddr().(*net.UDPAddr).AddrPort()
}

func echoReply(b []byte) []byte { return b }

// closedUDPPort is a loopback port nothing listens on: it was bound and
// released, so the kernel answers it with an ICMP port unreachable.
func closedUDPPort(t *testing.T, addr string) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Skipf("no UDP socket on %s: %v", addr, err)
	}
	ap := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	pc.Close()
	return ap
}

func TestUDP(t *testing.T) {
	for _, loop := range []string{"127.0.0.1:0", "[::1]:0"} {
		t.Run(loop, func(t *testing.T) {
			echo := udpServer(t, loop, echoReply)
			silent := udpServer(t, loop, func([]byte) []byte { return nil })
			closed := closedUDPPort(t, loop)
			tests := []struct {
				name    string
				u       UDP
				target  netip.AddrPort
				wantErr string // "" means healthy
				is      error
			}{
				{"empty datagram", UDP{}, echo, "", nil},
				{"send", UDP{Send: "hello"}, echo, "", nil},
				{"expect", UDP{Send: "status?\n", Expect: "status"}, echo, "", nil},
				{"expect missing", UDP{Send: "hello", Expect: "world"}, echo, `expect "world": not in the reply of 5 bytes`, nil},
				{"port unreachable", UDP{Send: "hello"}, closed, "port unreachable", ErrPortUnreachable},
				{"no reply", UDP{Send: "hello"}, silent, "no reply", context.DeadlineExceeded},
				{"no port", UDP{Send: "hello"}, netip.AddrPortFrom(echo.Addr(), 0), "no port", nil},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					r := probeWithin(t, tt.u, tt.target, 300*time.Millisecond)
					checkResult(t, r, tt.wantErr, tt.is)
				})
			}
		})
	}
}

// checkResult fails t unless r is healthy (wantErr "") or failed with an
// error containing wantErr and, if is is not nil, matching it.
func checkResult(t *testing.T, r Result, wantErr string, is error) {
	t.Helper()
	if wantErr == "" {
		if !r.OK || r.Err != nil {
			t.Fatalf("want healthy, got %+v", r)
		}
		return
	}
	if r.OK || r.Err == nil {
		t.Fatalf("want a failure with %q, got healthy", wantErr)
	}
	if !strings.Contains(r.Err.Error(), wantErr) {
		t.Errorf("error %q does not contain %q", r.Err, wantErr)
	}
	if is != nil && !errors.Is(r.Err, is) {
		t.Errorf("error %q is not %v", r.Err, is)
	}
}

func TestUDPCancel(t *testing.T) {
	silent := udpServer(t, "127.0.0.1:0", func([]byte) []byte { return nil })
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	r := UDP{Send: "x"}.Probe(ctx, silent)
	if r.OK || time.Since(start) > 2*time.Second {
		t.Fatalf("a cancelled probe: %+v after %v", r, time.Since(start))
	}
}

func TestUDPICMPSIPFromConfig(t *testing.T) {
	rs := &config.RealServer{Address: netip.MustParseAddr("10.1.0.11"), Port: 53}
	base := config.Check{Interval: time.Second, Timeout: 500 * time.Millisecond, Rise: 1, Fall: 1, Send: "s", Expect: "e"}

	c := base
	c.Type = config.CheckUDP
	p := FromConfig(c, rs)
	if p.Target.String() != "10.1.0.11:53" || p.Send != "s" || p.Expect != "e" {
		t.Errorf("udp spec: %+v", p)
	}
	if _, ok := NewProber(p).(UDP); !ok {
		t.Errorf("udp prober: %T", NewProber(p))
	}

	c.Type = config.CheckICMP
	p = FromConfig(c, rs)
	other := *rs
	other.Port = 54
	if p.Target.Port() != 0 || p.Send != "" || p.Key() != FromConfig(c, &other).Key() {
		t.Errorf("icmp spec keeps a port or the tcp keys: %+v", p)
	}
	if _, ok := NewProber(p).(ICMP); !ok {
		t.Errorf("icmp prober: %T", NewProber(p))
	}

	c.Type = config.CheckSIP
	if p := FromConfig(c, rs); p.Target.Port() != 53 {
		t.Errorf("sip spec: %v, want the real server's port", p.Target)
	}
	fw := &config.RealServer{Address: netip.MustParseAddr("10.1.0.11")}
	p = FromConfig(c, fw)
	if p.Target.String() != "10.1.0.11:5060" {
		t.Errorf("sip spec without a port: %v, want 5060", p.Target)
	}
	if _, ok := NewProber(p).(SIP); !ok {
		t.Errorf("sip prober: %T", NewProber(p))
	}
}
