//go:build lab

package e2e

import (
	"bytes"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/directorlb/director/lab/topo"
)

// serveUDP answers each datagram to addr in h with reply(datagram), or
// not at all if reply returns nil, until stop: then the port is closed
// and the host answers it with ICMP port unreachable.
func serveUDP(t *testing.T, h *topo.Host, addr string, reply func([]byte) []byte) (stop func()) {
	t.Helper()
	pc, err := h.ListenPacket("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 65536)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if r := reply(buf[:n]); r != nil {
				_, _ = pc.WriteTo(r, from)
			}
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { pc.Close(); wg.Wait() }) }
	t.Cleanup(stop)
	return stop
}

// TestCheckUDP: udp checks (send, expect) drive the weights of a UDP
// service over IPv4 and IPv6; a real server whose responder stops (the
// host answers with ICMP port unreachable) goes to weight 0, and back.
func TestCheckUDP(t *testing.T) {
	t.Parallel()
	_, _, dir, rs1, rs2 := natFarm(t)
	pong := func(b []byte) []byte {
		if !bytes.Equal(b, []byte("ping")) {
			return nil
		}
		return []byte("pong")
	}
	stop1 := serveUDP(t, rs1, ":9999", pong)
	serveUDP(t, rs2, ":9999", pong)
	runDirectord(t, dir, `
services:
  - name: udp4
    vip: 192.0.2.10
    port: 9999
    protocol: udp
    scheduler: rr
    check: {type: udp, send: ping, expect: pong, interval: 200ms, timeout: 100ms, rise: 2, fall: 2}
    real_servers:
      - {address: 10.0.1.11}
      - {address: 10.0.2.12}
  - name: udp6
    vip: 2001:db8:10::10
    port: 9999
    protocol: udp
    scheduler: rr
    check: {type: udp, send: ping, expect: pong, interval: 200ms, timeout: 100ms, rise: 2, fall: 2}
    real_servers:
      - {address: "2001:db8:2::11"}
      - {address: "2001:db8:3::12"}
  - name: wrong-reply
    vip: 192.0.2.10
    port: 9998
    protocol: udp
    check: {type: udp, send: ping, expect: nothing-like-this, port: 9999, interval: 200ms, timeout: 100ms, rise: 2, fall: 2}
    real_servers:
      - {address: 10.0.1.11}
`)
	// A reply without the expected text never makes a server healthy.
	downAndBack(t, dir, "UDP responder", "9999", "-a -u 192.0.2.10:9998 -r 10.0.1.11:9998 -m -w 0", stop1,
		func() { serveUDP(t, rs1, ":9999", pong) })
}

// downAndBack is the course of the UDP-based check tests on natFarm's
// dual-stack real servers: all four at weight 1 on port; the decoy (an
// ipvsadm line of a real server whose answers must never pass) still at
// weight 0 after a window, since proving that a server stays out takes
// one; rs1's responder stopped, and rs1 at 0 on both families while rs2
// stays at 1; the responder restarted, and rs1 back at 1.
func downAndBack(t *testing.T, dir *topo.Host, what, port, decoy string, stop, restart func()) {
	t.Helper()
	for _, rs := range []string{"10.0.1.11", "10.0.2.12", "[2001:db8:2::11]", "[2001:db8:3::12]"} {
		waitKernel(t, dir, "-r "+rs+":"+port+" -m -w 1", 3*time.Second)
	}
	time.Sleep(time.Second)
	waitKernel(t, dir, decoy, time.Second)

	stop()
	took := waitKernel(t, dir, "-r 10.0.1.11:"+port+" -m -w 0", 5*time.Second)
	waitKernel(t, dir, "-r [2001:db8:2::11]:"+port+" -m -w 0", 5*time.Second)
	t.Logf("stopped %s at weight 0 after %v", what, took.Round(time.Millisecond))
	waitKernel(t, dir, "-r 10.0.2.12:"+port+" -m -w 1", time.Second)
	waitKernel(t, dir, "-r [2001:db8:3::12]:"+port+" -m -w 1", time.Second)

	restart()
	waitKernel(t, dir, "-r 10.0.1.11:"+port+" -m -w 1", 3*time.Second)
	waitKernel(t, dir, "-r [2001:db8:2::11]:"+port+" -m -w 1", 3*time.Second)
}

