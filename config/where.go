package config

import (
	"fmt"
	"net/netip"

	"gopkg.in/yaml.v3"
)

// mark records where the value of key was written, for the checks that
// need the host (package preflight: files, programs, interfaces) to point
// at the line that names what they found wrong. Only keys naming such
// things are marked, so the record stays small whatever the file.
func (d *decoder) mark(key string, n *yaml.Node) {
	if d.where == nil {
		d.where = map[string]Pos{}
	}
	d.where[key] = d.pos(n)
}

// Where is the position of the value of key, a path as messages print it
// ("failover.auth_key_file", "services[2].check.ca_file"), if the file
// wrote it. Kept for the keys that name something on the host: control
// .socket; in failover, auth_key_file, notify, fence, links[i].interface
// and .serial, vips[i].interface, sync.interface; in bgp, the block's
// own key ("bgp", where the key is written), vip_interface,
// peers[i].password_file, sync.interface, group.links[i].interface and
// group.auth_key_file; in a check, ca_file, password_file and command.
func (c *Config) Where(key string) (Pos, bool) {
	p, ok := c.where[key]
	return p, ok
}

// CheckKey is where a field of service i's check (a key such as
// "ca_file") was written: in the service's own check, or else in
// defaults.check, which it inherits. ok is false when neither wrote it.
func (c *Config) CheckKey(i int, field string) (key string, pos Pos, ok bool) {
	key = fmt.Sprintf("services[%d].check.%s", i, field)
	if pos, ok = c.Where(key); ok {
		return key, pos, true
	}
	key = "defaults.check." + field
	pos, ok = c.Where(key)
	return key, pos, ok
}

// placed is an address and where it was written, for cross-checks.
type placed struct {
	addr netip.Addr
	node *yaml.Node
	key  string
}

// vipCoverage warns where the services and the failover block disagree
// about VIPs. With a pair, a VIP is on a director only if failover.vips
// holds it: a service's VIP that no entry holds gets no traffic unless
// something else (a route, a loopback address) brings it, and a failover
// VIP that no service uses is moved between the directors for nothing.
// The second is not said when a fwmark service exists: the mark may be
// set on packets to any address.
func (d *decoder) vipCoverage(c *Config) {
	if c.Failover == nil {
		return
	}
	held := map[netip.Addr]bool{}
	for _, v := range d.foVIPs {
		held[v.addr] = true
	}
	used, fwmark := map[netip.Addr]bool{}, false
	for _, s := range c.Services {
		fwmark = fwmark || s.FWMark != 0
	}
	for _, v := range d.svcVIPs {
		if used[v.addr] {
			continue // said once, at the first service with this VIP
		}
		used[v.addr] = true
		if !held[v.addr] {
			d.warnf(v.node, v.key, "%s is in no failover.vips entry, so neither director adds it; add it there unless something else brings it to the active director", v.addr)
		}
	}
	if fwmark {
		return
	}
	for _, v := range d.foVIPs {
		if !used[v.addr] {
			d.warnf(v.node, v.key, "no service has vip %s; the pair moves it between the directors for nothing", v.addr)
		}
	}
}

// timeoutWarning warns about a check whose timeout is not shorter than
// its interval: the engine starts the next probe at once after one that
// ran out its timeout, so the server is probed back to back and the
// interval is not kept. It is said at the check that made it so: where
// this check wrote timeout or interval, or, for a check that only
// changed its type from none, at type; never again for every service
// that inherits it unchanged.
func (d *decoder) timeoutWarning(f *fields, c, base Check) {
	bad := func(c Check) bool { return c.Type != CheckNone && c.Timeout >= c.Interval }
	if !bad(c) {
		return
	}
	name := ""
	switch {
	case f.value("timeout") != nil:
		name = "timeout"
	case f.value("interval") != nil:
		name = "interval"
	case !bad(base) && f.value("type") != nil:
		name = "type"
	default:
		return
	}
	d.warnf(f.value(name), f.sub(name), "timeout %s is not shorter than interval %s; a probe that times out is followed at once by the next, so the interval is not kept",
		c.Timeout, c.Interval)
}
