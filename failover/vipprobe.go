package failover

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ndp"
)

// VIPAnswer is a VIP that something on the network still answers for.
type VIPAnswer struct {
	VIP VIP
	MAC net.HardwareAddr
}

// ProbeVIPs asks the network whether anything still answers for the
// VIPs, with an ARP request per IPv4 VIP and a neighbour solicitation per
// IPv6 VIP, and returns those that are answered. A peer that fell silent
// may be stalled rather than dead, or dead with its kernel still holding
// the VIPs; taking them then would put them on the network twice. The
// VIPs are probed side by side, each for the whole time ctx allows: one
// after another, the later ones would get only what is left of it.
func ProbeVIPs(ctx context.Context, vips []VIP) ([]VIPAnswer, error) {
	answers := make([]*VIPAnswer, len(vips))
	errs := make([]error, len(vips))
	var wg sync.WaitGroup
	for i, v := range vips {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mac net.HardwareAddr
			var answered bool
			var err error
			if v.Prefix.Addr().Is4() {
				mac, err = probeARP(ctx, v.Interface, v.Prefix.Addr())
				answered = mac != nil
			} else {
				mac, answered, err = probeNDP(ctx, v.Interface, v.Prefix.Addr())
			}
			switch {
			case err != nil:
				errs[i] = fmt.Errorf("probe vip %s: %w", v, err)
			case answered:
				answers[i] = &VIPAnswer{VIP: v, MAC: mac}
			}
		}()
	}
	wg.Wait()
	var out []VIPAnswer
	for _, a := range answers {
		if a != nil {
			out = append(out, *a)
		}
	}
	return out, errors.Join(errs...)
}

// probeWait is how long a probe listens: what ctx allows, counted from
// when its socket is open (on a loaded host opening it can take a good
// part of the time allowed).
func probeWait(ctx context.Context) time.Duration {
	if deadline, ok := ctx.Deadline(); ok {
		return time.Until(deadline)
	}
	return 100 * time.Millisecond
}

// probeNDP sends a neighbour solicitation for ip from the unspecified
// address, as duplicate address detection does, so that the holder
// answers to all nodes whatever this host's own addresses are. It
// reports whether an advertisement for ip came before ctx ended, with
// the MAC it gave, if any.
func probeNDP(ctx context.Context, iface string, ip netip.Addr) (net.HardwareAddr, bool, error) {
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return nil, false, err
	}
	wait := probeWait(ctx)
	c, _, err := ndp.Listen(ifi, ndp.Unspecified)
	if err != nil {
		return nil, false, err
	}
	defer c.Close()
	if err := c.SetReadDeadline(time.Now().Add(wait)); err != nil {
		return nil, false, err
	}
	snm, err := ndp.SolicitedNodeMulticast(ip)
	if err != nil {
		return nil, false, err
	}
	if err := c.WriteTo(&ndp.NeighborSolicitation{TargetAddress: ip}, nil, snm); err != nil {
		return nil, false, err
	}
	for {
		m, _, _, err := c.ReadFrom()
		var ne net.Error
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
			return nil, false, nil
		case err != nil:
			var oe *net.OpError
			if errors.As(err, &oe) {
				return nil, false, err
			}
			continue // a message that does not parse is not an answer
		}
		na, ok := m.(*ndp.NeighborAdvertisement)
		if !ok || na.TargetAddress != ip {
			continue
		}
		for _, o := range na.Options {
			if lla, ok := o.(*ndp.LinkLayerAddress); ok && lla.Direction == ndp.Target {
				return lla.Addr, true, nil
			}
		}
		return nil, true, nil
	}
}

// probeARP sends "who has ip" on the interface and returns the MAC that
// answers before ctx ends, or nil if none does.
func probeARP(ctx context.Context, iface string, ip netip.Addr) (net.HardwareAddr, error) {
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return nil, err
	}
	wait := probeWait(ctx)
	c, err := arp.Dial(ifi)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(wait)); err != nil {
		return nil, err
	}
	mac, err := c.Resolve(ip)
	var ne net.Error
	if errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return nil, nil
	}
	return mac, err
}