// TestCheckICMP: icmp checks over IPv4 and IPv6; a real server that stops
// answering echo requests (net.ipv4.icmp_echo_ignore_all and its IPv6
// twin, in its namespace) goes to weight 0, and back. The director uses a
// raw socket (root, ping_group_range "1 0", the default), then, once its
// ping_group_range admits root, a ping socket.
func TestCheckICMP(t *testing.T) {
	t.Parallel()
	_, _, dir, rs1, _ := natFarm(t)
	runDirectord(t, dir, `
services:
  - name: web
    vip: 192.0.2.10
    port: 80
    check: {type: icmp, interval: 200ms, timeout: 100ms, rise: 2, fall: 2}
    real_servers:
      - {address: 10.0.1.11}
      - {address: 10.0.2.12}
  - name: web6
    vip: 2001:db8:10::10
    port: 80
    check: {type: icmp, interval: 200ms, timeout: 100ms, rise: 2, fall: 2}
    real_servers:
      - {address: "2001:db8:2::11"}
      - {address: "2001:db8:3::12"}
`)
	all := []string{"10.0.1.11:80", "10.0.2.12:80", "[2001:db8:2::11]:80", "[2001:db8:3::12]:80"}
	for _, sockets := range []string{"raw", "ping"} {
		if sockets == "ping" {
			dir.Sysctl("net.ipv4.ping_group_range", "0 2147483647")
		}
		for _, rs := range all {
			waitKernel(t, dir, "-r "+rs+" -m -w 1", 3*time.Second)
		}
		rs1.Sysctl("net.ipv4.icmp_echo_ignore_all", "1")
		rs1.Sysctl("net.ipv6.icmp.echo_ignore_all", "1")
		took := waitKernel(t, dir, "-r 10.0.1.11:80 -m -w 0", 5*time.Second)
		waitKernel(t, dir, "-r [2001:db8:2::11]:80 -m -w 0", 5*time.Second)
		t.Logf("%s sockets: silent server at weight 0 after %v", sockets, took.Round(time.Millisecond))
		waitKernel(t, dir, "-r 10.0.2.12:80 -m -w 1", time.Second)
		waitKernel(t, dir, "-r [2001:db8:3::12]:80 -m -w 1", time.Second)
		rs1.Sysctl("net.ipv4.icmp_echo_ignore_all", "0")
		rs1.Sysctl("net.ipv6.icmp.echo_ignore_all", "0")
	}
	for _, rs := range all {
		waitKernel(t, dir, "-r "+rs+" -m -w 1", 3*time.Second)
	}
}

var (
	sipCallID = regexp.MustCompile(`(?m)^Call-ID: (.*)\r$`)
	sipCSeq   = regexp.MustCompile(`(?m)^CSeq: (.*)\r$`)
	sipVia    = regexp.MustCompile(`(?m)^Via: (.*)\r$`)
)

// sipUAS is a tiny SIP responder: OPTIONS gets status (such as "200 OK")
// with the request's Via, Call-ID and CSeq.
func sipUAS(status string) func([]byte) []byte {
	return func(req []byte) []byte {
		id, cseq, via := sipCallID.FindSubmatch(req), sipCSeq.FindSubmatch(req), sipVia.FindSubmatch(req)
		if !bytes.HasPrefix(req, []byte("OPTIONS sip:")) || id == nil || cseq == nil || via == nil {
			return nil
		}
		return []byte("SIP/2.0 " + status + "\r\nVia: " + string(via[1]) + "\r\nFrom: <sip:director@x>;tag=1\r\nTo: <sip:x>;tag=2\r\n" +
			"Call-ID: " + string(id[1]) + "\r\nCSeq: " + string(cseq[1]) + "\r\nContent-Length: 0\r\n\r\n")
	}
}

// TestCheckSIP: sip checks (OPTIONS over UDP) over IPv4 and IPv6; any
// final response is alive, a provisional one alone is not; a stopped
// responder (ICMP port unreachable) goes to weight 0, and back.
func TestCheckSIP(t *testing.T) {
	t.Parallel()
	_, _, dir, rs1, rs2 := natFarm(t)
	stop1 := serveUDP(t, rs1, ":5060", sipUAS("200 OK"))
	serveUDP(t, rs2, ":5060", sipUAS("486 Busy Here"))
	serveUDP(t, rs1, ":5061", sipUAS("100 Trying"))
	runDirectord(t, dir, `
services:
  - name: sip4
    vip: 192.0.2.10
    port: 5060
    protocol: udp
    check: {type: sip, interval: 200ms, timeout: 100ms, rise: 2, fall: 2}
    real_servers:
      - {address: 10.0.1.11}
      - {address: 10.0.2.12}
  - name: sip6
    vip: 2001:db8:10::10
    port: 5060
    protocol: udp
    check: {type: sip, interval: 200ms, timeout: 100ms, rise: 2, fall: 2}
    real_servers:
      - {address: "2001:db8:2::11"}
      - {address: "2001:db8:3::12"}
  - name: provisional
    vip: 192.0.2.10
    port: 5061
    protocol: udp
    check: {type: sip, interval: 200ms, timeout: 100ms, rise: 2, fall: 2}
    real_servers:
      - {address: 10.0.1.11}
`)
	downAndBack(t, dir, "SIP responder", "5060", "-r 10.0.1.11:5061 -m -w 0", stop1,
		func() { serveUDP(t, rs1, ":5060", sipUAS("200 OK")) })
}
