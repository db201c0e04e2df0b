package ldirectord

import (
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
)

// service is one director service, its values already written as YAML.
type service struct {
	line    int
	comment string
	name    string
	fields  []kv // name .. on_failure, in the order written
	sorry   string
	check   []kv
	reals   []string // flow mappings
}

// buildService maps a virtual and its real servers to a director service.
func (im *conv) buildService(vs *vsrv, reals []real, g globals) *service {
	s := &service{line: vs.line, comment: vs.comment}
	s.name = im.uniqueName(vs)
	f := []kv{{"name", s.name}}
	if vs.fwmark != 0 {
		f = append(f, kv{"fwmark", strconv.FormatInt(vs.fwmark, 10)})
		if vs.v6 {
			f = append(f, kv{"family", "ipv6"})
		}
	} else {
		f = append(f, kv{"vip", yamlStr(vs.addr.String())}, kv{"port", strconv.Itoa(vs.port)}, kv{"protocol", vs.protocol})
	}
	f = append(f, kv{"scheduler", yamlStr(vs.scheduler)}) // ldirectord's default is wrr, director's wlc: always written
	if vs.ops {
		if vs.protocol == "udp" || vs.fwmark != 0 {
			f = append(f, kv{"one_packet", "true"})
		} else {
			im.report(vs.set["ops"], "ops", "one-packet scheduling is for UDP services (ldirectord ignores it here); not carried over")
		}
	}
	if vs.persistent > 0 {
		f = append(f, kv{"persistence", secs(min(vs.persistent, 31*86400))})
		if vs.netmask != "" {
			f = append(f, kv{"persistence_netmask", yamlStr(vs.netmask)})
		}
	} else if vs.netmask != "" {
		im.report(vs.set["netmask"], "netmask", "ldirectord uses netmask only with persistent; not carried over")
	}
	fwd := "nat"
	if len(reals) > 0 {
		fwd = reals[0].fwd
	} else if fb := im.fallbackOf(vs, g); fb != nil {
		fwd = fb.fwd
	}
	f = append(f, kv{"forward", fwd})
	q := vs.quiescent
	if q == "" {
		q = g.quiescent
	}
	if q == "no" { // ldirectord's default (set_defaults: $QUIESCENT = "no") removes a failed server
		f = append(f, kv{"on_failure", "remove"})
	}
	s.fields = f
	if fb := im.fallbackOf(vs, g); fb != nil {
		s.sorry = yamlStr(hostPort(fb.addr, fb.port, vs.fwmark != 0 || fwd != "nat"))
		if fb.fwd != fwd {
			im.report(fb.line, "fallback", "forward "+fb.fwd+" differs from the service's "+fwd+": director's sorry_server uses the service's")
		}
	}
	s.check = im.checkOf(vs, reals, g)
	seen := map[string]int{}
	for _, r := range reals {
		noPort := r.fwd != "nat" || vs.fwmark != 0
		if noPort && r.port != 0 && r.port != vs.port && vs.fwmark == 0 {
			im.report(r.line, "real", "port "+strconv.Itoa(r.port)+" on a "+r.fwd+" real server: the kernel keeps the service's port "+strconv.Itoa(vs.port)+"; carried over without it")
		}
		addr := hostPort(r.addr, r.port, noPort)
		if l, dup := seen[addr]; dup {
			im.report(r.line, "real", "the same real server as line "+strconv.Itoa(l)+": carried over once")
			continue
		}
		seen[addr] = r.line
		m := "{address: " + yamlStr(addr)
		if r.weight != 1 {
			m += ", weight: " + strconv.Itoa(r.weight)
		}
		if r.fwd != fwd {
			m += ", forward: " + r.fwd
		}
		if r.upper > 0 {
			m += ", upper_threshold: " + strconv.FormatInt(r.upper, 10)
		}
		if r.lower > 0 {
			if r.upper > 0 && r.lower > r.upper {
				im.report(r.line, "real", "lower threshold "+strconv.FormatInt(r.lower, 10)+" is above the upper "+strconv.FormatInt(r.upper, 10)+" (the kernel never takes the server back); not carried over")
			} else {
				m += ", lower_threshold: " + strconv.FormatInt(r.lower, 10)
			}
		}
		s.reals = append(s.reals, m+"}")
	}
	return s
}

type fallback struct {
	line int
	addr netip.Addr
	port int
	fwd  string
}

var fallbackRe = regexp.MustCompile(`^(\S+?)(?::(\d+|[A-Za-z0-9_-]+))?(?:\s+(\S+))?\s*$`)

