package failover

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/mdlayher/arp"
)

// VIPAnswer is a VIP that something on the network still answers for.
type VIPAnswer struct {
	VIP VIP
	MAC net.HardwareAddr
}

// ProbeVIPs asks the network, with one ARP request per IPv4 VIP, whether
// anything still answers for the VIPs, and returns those that are. A
// peer that fell silent may be stalled rather than dead, or dead with
// its kernel still holding the VIPs; taking them then would put them on
// the network twice. IPv6 VIPs are not probed.
func ProbeVIPs(ctx context.Context, vips []VIP) ([]VIPAnswer, error) {
	var out []VIPAnswer
	var errs []error
	for _, v := range vips {
		if !v.Prefix.Addr().Is4() {
			continue
		}
		mac, err := probeARP(ctx, v.Interface, v.Prefix.Addr())
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("probe vip %s: %w", v, err))
		case mac != nil:
			out = append(out, VIPAnswer{VIP: v, MAC: mac})
		}
	}
	return out, errors.Join(errs...)
}

// probeARP sends "who has ip" on the interface and returns the MAC that
// answers before ctx ends, or nil if none does.
func probeARP(ctx context.Context, iface string, ip netip.Addr) (net.HardwareAddr, error) {
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return nil, err
	}
	wait := 100 * time.Millisecond
	if deadline, ok := ctx.Deadline(); ok {
		wait = time.Until(deadline)
	}
	c, err := arp.Dial(ifi)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	// The wait starts once the socket is open: on a loaded host opening
	// it can take a good part of the time allowed.
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
