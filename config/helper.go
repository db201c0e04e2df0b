package config

import (
	"net/netip"
	"path/filepath"

	"gopkg.in/yaml.v3"
)

var helperKeys = []string{"mode", "vips", "interface", "state"}

// RealServerHost is the realserver helper's file: how one real server is
// prepared for direct routing or tunnelling. The same as the flags of
// `realserver up`, for the systemd unit to read at boot:
//
//	mode: dr                          # dr | tun
//	vips: [192.0.2.10, 2001:db8::10]  # or one address
//	interface: eth0                   # facing the director; default: the default route's
//	state: /run/realserver/state.json # where up records what it changed
type RealServerHost struct {
	Path      string
	Mode      string // "dr" or "tun"
	VIPs      []netip.Addr
	Interface string // "" when the file does not say
	State     string // "" when the file does not say
}

// LoadRealServerHost reads and validates the helper's file at path.
func LoadRealServerHost(path string) (*RealServerHost, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	return ParseRealServerHost(path, data)
}

// ParseRealServerHost is LoadRealServerHost for a file already read.
func ParseRealServerHost(path string, data []byte) (*RealServerHost, error) {
	d := &decoder{file: path}
	root, ok := d.document(data, "a realserver configuration")
	if !ok {
		return nil, d.result()
	}
	h := d.realServerHost(root)
	if err := d.result(); err != nil {
		return nil, err
	}
	h.Path = path
	return h, nil
}

func (d *decoder) realServerHost(root *yaml.Node) *RealServerHost {
	h := &RealServerHost{}
	var n *yaml.Node
	if root != nil && len(root.Content) > 0 {
		n = root.Content[0]
	}
	if isNull(n) {
		d.errorf(root, "document", "the file is empty; it needs mode and vips")
		return h
	}
	f := d.mapping(n, "", "keys such as mode, vips and interface", helperKeys)
	if f == nil {
		return h
	}
	if v := f.value("mode"); v != nil {
		h.Mode, _ = d.enum(v, "mode", []string{"dr", "tun"})
	} else {
		d.errorf(n, "mode", "missing; say dr (direct routing) or tun (tunnelling)")
	}
	if v := f.value("vips"); v != nil {
		h.VIPs = d.helperVIPs(v)
	} else {
		d.errorf(n, "vips", "missing; list the addresses of the services this server answers for")
	}
	if v := f.value("interface"); v != nil {
		h.Interface, _ = d.ifname(v, "interface")
	}
	if v := f.value("state"); v != nil {
		if s, ok := d.text(v, "state", "an absolute path"); ok {
			if !filepath.IsAbs(s) {
				d.errorf(v, "state", "must be an absolute path, got %s", describe(v))
			} else {
				h.State = filepath.Clean(s)
			}
		}
	}
	return h
}

func (d *decoder) helperVIPs(n *yaml.Node) []netip.Addr {
	entries, ok := d.items(n, "vips", "addresses")
	if !ok {
		return nil
	}
	if len(entries) == 0 {
		d.errorf(n, "vips", "must list at least one address")
		return nil
	}
	var out []netip.Addr
	seen := map[netip.Addr]*yaml.Node{}
	for _, e := range entries {
		a, ok := d.addr(e.node, e.key)
		if !ok {
			continue
		}
		if msg := vipProblem(a); msg != "" {
			d.errorf(e.node, e.key, "%s, got %s", msg, describe(e.node))
			continue
		}
		if first, dup := seen[a]; dup {
			d.errorf(e.node, e.key, "%s is listed twice (first at %s)", a, at(first))
			continue
		}
		seen[a] = e.node
		out = append(out, a)
	}
	return out
}

// vipProblem says why a, already a unicast address, cannot be a VIP:
// clients elsewhere cannot reach a loopback or link-local address, and
// the kernel gives both a meaning of its own on lo, a tunnel or the
// interface the director adds a failover VIP to. The same rule holds for
// a service's vip, a failover VIP and a VIP held on a real server.
func vipProblem(a netip.Addr) string {
	switch {
	case a.IsLoopback():
		return "must not be a loopback address"
	case a.IsLinkLocalUnicast():
		return "must not be a link-local address"
	}
	return ""
}

// RealServerVIP checks one VIP given on the helper's command line, with
// the same rules as the file: "" if fine, else what is wrong.
func RealServerVIP(a netip.Addr) string {
	if msg := unicastProblem(a); msg != "" {
		return msg
	}
	return vipProblem(a)
}
