package keepalived

import (
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
)

// kv is one key of the YAML, its value already written as YAML.
type kv struct{ k, v string }

// service is one director service made from a virtual_server.
type service struct {
	src   *node
	name  string
	head  []kv
	check []kv
	reals []*realSrv
}

type realSrv struct {
	src    *node
	host   string // the address alone
	addr   string
	weight int
	kvs    []kv
}

// vsCtx is what a virtual_server's statements set, read by its real
// servers and checkers.
type vsCtx struct {
	port       int
	fwmark     bool
	forward    string
	vhost      string
	alpha      bool
	delayLoop  float64
	inherit    map[string]*node // connect_timeout, retry, delay_before_retry at the VS level
	onFailure  string
	sorry      string
	sorrySrc   *node
	sorryAddr  string
	sorryPort  int
	scheduler  string
	flagNodes  []*node
	persist    string
	netmask    string
	protocol   string
	onePacket  bool
	tunnel     []kv
	dynWeights bool
}

var schedulers = map[string]bool{"rr": true, "wrr": true, "lc": true, "wlc": true, "lblc": true, "lblcr": true,
	"dh": true, "sh": true, "sed": true, "nq": true, "fo": true, "ovf": true, "mh": true, "twos": true}

// dpvs are keywords of the DPVS fork of keepalived.
var dpvs = map[string]bool{"laddr_group_name": true, "daddr_group_name": true, "syn_proxy": true,
	"establish_timeout": true, "blklst_group_name": true, "whtlst_group_name": true, "proxy_protocol": true,
	"expire_quiescent_conn": true, "quic": true, "tunnel_group_name": true, "dpdk_interface": true}

var nameBad = regexp.MustCompile(`[^a-z0-9_.-]+`)

// serviceName is a unique director name for a virtual server.
func (im *importRun) serviceName(parts ...string) string {
	base := nameBad.ReplaceAllString(strings.ToLower(strings.Join(parts, "-")), "-")
	base = strings.Trim(base, "-")
	if len(base) > 56 {
		base = base[:56]
	}
	if base == "" {
		base = "service"
	}
	name := base
	for i := 2; im.names[name]; i++ {
		name = fmt.Sprintf("%s-%d", base, i)
	}
	im.names[name] = true
	return name
}

// hostPort writes an address with a port as the director does.
func hostPort(addr string, port int) string {
	if port == 0 {
		return addr
	}
	if strings.Contains(addr, ":") {
		return fmt.Sprintf("[%s]:%d", addr, port)
	}
	return fmt.Sprintf("%s:%d", addr, port)
}

