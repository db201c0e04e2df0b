package config

import (
	"math"
	"net/netip"
	"slices"
	"time"

	"gopkg.in/yaml.v3"
)

var (
	bgpKeys      = []string{"asn", "router_id", "hold_time", "peers", "vip_interface", "drain_time", "sync", "group"}
	bgpPeerKeys  = []string{"address", "asn", "bfd", "password_file"}
	bfdKeys      = []string{"interval", "multiplier"}
	bgpGroupKeys = []string{"links", "auth_key_file"}
	announceKeys = []string{"min_healthy"}
)

// BGP defaults. The hold time is the least RFC 4271 allows other than 0,
// so a dead peer is noticed in 3s even without BFD; BFD's are FRR's and
// BIRD's usual 300ms × 3.
const (
	DefaultHoldTime      = 3 * time.Second
	DefaultVIPInterface  = "lo"
	DefaultDrainTime     = 5 * time.Second
	DefaultBFDInterval   = 300 * time.Millisecond
	DefaultBFDMultiplier = 3
	// DefaultMinHealthy is announce.min_healthy in bgp mode.
	DefaultMinHealthy = 1
)

// BGP's own limits.
const (
	minHoldTime = 3 * time.Second     // RFC 4271 4.2: 0 or at least 3s
	maxHoldTime = 65535 * time.Second // a 16-bit count of seconds
	// asTrans (RFC 6793) stands in for a 4-byte AS number in a 2-byte
	// field; a speaker configured with it is a mistake.
	asTrans = 23456
	// BFD intervals: below 10ms no router here keeps up (and a busy
	// director would flap); above a minute BFD detects nothing the hold
	// time does not.
	minBFDInterval = 10 * time.Millisecond
	maxBFDInterval = time.Minute
)

// bgpSchedulers pick a flow's real server from the flow alone, so every
// director of a group picks the same one.
var bgpSchedulers = []string{"mh", "sh"}

// bgpDefaultFlags go with the default scheduler in bgp mode: mh-fallback
// keeps a flow whose real server is quiesced from being dropped, mh-port
// spreads one client's connections over the real servers.
var bgpDefaultFlags = []string{"mh-fallback", "mh-port"}

func (d *decoder) bgp(n *yaml.Node) *BGP {
	b := &BGP{HoldTime: DefaultHoldTime, VIPInterface: DefaultVIPInterface, DrainTime: DefaultDrainTime}
	f := d.mapping(n, "bgp", "this director's BGP speaker: asn, router_id, peers", bgpKeys)
	if f == nil {
		return b
	}
	if v := f.value("asn"); v != nil {
		b.ASN, _ = d.asn(v, f.sub("asn"))
	} else {
		d.errorf(n, f.sub("asn"), "missing; this director's AS number, such as 65001")
	}
	if v := f.value("router_id"); v != nil {
		b.RouterID, _ = d.routerID(v, f.sub("router_id"))
	} else {
		d.errorf(n, f.sub("router_id"), "missing; this director's BGP identifier, an IPv4 address unique among the speakers, such as its own address")
	}
	if v := f.value("hold_time"); v != nil {
		if t, ok := d.holdTime(v, f.sub("hold_time")); ok {
			b.HoldTime = t
		}
	}
	if v := f.value("peers"); v != nil {
		b.Peers = d.bgpPeers(v, f.sub("peers"))
	} else {
		d.errorf(n, f.sub("peers"), "missing; the routers this director announces the VIPs to")
	}
	if v := f.value("vip_interface"); v != nil {
		if s, ok := d.ifname(v, f.sub("vip_interface")); ok {
			b.VIPInterface = s
		}
		d.mark(f.sub("vip_interface"), v)
	}
	if v := f.value("drain_time"); v != nil {
		if t, ok := d.duration(v, f.sub("drain_time")); ok {
			b.DrainTime = t
		}
	}
	if v := f.value("sync"); v != nil {
		b.Sync = d.sync(v, f.sub("sync"))
	}
	if v := f.value("group"); v != nil {
		b.Group = d.bgpGroup(v, f.sub("group"))
	}
	return b
}

func (d *decoder) asn(n *yaml.Node, key string) (uint32, bool) {
	v, ok := d.integer(n, key, 1, math.MaxUint32)
	if ok && v == asTrans {
		d.warnf(n, key, "%d is AS_TRANS, which stands in for a 4-byte AS number on speakers that only know 2-byte ones; use the real AS number", v)
	}
	return uint32(v), ok
}

