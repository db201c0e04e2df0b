package checks

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// dnsServer runs a real DNS server (miekg/dns) on a loopback UDP and TCP
// port: example.test. A 192.0.2.53; everything else NXDOMAIN; big.test.
// answers with enough records to be truncated over UDP.
func dnsServer(t *testing.T, delay time.Duration) netip.AddrPort {
	t.Helper()
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		time.Sleep(delay)
		m := new(dns.Msg)
		m.SetReply(r)
		switch r.Question[0].Name {
		case "example.test.":
			rr, _ := dns.NewRR("example.test. 60 IN A 192.0.2.53")
			m.Answer = append(m.Answer, rr)
		case "big.test.":
			for i := 0; i < 60; i++ {
				rr, _ := dns.NewRR("big.test. 60 IN TXT \"padding padding padding padding padding padding\"")
				m.Answer = append(m.Answer, rr)
			}
			if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
				m.Truncated, m.Answer = true, nil
			}
		default:
			m.Rcode = dns.RcodeNameError
		}
		_ = w.WriteMsg(m)
	})
	// UDP and TCP on one port number: another test may hold the TCP
	// port the kernel just gave out for UDP, so try a few.
	var pc net.PacketConn
	var l net.Listener
	var port int
	for attempt := 0; ; attempt++ {
		var err error
		pc, err = net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port = pc.LocalAddr().(*net.UDPAddr).Port
		l, err = net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err == nil {
			break
		}
		pc.Close()
		if attempt == 20 {
			t.Fatalf("no port free for both UDP and TCP: %v", err)
		}
	}
	udp := &dns.Server{PacketConn: pc, Handler: h}
	tcp := &dns.Server{Listener: l, Handler: h}
	go func() { _ = udp.ActivateAndServe() }()
	go func() { _ = tcp.ActivateAndServe() }()
	t.Cleanup(func() { _ = udp.Shutdown(); _ = tcp.Shutdown() })
	return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
}

func TestDNSProbe(t *testing.T) {
	target := dnsServer(t, 0)
	for _, tc := range []struct {
		name string
		d    DNS
		ok   bool
	}{
		{"A answered", DNS{Name: "example.test"}, true},
		{"expected answer", DNS{Name: "example.test", Answer: "192.0.2.53"}, true},
		{"stale answer", DNS{Name: "example.test", Answer: "192.0.2.99"}, false},
		{"NXDOMAIN unexpected", DNS{Name: "nope.test"}, false},
		{"NXDOMAIN expected", DNS{Name: "nope.test", Rcode: "nxdomain"}, true},
		{"truncated over UDP, retried over TCP", DNS{Name: "big.test", Type: "TXT", Answer: "padding"}, true},
		{"bad type", DNS{Name: "example.test", Type: "BOGUS"}, false},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		res := tc.d.Probe(ctx, target)
		cancel()
		if res.OK != tc.ok {
			t.Errorf("%s: ok=%v err=%v", tc.name, res.OK, res.Err)
		}
		if !res.OK && res.Err == nil {
			t.Errorf("%s: a failure without a reason", tc.name)
		}
	}
	res := DNS{Name: "example.test", Answer: "192.0.2.99"}.Probe(context.Background(), target)
	if !errors.Is(res.Err, ErrDNSAnswer) {
		t.Errorf("stale answer error: %v", res.Err)
	}
}

func TestDNSProbeDeadline(t *testing.T) {
	target := dnsServer(t, 600*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	res := DNS{Name: "example.test"}.Probe(ctx, target)
	if res.OK || time.Since(start) > time.Second {
		t.Fatalf("a hung DNS server: ok=%v after %v (deadline 100ms)", res.OK, time.Since(start))
	}
	if !errors.Is(res.Err, context.DeadlineExceeded) {
		t.Errorf("deadline error: %v", res.Err)
	}
}