// virtualServer maps one virtual_server block.
func (im *importRun) virtualServer(n *node, groups []*node) {
	s := &service{src: n}
	c := &vsCtx{delayLoop: 60, inherit: map[string]*node{}, onFailure: "remove"}
	var ident []kv
	switch {
	case n.arg(0) == "fwmark":
		mark, err := strconv.ParseUint(n.arg(1), 0, 32)
		if err != nil || mark == 0 {
			im.reportN(n, "fwmark %q is not a mark 1-4294967295; virtual server left out", n.arg(1))
			return
		}
		ident = append(ident, kv{"fwmark", strconv.FormatUint(mark, 10)})
		c.fwmark = true
		s.name = im.serviceName("fwmark", n.arg(1))
		im.extraArgs(n, 2)
	case n.arg(0) == "group":
		var ok bool
		if ident, c.port, c.fwmark, ok = im.groupIdent(n, groups); !ok {
			return
		}
		s.name = im.serviceName("group", n.arg(1))
		im.extraArgs(n, 2)
	default:
		addr, err := netip.ParseAddr(n.arg(0))
		port, perr := strconv.Atoi(n.arg(1))
		if n.arg(1) == "" {
			// no port: every port, as ipvsadm -p without one
			port, perr = 0, nil
		}
		vip := n.arg(0)
		if err == nil {
			vip = addr.String()
		}
		if perr != nil || port < 0 || port > 65535 {
			im.reportN(n, "%q is not a port; virtual server left out", n.arg(1))
			return
		}
		ident = append(ident, kv{"vip", q(vip)}, kv{"port", strconv.Itoa(port)})
		c.port = port
		s.name = im.serviceName(vip, n.arg(1))
		im.extraArgs(n, 2)
	}
	var reals []*node
	for _, k := range n.kids {
		im.vsKeyword(k, c, &reals)
	}
	if c.forward == "" {
		c.forward = "nat"
	}
	s.head = append(s.head, kv{"name", q(s.name)})
	s.head = append(s.head, ident...)
	if !c.fwmark {
		if c.protocol == "" {
			// keepalived 2.2.7 (check_data.c) logs "no protocol set -
			// defaulting to UDP" and builds a UDP service; older releases
			// built TCP. The import builds what keepalived builds.
			c.protocol = "udp"
			im.reportN(n, "no protocol: keepalived 2.2.7 makes a UDP service (older releases made TCP); imported as protocol: udp, write protocol: tcp if TCP was meant")
		}
		s.head = append(s.head, kv{"protocol", c.protocol})
	}
	if c.scheduler != "" {
		s.head = append(s.head, kv{"scheduler", c.scheduler})
	}
	if flags := im.flags(c); len(flags) > 0 {
		s.head = append(s.head, kv{"scheduler_flags", "[" + strings.Join(flags, ", ") + "]"})
	}
	if c.onePacket {
		s.head = append(s.head, kv{"one_packet", "true"})
	}
	if c.persist == "" && c.netmask != "" {
		// keepalived makes the service persistent at its default timeout
		// when only the granularity is written.
		c.persist = "360s"
		im.reportN(n, "persistence_granularity without persistence_timeout: keepalived makes the service persistent for its default 360 s; carried over as persistence: 360s")
	}
	if c.persist != "" {
		s.head = append(s.head, kv{"persistence", c.persist})
		if c.netmask != "" {
			s.head = append(s.head, kv{"persistence_netmask", q(c.netmask)})
		}
	}
	s.head = append(s.head, kv{"forward", c.forward})
	if c.forward == "tun" && len(c.tunnel) > 0 {
		s.head = append(s.head, kv{"tunnel", flow(c.tunnel)})
	}
	var checkSrc *realSrv
	for _, rn := range reals {
		rs, check := im.realServer(rn, c)
		if rs == nil {
			continue
		}
		s.reals = append(s.reals, rs)
		switch {
		case check == nil:
		case s.check == nil:
			s.check, checkSrc = check, rs
		case flow(check) != flow(s.check):
			im.reportN(rn, "its checker differs from the one of the real server at %s:%d; director has one check per service: that one is used for every real server (split the service, or use an exec check that tells them apart)", checkSrc.src.file, checkSrc.src.line)
		}
	}
	im.familyFit(s, c)
	if s.check == nil {
		s.check = []kv{{"type", "none"}}
	} else {
		for _, rs := range s.reals {
			if rs.src.kids == nil || !hasChecker(rs.src) {
				im.reportN(rs.src, "no checker here (keepalived: always up), but director checks every real server of a service with the service's check")
			}
		}
	}
	if c.dynWeights {
		for _, rs := range s.reals {
			if rs.weight != 100 {
				im.reportN(rs.src, "weight %d written as 100: with misc_dynamic, director's weight_from_exit then sets exactly exit-2 as keepalived does", rs.weight)
				rs.weight = 100
			}
		}
	}
	s.head = append(s.head, kv{"on_failure", c.onFailure})
	if c.sorry != "" {
		if (c.fwmark || c.port == 0) && c.forward != "nat" && c.sorryPort != 0 {
			im.reportN(c.sorrySrc, "port %d left out: a %s sorry server of a fwmark or every-port service takes the client's port", c.sorryPort, c.forward)
			c.sorry = c.sorryAddr
		}
		s.head = append(s.head, kv{"sorry_server", q(c.sorry)})
	}
	im.services = append(im.services, s)
}

// extraArgs reports words after what a keyword takes.
func (im *importRun) extraArgs(n *node, want int) {
	if len(n.args) > want {
		im.reportN(n, "extra words %q ignored (keepalived ignores them too, or they belong to a fork)", strings.Join(n.args[want:], " "))
	}
}

