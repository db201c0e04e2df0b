package config

import (
	"fmt"
	"math"
	"net/netip"
	"slices"

	"gopkg.in/yaml.v3"
)

var realServerKeys = []string{"address", "weight", "forward", "tunnel", "upper_threshold", "lower_threshold"}

// endpointContext is what a real server inherits from, and is checked
// against, its service. The ...OK fields are false where the service's own
// value was wrong: that mistake is reported once, at the service, rather
// than again at every real server that depends on it.
type endpointContext struct {
	svc       *Service
	familyOK  bool
	portOK    bool
	anyPort   bool // fwmark or port 0: real servers see the client's port
	forwardOK bool
	tunnel    TunnelSpec // the service's, inherited by tun real servers
}

func (c *endpointContext) serviceLabel() string {
	family := "IPv4"
	if c.svc.IPv6 {
		family = "IPv6"
	}
	if c.svc.FWMark != 0 {
		return fmt.Sprintf("%s service fwmark %d", family, c.svc.FWMark)
	}
	if len(c.svc.VIPs) > 0 {
		return fmt.Sprintf("service with vips %v", c.svc.VIPs)
	}
	return fmt.Sprintf("%s service %s", family, c.svc.VIP)
}

func (d *decoder) realServers(n *yaml.Node, path string, ctx *endpointContext) []RealServer {
	entries, ok := d.list(n, path, "real servers (each starting with \"- address:\")")
	if !ok {
		return nil
	}
	if d.realServerCount > MaxRealServers {
		return nil // reported at the list that crossed the limit
	}
	if d.realServerCount += len(entries); d.realServerCount > MaxRealServers {
		d.limitf(n, path, "brings the file to %d real servers, more than the %d directord takes", d.realServerCount, MaxRealServers)
		return nil
	}
	first := make(map[netip.AddrPort]*yaml.Node, len(entries))
	out := make([]RealServer, 0, len(entries))
	for i, e := range entries {
		// Decoded in place: one allocation for the list, not one each.
		out = append(out, RealServer{})
		r := &out[len(out)-1]
		ok, addrAt := d.realServer(e, index(path, i), ctx, r)
		if !ok {
			out[len(out)-1] = RealServer{}
			out = out[:len(out)-1]
			continue
		}
		if addrAt != nil {
			if prev, dup := first[r.AddrPort()]; dup {
				d.errorf(addrAt, join(index(path, i), "address"), "duplicate real server %s (first at %s)", r.AddrPort(), at(prev))
				out[len(out)-1] = RealServer{}
				out = out[:len(out)-1]
				continue
			}
			first[r.AddrPort()] = addrAt
		}
	}
	return out
}

// realServer decodes one entry into r; false when the entry is not a
// mapping at all. The node it returns is its address, nil when the
// address is missing or invalid.
func (d *decoder) realServer(n *yaml.Node, path string, ctx *endpointContext, r *RealServer) (bool, *yaml.Node) {
	f := d.mapping(n, path, "a real server", realServerKeys)
	if f == nil {
		return false, nil
	}
	*r = RealServer{Weight: 1, Forward: ctx.svc.Forward, Pos: d.pos(n)}
	forwardOK := ctx.forwardOK
	if v := f.value("forward"); v != nil {
		fw, ok := d.enum(v, f.sub("forward"), forwards)
		if forwardOK = ok; ok {
			r.Forward = Forward(fw)
			if d.bgpMode && r.Forward == NAT {
				d.bgpForward(v, f.sub("forward"))
			}
		}
	}
	if v := f.value("weight"); v != nil {
		// Every real server may have one: its key path is built only
		// for a message.
		w, ok := quickInteger(v, 0, 65535)
		if !ok {
			w, _ = d.integer(v, f.sub("weight"), 0, 65535)
		}
		r.Weight = int(w)
	}
	upper, lower := f.value("upper_threshold"), f.value("lower_threshold")
	var upperOK bool
	if upper != nil {
		u, ok := d.integer(upper, f.sub("upper_threshold"), 0, math.MaxUint32)
		r.UpperThreshold, upperOK = uint32(u), ok
	}
	if lower != nil {
		l, ok := d.integer(lower, f.sub("lower_threshold"), 0, math.MaxUint32)
		r.LowerThreshold = uint32(l)
		if ok && upperOK && r.UpperThreshold != 0 && r.LowerThreshold > r.UpperThreshold {
			d.errorf(lower, f.sub("lower_threshold"), "must be at most upper_threshold (%d), got %d", r.UpperThreshold, r.LowerThreshold)
		}
	}
	if d.bgpMode {
		for _, k := range []string{"upper_threshold", "lower_threshold"} {
			if v := f.value(k); v != nil {
				d.warnf(v, f.sub(k), "has no effect in bgp mode: a real server's weight in the kernel is 0 or its configured weight, so that every director's mh table stays the same")
			}
		}
	}
	if v := f.value("tunnel"); v != nil {
		spec, _ := d.tunnel(v, f.sub("tunnel"))
		if forwardOK && r.Forward != Tunnel {
			d.errorf(f.key("tunnel"), f.sub("tunnel"), "needs forward: tun; this real server's forward is %s", r.Forward)
		} else {
			r.Tunnel = spec
		}
	} else if r.Forward == Tunnel {
		r.Tunnel = ctx.tunnel
	}
	v := f.value("address")
	if v == nil {
		d.errorf(n, f.sub("address"), "missing; a real server needs an address")
		return true, nil
	}
	if !d.endpoint(v, f.sub("address"), "real server", r, forwardOK, ctx) {
		return true, nil
	}
	return true, v
}

