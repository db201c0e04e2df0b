//go:build lab

package e2e

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestFailoverHandover: a graceful stop hands the peer the connections
// the kernel's sync daemon has not sent it. The kernel syncs a TCP
// connection only once established, and sends a message that is not
// full only 2s after its first entry, dropping it when the daemon stops:
// without the handover the connections opened just before the stop, and
// any handshake in flight, are unknown to the new director, whose stack
// resets them.
//
// Both with directors that forward and with directors that do not, which
// hand the handshakes in flight over at another moment.
func TestFailoverHandover(t *testing.T) {
	for _, forwarding := range []bool{false, true} {
		t.Run(fmt.Sprintf("forwarding=%v", forwarding), func(t *testing.T) {
			p := newPairLab(t)
			p.forwarding = forwarding
			p.handover()
		})
	}
}

func (p *pairLab) handover() {
	t := p.t
	p.startPair()
	act, other := p.active()

	// A handshake in flight: a SYN from an address nobody answers for,
	// so the real server's SYN-ACK goes nowhere and the active director
	// holds the connection in SYN_RECV for a minute.
	halfOpen := netip.MustParseAddrPort("192.0.2.200:40000")
	if err := p.client.Do(func() error { return sendSYN(halfOpen, netip.MustParseAddrPort(pairService)) }); err != nil {
		t.Fatal(err)
	}
	flows := p.openFlows(20, 1)
	if st := act.connStates()[halfOpen.String()]; st != "SYN_RECV" {
		t.Fatalf("the active director holds the half-open connection as %q, want SYN_RECV", st)
	}
	before := other.connStates()
	known := 0
	for _, f := range flows {
		if before[f.client.String()] != "" {
			known++
		}
	}
	// Whatever the kernel already sent is no loss; what it had not is the
	// point, and is logged.
	t.Logf("before the stop the standby holds %d of the %d new connections, half-open %v", known, len(flows), before[halfOpen.String()] != "")

	m, lw := other.mark(), act.d.log
	lm := lw.Mark()
	act.stop()
	other.waitRole(m, "active", 5*time.Second)
	line, err := lw.Wait(lm, `connections handed to the peer once the VIPs were out`, time.Second)
	if err != nil {
		t.Fatalf("%s logged no handover: %v", act.name, err)
	}
	t.Logf("%s: %s", act.name, line)
	// The peer's kernel reads the messages in its own thread: its table
	// is polled, not read once.
	var halfState string
	missing := len(flows)
	for start := time.Now(); time.Since(start) < 2*time.Second; time.Sleep(20 * time.Millisecond) {
		after := other.connStates()
		halfState, missing = after[halfOpen.String()], 0
		for _, f := range flows {
			if after[f.client.String()] != "ESTABLISHED" {
				missing++
			}
		}
		if halfState == "SYN_RECV" && missing == 0 {
			break
		}
	}
	if halfState != "SYN_RECV" {
		t.Errorf("the new active holds the half-open connection as %q, want SYN_RECV", halfState)
	}
	if missing > 0 {
		t.Errorf("%d of %d new connections are not established in the new active's table", missing, len(flows))
	}
	p.flowsAnswer(flows, 5*time.Second)
}

// connStates reads the director's IPVS connection table (this
// namespace's, hence /proc/thread-self) and returns each connection to
// the VIP by client address and port, with its state.
func (d *pairDir) connStates() map[string]string {
	d.lab.t.Helper()
	var b []byte
	if err := d.h.Do(func() (err error) {
		b, err = os.ReadFile("/proc/thread-self/net/ip_vs_conn")
		return err
	}); err != nil {
		d.lab.t.Fatalf("%s: %v", d.name, err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		// Pro FromIP FPrt ToIP TPrt DestIP DPrt State Expires ...
		if len(f) < 8 || f[0] != "TCP" || f[3] != "C000020A" {
			continue
		}
		var ip uint32
		var port uint16
		if _, err := fmt.Sscanf(f[1]+" "+f[2], "%x %x", &ip, &port); err != nil {
			continue
		}
		out[netip.AddrPortFrom(netip.AddrFrom4([4]byte(binary.BigEndian.AppendUint32(nil, ip))), port).String()] = f[7]
	}
	return out
}

// sendSYN sends one TCP SYN from src to dst through a raw socket, src
// being any address: the test's own handshake that never completes.
func sendSYN(src, dst netip.AddrPort) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_RAW)
	if err != nil {
		return fmt.Errorf("raw socket: %w", err)
	}
	defer unix.Close(fd)
	pkt := make([]byte, 40)
	ip, tcp := pkt[:20], pkt[20:]
	ip[0], ip[8], ip[9] = 0x45, 64, unix.IPPROTO_TCP // the kernel fills length, id and checksum
	s4, d4 := src.Addr().As4(), dst.Addr().As4()
	copy(ip[12:], s4[:])
	copy(ip[16:], d4[:])
	binary.BigEndian.PutUint16(tcp[0:], src.Port())
	binary.BigEndian.PutUint16(tcp[2:], dst.Port())
	binary.BigEndian.PutUint32(tcp[4:], 0x12345678)
	tcp[12], tcp[13] = 5<<4, 0x02 // 20-byte header, SYN
	binary.BigEndian.PutUint16(tcp[14:], 64240)
	sum := uint32(0)
	for _, b := range [][]byte{s4[:], d4[:], {0, unix.IPPROTO_TCP, 0, 20}, tcp} {
		for i := 0; i < len(b); i += 2 {
			sum += uint32(b[i])<<8 | uint32(b[i+1])
		}
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(tcp[16:], ^uint16(sum))
	if err := unix.Sendto(fd, pkt, 0, &unix.SockaddrInet4{Addr: d4}); err != nil {
		return fmt.Errorf("send a SYN to %s: %w", dst, err)
	}
	return nil
}