// vsKeyword maps one statement of a virtual_server.
func (im *importRun) vsKeyword(k *node, c *vsCtx, reals *[]*node) {
	switch k.kw {
	case "real_server":
		*reals = append(*reals, k)
	case "delay_loop":
		if v, err := strconv.ParseFloat(k.arg(0), 64); err == nil && v > 0 {
			c.delayLoop = v
		} else {
			im.reportN(k, "%q is not a positive number of seconds; keepalived's default 60s is used", k.arg(0))
		}
	case "lb_algo", "lvs_sched":
		if schedulers[k.arg(0)] {
			c.scheduler = k.arg(0)
		} else {
			im.reportN(k, "scheduler %q is not one of the kernel's; left out (director's default wlc)", k.arg(0))
		}
	case "lb_kind", "lvs_method":
		c.forward, c.tunnel = im.method(k)
	case "persistence_timeout":
		secs := "360"
		if len(k.args) > 0 {
			secs = k.arg(0)
		}
		if v, err := strconv.ParseUint(secs, 10, 32); err == nil {
			if v > 0 {
				c.persist = fmt.Sprintf("%ds", v)
			}
		} else {
			im.reportN(k, "%q is not whole seconds; persistence left out", secs)
		}
	case "persistence_granularity":
		c.netmask = k.arg(0)
	case "protocol":
		switch p := strings.ToLower(k.arg(0)); p {
		case "tcp", "udp", "sctp":
			c.protocol = p
		default:
			im.reportN(k, "protocol %q is not tcp, udp or sctp; left to keepalived's default", k.arg(0))
		}
	case "ops":
		c.onePacket = true
	case "sh-port", "sh-fallback", "mh-port", "mh-fallback", "flag-1", "flag-2", "flag-3":
		c.flagNodes = append(c.flagNodes, k)
	case "sorry_server":
		addr, err := netip.ParseAddr(k.arg(0))
		port, _ := strconv.Atoi(k.arg(1))
		if err != nil {
			im.reportN(k, "%q is not an address; sorry server left out", k.arg(0))
			return
		}
		c.sorry, c.sorrySrc = hostPort(addr.String(), port), k
		c.sorryAddr, c.sorryPort = addr.String(), port
	case "sorry_server_lvs_method":
		if f, _ := im.method(k); f != c.forward && c.forward != "" {
			im.reportN(k, "director's sorry server uses the service's forward (%s); its own method is not carried over", c.forward)
		}
	case "sorry_server_inhibit":
		im.reportN(k, "no equivalent: director's sorry server is in the table only while no real server is healthy")
	case "inhibit_on_failure":
		c.onFailure = "quiesce"
	case "virtualhost":
		c.vhost = k.arg(0)
	case "alpha":
		c.alpha = k.arg(0) == "" || k.arg(0) == "on" || k.arg(0) == "true" || k.arg(0) == "1"
	case "connect_timeout", "retry", "nb_get_retry", "delay_before_retry", "warmup", "connect_port", "bindto", "bind_port":
		c.inherit[canon(k.kw)] = k
	case "omega", "quorum", "quorum_up", "quorum_down", "hysteresis":
		im.reportN(k, "no equivalent: director has no quorum (announce.min_healthy is only for bgp); not carried over")
	case "smtp_alert":
		im.reportN(k, "no equivalent: director sends no e-mail alerts")
	case "hashed", "persistence_engine", "ha_suspend", "lvs_timeouts", "nat_mask", "lb_timeout":
		im.reportN(k, "no director equivalent; ignored")
	default:
		if dpvs[k.kw] {
			im.reportN(k, "a DPVS (keepalived fork) keyword; the kernel's IPVS has no such feature: not carried over")
			return
		}
		if topLevel[k.kw] {
			im.reportN(k, "a top-level keyword inside a virtual_server: a closing brace is missing before it (keepalived reads it as nested too); ignored")
			return
		}
		im.reportN(k, "unknown keyword in virtual_server; ignored (a typo?)")
	}
}

// canon is the current name of a legacy keyword.
func canon(kw string) string {
	if kw == "nb_get_retry" {
		return "retry"
	}
	return kw
}

// method maps lb_kind/lvs_method with its tunnel options.
func (im *importRun) method(k *node) (string, []kv) {
	var tunnel []kv
	for i := 1; i < len(k.args); i++ {
		switch a := strings.ToLower(k.args[i]); a {
		case "type":
			tunnel = append(tunnel, kv{"type", strings.ToLower(k.arg(i + 1))})
			i++
		case "port":
			tunnel = append(tunnel, kv{"port", k.arg(i + 1)})
			i++
		case "nocsum", "csum", "remcsum":
			tunnel = append(tunnel, kv{"checksum", a})
		default:
			im.reportN(k, "tunnel option %q unknown; ignored", k.args[i])
		}
	}
	switch m := strings.ToUpper(k.arg(0)); m {
	case "NAT":
		return "nat", nil
	case "DR":
		return "dr", nil
	case "TUN":
		return "tun", tunnel
	case "FNAT":
		im.reportN(k, "FNAT (full NAT) is a DPVS fork's method the kernel does not have; written as nat: the real servers must route their replies through the director")
		return "nat", nil
	default:
		im.reportN(k, "method %q is not NAT, DR or TUN; nat used", k.arg(0))
		return "nat", nil
	}
}

