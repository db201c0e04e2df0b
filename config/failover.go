package config

import (
	"net/netip"
	"time"

	"gopkg.in/yaml.v3"
)

var (
	failoverKeys = []string{"priority", "auto_failback", "keepalive", "deadtime", "initdead",
		"auth_key_file", "port", "links", "vips", "ping_nodes", "sync", "notify", "fence", "hook_timeout"}
	linkKeys = []string{"interface", "peer", "multicast", "serial"}
	vipKeys  = []string{"address", "interface"}
	syncKeys = []string{"interface", "sync_id"}
)

// Failover defaults, as in the contract's example: heartbeat's timing
// scaled down to what a LAN pair can afford.
const (
	defaultPriority  = 100
	defaultKeepalive = 100 * time.Millisecond
	defaultDeadtime  = 500 * time.Millisecond
	defaultInitdead  = 5 * time.Second
	// defaultHookTimeout bounds notify and fence: an IPMI power-off
	// can take seconds, a hung one must not hold a takeover forever.
	defaultHookTimeout = 10 * time.Second
)

func (d *decoder) failover(n *yaml.Node) *Failover {
	fo := &Failover{
		Priority:    defaultPriority,
		Keepalive:   defaultKeepalive,
		Deadtime:    defaultDeadtime,
		Initdead:    defaultInitdead,
		Port:        DefaultHeartbeatPort,
		HookTimeout: defaultHookTimeout,
	}
	f := d.mapping(n, "failover", "the director pair's settings", failoverKeys)
	if f == nil {
		return fo
	}
	if v := f.value("priority"); v != nil {
		p, _ := d.integer(v, f.sub("priority"), 0, 255)
		fo.Priority = int(p)
	}
	if v := f.value("auto_failback"); v != nil {
		fo.AutoFailback, _ = d.boolean(v, f.sub("auto_failback"))
	}
	d.timing(f, fo)
	if v := f.value("auth_key_file"); v != nil {
		fo.AuthKeyFile, _ = d.text(v, f.sub("auth_key_file"), "the path of the file holding the shared key")
		d.mark(f.sub("auth_key_file"), v)
	} else {
		d.errorf(n, f.sub("auth_key_file"), "missing; the pair authenticates heartbeats with the key in this file")
	}
	if v := f.value("port"); v != nil {
		p, _ := d.integer(v, f.sub("port"), 1, 65535)
		fo.Port = uint16(p)
	}
	if v := f.value("links"); v != nil {
		fo.Links = d.links(v, f.sub("links"))
	} else {
		d.errorf(n, f.sub("links"), "missing; the pair needs at least one heartbeat link")
	}
	if v := f.value("vips"); v != nil {
		fo.VIPs = d.failoverVIPs(v, f.sub("vips"))
	}
	if v := f.value("ping_nodes"); v != nil {
		items, _ := d.items(v, f.sub("ping_nodes"), "addresses")
		for _, it := range items {
			if a, ok := d.addr(it.node, it.key); ok {
				fo.PingNodes = append(fo.PingNodes, a)
			}
		}
	}
	if v := f.value("sync"); v != nil {
		fo.Sync = d.sync(v, f.sub("sync"))
	}
	if v := f.value("notify"); v != nil {
		fo.Notify, _ = d.text(v, f.sub("notify"), "the path of a program to run on role changes")
		d.mark(f.sub("notify"), v)
	}
	if v := f.value("fence"); v != nil {
		fo.Fence, _ = d.text(v, f.sub("fence"), "the path of a program that powers the peer off")
		d.mark(f.sub("fence"), v)
	}
	if v := f.value("hook_timeout"); v != nil {
		if t, ok := d.interval(v, f.sub("hook_timeout")); ok {
			fo.HookTimeout = t
		}
	}
	return fo
}

// timing reads keepalive, deadtime and initdead, which only make sense in
// that order. A violation is reported at whichever of the pair was written,
// since the user may have relied on the default for the other.
func (d *decoder) timing(f *fields, fo *Failover) {
	ka, dt, id := f.value("keepalive"), f.value("deadtime"), f.value("initdead")
	ok := true
	read := func(n *yaml.Node, name string, dst *time.Duration) {
		if n == nil {
			return
		}
		v, good := d.interval(n, f.sub(name))
		if good {
			*dst = v
		}
		ok = ok && good
	}
	read(ka, "keepalive", &fo.Keepalive)
	read(dt, "deadtime", &fo.Deadtime)
	read(id, "initdead", &fo.Initdead)
	if !ok {
		return
	}
	if fo.Deadtime <= fo.Keepalive {
		if dt != nil {
			d.errorf(dt, f.sub("deadtime"), "must be longer than keepalive (%s), got %s", fo.Keepalive, describe(dt))
		} else {
			d.errorf(ka, f.sub("keepalive"), "must be shorter than deadtime (%s, the default), got %s", fo.Deadtime, describe(ka))
		}
		return
	}
	if fo.Initdead < fo.Deadtime {
		if id != nil {
			d.errorf(id, f.sub("initdead"), "must be at least deadtime (%s), got %s", fo.Deadtime, describe(id))
		} else {
			d.errorf(dt, f.sub("deadtime"), "must be at most initdead (%s, the default), got %s", fo.Initdead, describe(dt))
		}
	}
}