// routerID reads a BGP identifier: 32 bits, written as an IPv4 address
// even on a director with only IPv6.
func (d *decoder) routerID(n *yaml.Node, key string) (netip.Addr, bool) {
	const want = "an IPv4 address such as 10.0.1.2 (a BGP router id is 32 bits, even on an IPv6-only director)"
	s, ok := d.scalar(n, key, want)
	if !ok {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		d.errorf(n, key, "must be %s, got %s", want, describe(n))
		return netip.Addr{}, false
	}
	if p := unicastProblem(a); p != "" {
		d.errorf(n, key, "%s, got %s", p, describe(n))
		return netip.Addr{}, false
	}
	return a, true
}

func (d *decoder) holdTime(n *yaml.Node, key string) (time.Duration, bool) {
	v, ok := d.duration(n, key)
	switch {
	case !ok:
	case v%time.Second != 0:
		d.errorf(n, key, "must be whole seconds (BGP counts the hold time in seconds), got %s", describe(n))
	case v == 0:
		d.warnf(n, key, "0 turns keepalives off: a dead peer is noticed only by BFD or by TCP giving up, which takes minutes")
		return 0, true
	case v < minHoldTime:
		d.errorf(n, key, "must be 0 or at least 3s (RFC 4271), got %s", describe(n))
	case v > maxHoldTime:
		d.errorf(n, key, "must be at most 65535s, got %s", describe(n))
	default:
		return v, true
	}
	return 0, false
}

func (d *decoder) bgpPeers(n *yaml.Node, path string) []BGPPeer {
	entries, ok := d.list(n, path, "peers (each with address and asn)")
	if !ok {
		return nil
	}
	if len(entries) == 0 {
		d.errorf(n, path, "must list at least one peer: a router this director announces the VIPs to")
		return nil
	}
	first := map[netip.Addr]*yaml.Node{}
	out := make([]BGPPeer, 0, len(entries))
	for i, e := range entries {
		pp := index(path, i)
		f := d.mapping(e, pp, "a peer: address, asn, bfd, password_file", bgpPeerKeys)
		if f == nil {
			continue
		}
		var p BGPPeer
		if v := f.value("address"); v == nil {
			d.errorf(e, f.sub("address"), "missing; the router's address, IPv4 or IPv6")
		} else if a, ok := d.addr(v, f.sub("address")); ok {
			if prev, dup := first[a]; dup {
				d.errorf(v, f.sub("address"), "duplicate peer %s (first at %s)", a, at(prev))
				continue
			}
			first[a] = v
			p.Address = a
		}
		if v := f.value("asn"); v != nil {
			p.ASN, _ = d.asn(v, f.sub("asn"))
		} else {
			d.errorf(e, f.sub("asn"), "missing; the router's AS number (this director's own for iBGP)")
		}
		if v := f.value("bfd"); v != nil {
			p.BFD = d.bfd(v, f.sub("bfd"))
		}
		if v := f.value("password_file"); v != nil {
			p.PasswordFile, _ = d.text(v, f.sub("password_file"), "the path of the file holding the TCP MD5 password")
			d.mark(f.sub("password_file"), v)
		}
		out = append(out, p)
	}
	return out
}

func (d *decoder) bfd(n *yaml.Node, path string) *BFD {
	b := &BFD{Interval: DefaultBFDInterval, Multiplier: DefaultBFDMultiplier}
	f := d.mapping(n, path, "BFD: interval and multiplier", bfdKeys)
	if f == nil {
		return b
	}
	if v := f.value("interval"); v != nil {
		if t, ok := d.duration(v, f.sub("interval")); ok {
			if t < minBFDInterval || t > maxBFDInterval {
				d.errorf(v, f.sub("interval"), "must be from 10ms to 1m, got %s", describe(v))
			} else {
				b.Interval = t
			}
		}
	}
	if v := f.value("multiplier"); v != nil {
		m, _ := d.integer(v, f.sub("multiplier"), 1, 255)
		b.Multiplier = int(m)
	}
	return b
}

func (d *decoder) bgpGroup(n *yaml.Node, path string) *BGPGroup {
	g := &BGPGroup{}
	f := d.mapping(n, path, "the directors' group: links and auth_key_file", bgpGroupKeys)
	if f == nil {
		return g
	}
	if v := f.value("links"); v != nil {
		// A serial line joins two machines; a group is any number.
		if v.Kind == yaml.SequenceNode {
			for i, e := range v.Content {
				if e.Kind != yaml.MappingNode {
					continue
				}
				for j := 0; j+1 < len(e.Content); j += 2 {
					if k := e.Content[j]; k.Kind == yaml.ScalarNode && k.Value == "serial" {
						d.errorf(k, join(index(f.sub("links"), i), "serial"), "a group's links are network links (interface with peer or multicast); a serial line joins only two directors")
					}
				}
			}
		}
		g.Links = slices.DeleteFunc(d.links(v, f.sub("links")), func(l Link) bool { return l.Serial != "" })
	} else {
		d.errorf(n, f.sub("links"), "missing; the group needs at least one heartbeat link")
	}
	if v := f.value("auth_key_file"); v != nil {
		g.AuthKeyFile, _ = d.text(v, f.sub("auth_key_file"), "the path of the file holding the shared key")
		d.mark(f.sub("auth_key_file"), v)
	} else {
		d.errorf(n, f.sub("auth_key_file"), "missing; the group authenticates heartbeats with the key in this file")
	}
	return g
}

