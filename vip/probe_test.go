package vip

import (
	"context"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/directorlb/director/lab/topo"
)

// TestProbeHearsAnswerReadLate: on a loaded host the goroutine awaiting
// the answer may run only after the probe's window has closed. An answer
// that arrived within the window is still an answer then; before, Go's
// deadline refused the read and the probe reported silence, which would
// have put the VIP on the network twice. Runs on the host's kernel, in
// network namespaces.
func TestProbeHearsAnswerReadLate(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root; make test runs as root")
	}
	n := topo.New(t)
	prober, holder := n.Host("prober"), n.Host("holder")
	for _, h := range []*topo.Host{prober, holder} {
		h.Sysctl("net.ipv6.conf.default.accept_dad", "0")
	}
	sw := n.Switch("lan")
	ifP := sw.Plug(prober, "192.0.2.1/24,2001:db8::1/64")
	ifH := sw.Plug(holder, "192.0.2.2/24,2001:db8::2/64")
	prober.WaitIPv6(ifP, 5*time.Second)
	holder.WaitIPv6(ifH, 5*time.Second)
	holder.Addr(ifH, "192.0.2.10/24")
	holder.Addr(ifH, "2001:db8::10/64")
	mac := holder.MAC(ifH).String()

	send := map[string]func(context.Context, string, netip.Addr) (*probe, error){"arp": sendARP, "ns": sendNS}
	// A fresh link may drop the first frames: wait until an on-time
	// reader hears both held addresses.
	for kind, addr := range map[string]string{"arp": "192.0.2.10", "ns": "2001:db8::10"} {
		heard := false
		for start := time.Now(); !heard && time.Since(start) < 5*time.Second; {
			if err := prober.Do(func() error {
				ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
				defer cancel()
				p, err := send[kind](ctx, ifP, netip.MustParseAddr(addr))
				if err != nil {
					return err
				}
				defer p.close()
				_, heard, err = p.await()
				return err
			}); err != nil {
				t.Fatal(err)
			}
		}
		if !heard {
			t.Fatalf("%s %s: no answer within 5s, even read on time", kind, addr)
		}
	}
	for _, c := range []struct {
		kind, addr string
		held       bool
	}{
		{"arp", "192.0.2.10", true},
		{"arp", "192.0.2.99", false},
		{"ns", "2001:db8::10", true},
		{"ns", "2001:db8::99", false},
	} {
		t.Run(c.kind+" "+c.addr, func(t *testing.T) {
			var got string
			var answered bool
			if err := prober.Do(func() error {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
				defer cancel()
				p, err := send[c.kind](ctx, ifP, netip.MustParseAddr(c.addr))
				if err != nil {
					return err
				}
				defer p.close()
				// The late reader: it runs well after the window closed.
				<-ctx.Done()
				time.Sleep(100 * time.Millisecond)
				hw, ok, err := p.await()
				got, answered = hw.String(), ok
				return err
			}); err != nil {
				t.Fatal(err)
			}
			switch {
			case c.held && (!answered || got != mac):
				t.Errorf("answered %v by %q, want the holder's %s", answered, got, mac)
			case !c.held && answered:
				t.Errorf("nobody holds %s, yet the probe found %q", c.addr, got)
			}
		})
	}
}
