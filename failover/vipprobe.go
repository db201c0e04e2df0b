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
// the VIPs; taking them then would put them on the network twice. Every
// request goes out first, from the calling goroutine (and so from its
// network namespace), then the answers are awaited side by side, each
// for the whole time ctx allows: one after another, the later VIPs would
// get only what is left of it.
func ProbeVIPs(ctx context.Context, vips []VIP) ([]VIPAnswer, error) {
	answers := make([]*VIPAnswer, len(vips))
	errs := make([]error, len(vips))
	var wg sync.WaitGroup
	for i, v := range vips {
		var p *probe
		var err error
		if v.Prefix.Addr().Is4() {
			p, err = sendARP(ctx, v.Interface, v.Prefix.Addr())
		} else {
			p, err = sendNS(ctx, v.Interface, v.Prefix.Addr())
		}
		if err != nil {
			errs[i] = fmt.Errorf("probe vip %s: %w", v, err)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer p.close()
			mac, answered, err := p.await()
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

// probe is a request sent, whose answer await reads.
type probe struct {
	await func() (net.HardwareAddr, bool, error)
	close func() error
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

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// sendARP sends "who has ip" on the interface; its await returns the MAC
// that answers before the wait ends.
func sendARP(ctx context.Context, iface string, ip netip.Addr) (*probe, error) {
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return nil, err
	}
	wait := probeWait(ctx)
	c, err := arp.Dial(ifi)
	if err != nil {
		return nil, err
	}
	if err := c.SetDeadline(time.Now().Add(wait)); err != nil {
		c.Close()
		return nil, err
	}
	if err := c.Request(ip); err != nil {
		c.Close()
		return nil, err
	}
	return &probe{close: c.Close, await: func() (net.HardwareAddr, bool, error) {
		for {
			p, _, err := c.Read()
			switch {
			case isTimeout(err):
				return nil, false, nil
			case err != nil:
				return nil, false, err
			case p.Operation == arp.OperationReply && p.SenderIP == ip:
				return p.SenderHardwareAddr, true, nil
			}
		}
	}}, nil
}

// sendNS sends a neighbour solicitation for ip from this host's
// link-local address, with its MAC, so that the holder answers at once,
// to it. Its await reports whether an advertisement for ip came before
// the wait ended, with the MAC it gave, if any.
func sendNS(ctx context.Context, iface string, ip netip.Addr) (*probe, error) {
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return nil, err
	}
	wait := probeWait(ctx)
	c, _, err := ndp.Listen(ifi, ndp.LinkLocal)
	if err != nil {
		return nil, err
	}
	snm, err := ndp.SolicitedNodeMulticast(ip)
	if err == nil {
		err = c.SetReadDeadline(time.Now().Add(wait))
	}
	if err == nil {
		ns := &ndp.NeighborSolicitation{TargetAddress: ip, Options: []ndp.Option{
			&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: ifi.HardwareAddr},
		}}
		err = c.WriteTo(ns, nil, snm)
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return &probe{close: c.Close, await: func() (net.HardwareAddr, bool, error) {
		for {
			m, _, _, err := c.ReadFrom()
			var oe *net.OpError
			switch {
			case isTimeout(err):
				return nil, false, nil
			case errors.As(err, &oe):
				return nil, false, err
			case err != nil:
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
	}}, nil
}