// bgpConflicts refuses what cannot go with a bgp block: a director is one
// of a pair or one of a group behind the routers, never both.
func (d *decoder) bgpConflicts(f *fields, c *Config) {
	if c.BGP != nil && c.Failover != nil {
		d.errorf(f.key("bgp"), "bgp", "cannot be used with failover (at %s): a director is either one of a pair or one of a group behind the routers; remove one of the blocks",
			at(f.key("failover")))
	}
}

// bgpForward refuses NAT in bgp mode, at a forward: nat the file wrote.
func (d *decoder) bgpForward(n *yaml.Node, key string) {
	d.errorf(n, key, "nat cannot be used in bgp mode: a real server sends its replies to its one gateway, not back to whichever director forwarded the request; use dr or tun")
}

// bgpService applies bgp mode to a decoded service: the forwarding that
// works with several directors, the failure action that keeps their mh
// tables alike, and announce. The scheduler's default is set before
// scheduling reads the service's own (service).
func (d *decoder) bgpService(f *fields, n *yaml.Node, s *Service) {
	ann := f.value("announce")
	if !d.bgpMode {
		if ann != nil {
			d.warnf(f.key("announce"), f.sub("announce"), "has no effect without a bgp block")
			d.announce(ann, f.sub("announce"), s)
		}
		return
	}
	if v := f.value("scheduler"); v != nil && s.Scheduler != "" && !slices.Contains(bgpSchedulers, s.Scheduler) {
		d.warnf(v, f.sub("scheduler"), "%s picks real servers by this director's own state: a flow the routers move to another director may reach another real server there (and break) unless bgp.sync has carried its connection; mh or sh pick the same on every director", s.Scheduler)
	}
	switch v := f.value("forward"); {
	case v == nil:
		d.errorf(n, f.sub("forward"), "missing; in bgp mode a service must say forward: dr or forward: tun (the default, nat, cannot work: replies would not come back through the director that forwarded the request)")
	case s.Forward == NAT:
		d.bgpForward(v, f.sub("forward"))
	}
	if v := f.value("slow_start"); v != nil {
		d.warnf(v, f.sub("slow_start"), "has no effect in bgp mode: a recovered real server gets its configured weight at once, as every step of a ramp would change every director's mh table at a different time")
	}
	if v := f.value("on_failure"); v != nil && s.OnFailure == Remove {
		d.errorf(v, f.sub("on_failure"), "remove cannot be used in bgp mode: a failed real server is quiesced, never removed, so that every director's mh table stays the same")
	}
	if v := f.value("fwmark"); v != nil {
		d.warnf(v, f.sub("fwmark"), "a fwmark service has no VIP for bgp to announce: its packets reach this director only if something else routes them here")
	}
	s.Announce = Announce{MinHealthy: DefaultMinHealthy}
	var mh *yaml.Node
	if ann != nil {
		mh = d.announce(ann, f.sub("announce"), s)
	}
	switch {
	case mh != nil && s.Announce.MinHealthy > len(s.RealServers):
		d.errorf(mh, join(f.sub("announce"), "min_healthy"), "is %d, but the service has %d real server(s): its VIP would never be announced", s.Announce.MinHealthy, len(s.RealServers))
	case len(s.RealServers) == 0 && s.FWMark == 0:
		d.warnf(n, f.sub("real_servers"), "none: the service's VIP is never announced")
	}
	if v := f.value("sorry_server"); v != nil {
		d.warnf(f.key("sorry_server"), f.sub("sorry_server"), "never serves in bgp mode: it is not put in the kernel (its coming and going would change every director's mh table), and the VIP is withdrawn once fewer than %d real server(s) are healthy", s.Announce.MinHealthy)
	}
}

// announce reads a service's announce block. It returns the node of the
// min_healthy it set, nil if it set none.
func (d *decoder) announce(n *yaml.Node, path string, s *Service) *yaml.Node {
	f := d.mapping(n, path, "when the VIP is announced: min_healthy", announceKeys)
	if f == nil {
		return nil
	}
	v := f.value("min_healthy")
	if v == nil {
		return nil
	}
	m, ok := d.integer(v, f.sub("min_healthy"), 1, MaxRealServers)
	if !ok {
		return nil
	}
	s.Announce.MinHealthy = int(m)
	return v
}