// flags maps the scheduler flags; flag-1 and flag-2 mean sh's or mh's by
// the scheduler, as in the kernel.
func (im *importRun) flags(c *vsCtx) []string {
	var out []string
	for _, k := range c.flagNodes {
		f := k.kw
		switch f {
		case "flag-1", "flag-2":
			suffix := map[string]string{"flag-1": "-fallback", "flag-2": "-port"}[f]
			if c.scheduler != "sh" && c.scheduler != "mh" {
				im.reportN(k, "no effect with scheduler %q; left out", c.scheduler)
				continue
			}
			f = c.scheduler + suffix
		case "flag-3":
			im.reportN(k, "flag-3 has no meaning for the kernel's schedulers; left out")
			continue
		}
		if !strings.HasPrefix(f, c.scheduler+"-") {
			im.reportN(k, "a flag of another scheduler than %q; left out", c.scheduler)
			continue
		}
		if !contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// groupIdent maps `virtual_server group NAME` to vips, or a fwmark.
func (im *importRun) groupIdent(n *node, groups []*node) ([]kv, int, bool, bool) {
	var g *node
	for _, x := range groups {
		if x.arg(0) == n.arg(1) {
			g = x
		}
	}
	if g == nil {
		im.reportN(n, "virtual_server_group %q is not defined; virtual server left out", n.arg(1))
		return nil, 0, false, false
	}
	var vips []string
	var marks []string
	port := -1
	for _, e := range g.kids {
		if e.kw == "fwmark" {
			marks = append(marks, e.arg(0))
			continue
		}
		addrs := expandRange(e.kw)
		if addrs == nil {
			im.reportN(e, "%q is not an address or an address range; left out of the group", e.kw)
			continue
		}
		p, err := strconv.Atoi(e.arg(0))
		if err != nil {
			p = 0
		}
		if port >= 0 && p != port {
			im.reportN(e, "port %d differs from the group's first (%d); director's vips share one port: left out (write a service of its own)", p, port)
			continue
		}
		port = p
		vips = append(vips, addrs...)
	}
	switch {
	case len(vips) > 0:
		for _, m := range marks {
			im.reportN(g, "fwmark %s of the group is left out: director's vips are addresses; write a fwmark service of its own", m)
		}
		return []kv{{"vips", vipList(vips)}, {"port", strconv.Itoa(port)}}, port, false, true
	case len(marks) > 0:
		for _, m := range marks[1:] {
			im.reportN(g, "fwmark %s of the group is left out: a director service has one mark; write a service of its own", m)
		}
		return []kv{{"fwmark", marks[0]}}, 0, true, true
	}
	im.reportN(g, "the group has no usable entry; virtual server left out")
	return nil, 0, false, false
}

func vipList(vips []string) string {
	list := make([]string, len(vips))
	for i, v := range vips {
		list[i] = q(v)
	}
	return "[" + strings.Join(list, ", ") + "]"
}

// familyFit leaves out the VIPs of a family no real server has: keepalived
// skips them in the kernel too (a VIP's service takes the real servers of
// its own family), and the director refuses them.
func (im *importRun) familyFit(s *service, c *vsCtx) {
	for i, p := range s.head {
		if p.k != "vips" {
			continue
		}
		has := map[bool]bool{}
		for _, r := range s.reals {
			if a, err := netip.ParseAddr(r.host); err == nil {
				has[a.Is4()] = true
			}
		}
		if has[true] && has[false] && c.forward == "tun" {
			im.reportN(s.src, "real servers of both families behind a group: each VIP's kernel service takes the real servers of its own family only, where keepalived also tunnels to the other family's")
		}
		var kept, dropped []string
		for _, v := range strings.Split(strings.Trim(p.v, "[]"), ", ") {
			v = strings.Trim(v, `"`)
			if a, err := netip.ParseAddr(v); err == nil && len(s.reals) > 0 && !has[a.Is4()] {
				dropped = append(dropped, v)
				continue
			}
			kept = append(kept, v)
		}
		if len(kept) == 0 {
			return // the director's own refusal says it better
		}
		for _, v := range dropped {
			im.reportN(s.src, "VIP %s left out of vips: no real server of its family (list a dual-stack real server once per address)", v)
		}
		s.head[i].v = vipList(kept)
	}
}

// expandRange is an address or keepalived's range A.B.C.D-E (the last
// part of the address ranging to E); nil if neither.
func expandRange(s string) []string {
	base, end, isRange := strings.Cut(s, "-")
	a, err := netip.ParseAddr(base)
	if err != nil {
		return nil
	}
	if !isRange {
		return []string{a.String()}
	}
	last, err := strconv.ParseUint(end, 16, 16)
	if a.Is4() {
		last, err = strconv.ParseUint(end, 10, 8)
	}
	if err != nil {
		return nil
	}
	var out []string
	for x := a; len(out) < 64; x = x.Next() {
		out = append(out, x.String())
		b := x.AsSlice()
		cur := uint64(b[len(b)-1])
		if !a.Is4() {
			cur = uint64(b[len(b)-2])<<8 | cur
		}
		if cur >= last || !x.Next().IsValid() {
			break
		}
	}
	return out
}