// fallbackOf is the virtual's fallback, or the global one of its family
// (parse_fallback: forward gate unless written). nil: none, or reported.
func (im *conv) fallbackOf(vs *vsrv, g globals) *fallback {
	d := vs.fallback
	if d == nil {
		if vs.fwmark != 0 {
			return nil // ldirectord keeps its global fallbacks for tcp and udp services
		}
		d = g.fallback
		if vs.v6 {
			d = g.fallback6
		}
	}
	if d == nil {
		return nil
	}
	if fb, ok := im.fallbackCache[d]; ok {
		return fb
	}
	im.fallbackCache[d] = nil
	m := fallbackRe.FindStringSubmatch(d.Val)
	if m == nil {
		im.report(d.Line, d.Key, "not ADDRESS[:PORT] [gate|masq|ipip]; not carried over")
		return nil
	}
	a, err := netip.ParseAddr(strings.Trim(m[1], "[]"))
	if err != nil {
		im.report(d.Line, d.Key, "address "+quoteMsg(m[1])+" is not an IP address: write the address; not carried over")
		return nil
	}
	fb := &fallback{line: d.Line, addr: a.Unmap(), fwd: "dr"}
	if m[2] != "" {
		p, ok := portOf(m[2])
		if !ok || p == 0 {
			im.report(d.Line, d.Key, "port "+quoteMsg(m[2])+" is not a number or a known service name; not carried over")
			return nil
		}
		fb.port = p
	}
	if m[3] != "" {
		if forwards[m[3]] == "" {
			im.report(d.Line, d.Key, "forward method must be gate, masq or ipip; not carried over")
			return nil
		}
		fb.fwd = forwards[m[3]]
	}
	im.fallbackCache[d] = fb
	return fb
}

// hostPort writes an address with its port (none when port is 0 or the
// server is one whose port the kernel ignores).
func hostPort(a netip.Addr, port int, noPort bool) string {
	if port == 0 || noPort {
		return a.String()
	}
	return netip.AddrPortFrom(a, uint16(port)).String()
}

var nameRe = regexp.MustCompile(`[^a-z0-9_.-]+`)

// uniqueName is the service's name: its servicename made to director's
// rules, else its address, port and protocol; unique in the file.
func (im *conv) uniqueName(vs *vsrv) string {
	base := strings.Trim(nameRe.ReplaceAllString(strings.ToLower(vs.name), "-"), "-")
	if base == "" {
		switch {
		case vs.fwmark != 0:
			base = "fwmark-" + strconv.FormatInt(vs.fwmark, 10)
		default:
			base = strings.ReplaceAll(vs.addr.String(), ":", ".") + "-" + strconv.Itoa(vs.port)
			if vs.protocol != "tcp" {
				base += "-" + vs.protocol
			}
		}
	}
	if len(base) > 56 {
		base = base[:56]
	}
	name := base
	for i := 2; im.names[name]; i++ {
		name = fmt.Sprintf("%s-%d", base, i)
	}
	im.names[name] = true
	return name
}

// render writes the service as an entry of services:.
func (s *service) render(file string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "  # from %s:%d\n", yamlComment(file), s.line)
	if s.comment != "" {
		fmt.Fprintf(&b, "  # %s\n", yamlComment(s.comment))
	}
	for i, f := range s.fields {
		lead := "    "
		if i == 0 {
			lead = "  - "
		}
		fmt.Fprintf(&b, "%s%s: %s\n", lead, f.k, f.v)
	}
	if s.sorry != "" {
		fmt.Fprintf(&b, "    sorry_server: %s\n", s.sorry)
	}
	b.WriteString("    check:\n")
	for _, c := range s.check {
		fmt.Fprintf(&b, "      %s: %s\n", c.k, c.v)
	}
	if len(s.reals) == 0 {
		b.WriteString("    real_servers: []\n")
	} else {
		b.WriteString("    real_servers:\n")
		for _, r := range s.reals {
			fmt.Fprintf(&b, "      - %s\n", r)
		}
	}
	return b.String()
}

// yamlStr writes s as a YAML double-quoted scalar: Go's escapes are YAML's.
func yamlStr(s string) string {
	return strconv.Quote(strings.ToValidUTF8(s, "\uFFFD"))
}

// yamlComment makes s safe on one comment line.
func yamlComment(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

func flowList(items []string) string {
	q := make([]string, len(items))
	for i, it := range items {
		q[i] = yamlStr(it)
	}
	return "[" + strings.Join(q, ", ") + "]"
}