// sorryServer decodes sorry_server: an address like a real server's, with
// weight 1 and the service's forwarding.
func (d *decoder) sorryServer(n *yaml.Node, key string, ctx *endpointContext) *RealServer {
	r := &RealServer{Weight: 1, Forward: ctx.svc.Forward, Pos: d.pos(n)}
	if r.Forward == Tunnel {
		r.Tunnel = ctx.tunnel
	}
	if !d.endpoint(n, key, "sorry server", r, ctx.forwardOK, ctx) {
		return nil
	}
	for _, rs := range ctx.svc.RealServers {
		if rs.AddrPort() == r.AddrPort() {
			d.errorf(n, key, "%s is also a real server (at %d:%d); a sorry server stands in for the real servers", r.AddrPort(), rs.Pos.Line, rs.Pos.Col)
			return nil
		}
	}
	return r
}

// endpoint reads a real or sorry server's address into r and checks it
// against the service: the family, and the port, which only NAT can map.
func (d *decoder) endpoint(n *yaml.Node, key, what string, r *RealServer, forwardOK bool, ctx *endpointContext) bool {
	a, port, hasPort, ok := d.hostPort(n, key)
	if !ok {
		return false
	}
	r.Address = a
	svc := ctx.svc
	if svc.FWMark == 0 && slices.Contains(svc.KernelVIPs(), a) {
		// IPVS would hand the service's connections back to the director
		// itself (its "local node"), and the checks would probe the VIP.
		d.errorf(n, key, "%s is the service's own VIP; a %s must be another address", a, what)
		return false
	}
	if len(svc.VIPs) > 0 {
		if p := vipsFamilyProblem(svc, a, what); p != "" {
			d.errorf(n, key, "%s", p)
			ok = false
		}
	} else if ctx.familyOK && forwardOK && a.Is6() != svc.IPv6 && r.Forward != Tunnel {
		family := "IPv4"
		if a.Is6() {
			family = "IPv6"
		}
		d.errorf(n, key, "%s %s %s under %s (only forward: tun may mix families)", family, what, a, ctx.serviceLabel())
		ok = false
	}
	switch {
	case !hasPort:
		r.Port = svc.Port
	case ctx.anyPort:
		r.Port = port
		if forwardOK && r.Forward != NAT && port != 0 {
			kind := "fwmark"
			if svc.FWMark == 0 {
				kind = "port 0"
			}
			d.errorf(n, key, "%s cannot map ports: the %s service's connections keep their port; leave the port out", r.Forward, kind)
			ok = false
		}
	case port == 0:
		d.errorf(n, key, "must have a port from 1 to 65535 (or none, for the service's), got %s", describe(n))
		ok = false
	default:
		r.Port = port
		if ctx.portOK && forwardOK && r.Forward != NAT && port != svc.Port {
			// ipvsadm silently replaces the port, and so does this, so that
			// the table, its checks and `ipvsadm --save` agree; but say so.
			r.Port = svc.Port
			d.warnf(n, key, "%s cannot map port %d to %d: connections reach %s; use forward: nat to map ports",
				r.Forward, svc.Port, port, r.AddrPort())
		}
	}
	return ok
}