func (d *decoder) links(n *yaml.Node, path string) []Link {
	entries, ok := d.list(n, path, "links (each with interface and peer or multicast)")
	if !ok {
		return nil
	}
	if len(entries) == 0 {
		d.errorf(n, path, "must list at least one heartbeat link")
		return nil
	}
	var out []Link
	for i, e := range entries {
		lp := index(path, i)
		f := d.mapping(e, lp, "a link: interface and peer or multicast", linkKeys)
		if f == nil {
			continue
		}
		var l Link
		if v := f.value("serial"); v != nil {
			l.Serial, _ = d.text(v, f.sub("serial"), "the path of a serial device such as /dev/ttyS1")
			d.mark(f.sub("serial"), v)
			for _, k := range []string{"interface", "peer", "multicast"} {
				if f.value(k) != nil {
					d.errorf(f.key(k), f.sub(k), "a serial link has no %s", k)
				}
			}
			out = append(out, l)
			continue
		}
		if v := f.value("interface"); v != nil {
			l.Interface, _ = d.ifname(v, f.sub("interface"))
			d.mark(f.sub("interface"), v)
		} else {
			d.errorf(e, f.sub("interface"), "missing; a link needs the interface it runs on")
		}
		peer, mcast := f.value("peer"), f.value("multicast")
		switch {
		case peer != nil && mcast != nil:
			d.errorf(f.key("multicast"), f.sub("multicast"), "a link has peer or multicast, not both")
		case peer != nil:
			l.Peer, _ = d.addr(peer, f.sub("peer"))
		case mcast != nil:
			l.Multicast, _ = d.multicast(mcast, f.sub("multicast"))
		default:
			d.errorf(e, f.sub("peer"), "missing; a link needs peer (unicast), multicast (a group address) or serial (a device)")
		}
		out = append(out, l)
	}
	return out
}

func (d *decoder) multicast(n *yaml.Node, key string) (netip.Addr, bool) {
	s, ok := d.scalar(n, key, "a multicast group address such as 239.192.0.18")
	if !ok {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(s)
	if err != nil || !a.IsMulticast() || a.Zone() != "" {
		d.errorf(n, key, "must be a multicast group address such as 239.192.0.18 or ff02::12, got %s", describe(n))
		return netip.Addr{}, false
	}
	return a, true
}

func (d *decoder) failoverVIPs(n *yaml.Node, path string) []VIP {
	entries, ok := d.list(n, path, "VIPs (each with address and interface)")
	if !ok {
		return nil
	}
	first := map[netip.Addr]*yaml.Node{}
	var out []VIP
	for i, e := range entries {
		vp := index(path, i)
		f := d.mapping(e, vp, "a VIP: address and interface", vipKeys)
		if f == nil {
			continue
		}
		var vip VIP
		if v := f.value("address"); v == nil {
			d.errorf(e, f.sub("address"), "missing; an address with its prefix length, such as 192.0.2.10/24")
		} else if p, ok := d.prefix(v, f.sub("address")); ok {
			vip.Address = p
			if prev, dup := first[p.Addr()]; dup {
				d.errorf(v, f.sub("address"), "duplicate VIP %s (first at %s)", p.Addr(), at(prev))
			} else {
				first[p.Addr()] = v
				d.foVIPs = append(d.foVIPs, placed{p.Addr(), v, f.sub("address")})
			}
		}
		if v := f.value("interface"); v != nil {
			vip.Interface, _ = d.ifname(v, f.sub("interface"))
			d.mark(f.sub("interface"), v)
		} else {
			d.errorf(e, f.sub("interface"), "missing; the interface the VIP is added to")
		}
		out = append(out, vip)
	}
	return out
}

func (d *decoder) sync(n *yaml.Node, path string) *Sync {
	s := &Sync{}
	f := d.mapping(n, path, "connection sync: interface and sync_id", syncKeys)
	if f == nil {
		return s
	}
	if v := f.value("interface"); v != nil {
		s.Interface, _ = d.ifname(v, f.sub("interface"))
		d.mark(f.sub("interface"), v)
	} else {
		d.errorf(n, f.sub("interface"), "missing; the interface the sync daemon uses")
	}
	if v := f.value("sync_id"); v != nil {
		id, _ := d.integer(v, f.sub("sync_id"), 0, 255)
		s.SyncID = uint8(id)
	}
	return s
}
