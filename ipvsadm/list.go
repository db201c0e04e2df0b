package ipvsadm

import (
	"bytes"
	"fmt"
	"io"
	"net/netip"
	"strconv"

	"github.com/cloudflare/ipvs"
)

// ListOptions are the listing options of `ipvsadm -L`. When several
// column sets are asked for, ipvsadm shows one, in this order of
// precedence: Stats, Rate, Thresholds, Persistent, TunnelInfo.
type ListOptions struct {
	Numeric    bool // -n: addresses and ports as numbers, no lookups
	Stats      bool // --stats: Conns InPkts OutPkts InBytes OutBytes
	Rate       bool // --rate: CPS InPPS OutPPS InBPS OutBPS
	Exact      bool // --exact: the numbers of --stats and --rate in full, not as K/M/G/T
	Thresholds bool // --thresholds: Uthreshold Lthreshold ActiveConn InActConn
	Persistent bool // --persistent-conn: Weight PersistConn ActiveConn InActConn
	TunnelInfo bool // --tun-info: a TunnelInfo column after Forward
}

// ipvsadm's printing format flags (ipvsadm.c, FMT_*).
type format uint

const (
	fmtNumeric format = 1 << iota
	fmtRule
	fmtStats
	fmtRate
	fmtThresholds
	fmtPersistentConn
	_ // FMT_NOSORT: Read sorts, ReadUnsorted does not
	fmtExact
	fmtTunInfo
)

func (o ListOptions) format() format {
	var f format
	for _, x := range []struct {
		on bool
		f  format
	}{
		{o.Numeric, fmtNumeric}, {o.Stats, fmtStats}, {o.Rate, fmtRate}, {o.Exact, fmtExact},
		{o.Thresholds, fmtThresholds}, {o.Persistent, fmtPersistentConn}, {o.TunnelInfo, fmtTunInfo},
	} {
		if x.on {
			f |= x.f
		}
	}
	return f
}

// WriteList writes t exactly as `ipvsadm -L` prints it with the
// equivalent options (ipvsadm.c: list_all, print_title,
// print_service_entry). Without Numeric, host and service names come
// from r, falling back to numbers where a lookup fails, as ipvsadm
// does; a nil r is a SystemResolver.
func WriteList(w io.Writer, t *Table, o ListOptions, r Resolver) error {
	f := o.format()
	if f&fmtNumeric == 0 && r == nil {
		r = NewSystemResolver()
	}
	return write(w, t, f, r)
}

// WriteSave writes t exactly as `ipvsadm -S -n` (`ipvsadm-save -n`)
// prints it: one -A line per service, each followed by the -a lines of
// its real servers. Real `ipvsadm -R` reads it back into the same table,
// except what ipvsadm itself does not save: thresholds (-x, -y), and
// the Local forwarding method, which is saved as -g.
func WriteSave(w io.Writer, t *Table) error {
	return write(w, t, fmtRule|fmtNumeric, nil)
}

func write(w io.Writer, t *Table, f format, r Resolver) error {
	p := &printer{f: f, names: newNameCache(r)}
	if f&fmtRule == 0 {
		v := t.Info.Version
		fmt.Fprintf(&p.b, "IP Virtual Server version %d.%d.%d (size=%d)\n",
			v[0]&0xff, v[1]&0xff, v[2]&0xff, int32(t.Info.ConnectionTableSize))
	}
	p.title()
	for i := range t.Services {
		p.service(&t.Services[i])
	}
	if _, err := w.Write(p.b.Bytes()); err != nil {
		return fmt.Errorf("write IPVS table: %w", err)
	}
	return nil
}

type printer struct {
	b     bytes.Buffer
	f     format
	names *nameCache
}

func (p *printer) printf(format string, args ...any) { fmt.Fprintf(&p.b, format, args...) }

// title is print_title.
func (p *printer) title() {
	const prot = "Prot LocalAddress:Port"
	switch f := p.f; {
	case f&fmtStats != 0:
		p.printf("%-33s %8s %8s %8s %8s %8s\n  -> RemoteAddress:Port\n", prot, "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes")
	case f&fmtRate != 0:
		p.printf("%-33s %8s %8s %8s %8s %8s\n  -> RemoteAddress:Port\n", prot, "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS")
	case f&fmtThresholds != 0:
		p.printf("%-33s %-10s %-10s %-10s %-10s\n  -> RemoteAddress:Port\n", prot, "Uthreshold", "Lthreshold", "ActiveConn", "InActConn")
	case f&fmtPersistentConn != 0:
		p.printf("%-33s %-9s %-11s %-10s %-10s\n  -> RemoteAddress:Port\n", prot, "Weight", "PersistConn", "ActiveConn", "InActConn")
	case f&fmtTunInfo != 0:
		p.printf("Prot LocalAddress:Port Scheduler Flags\n" +
			"  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n")
	case f&fmtRule == 0:
		p.printf("Prot LocalAddress:Port Scheduler Flags\n" +
			"  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n")
	}
}

// addrPort is addrport_to_anyname.
func (p *printer) addrPort(af ipvs.AddressFamily, a netip.Addr, port uint16, proto ipvs.Protocol) string {
	if p.f&fmtNumeric != 0 {
		return addrPortNumeric(af, a, port)
	}
	return joinHostPort(af, p.names.host(af, a), p.names.port(port, proto))
}

// stats prefers the 64-bit counters, as libipvs does when the kernel
// sends them (every kernel since 4.1); the 32-bit ones are the fallback.
func stats(s64, s32 ipvs.Stats) ipvs.Stats {
	if s64 == (ipvs.Stats{}) {
		return s32
	}
	return s64
}

const schedFlags = ipvs.ServiceSchedulerOpt1 | ipvs.ServiceSchedulerOpt2 | ipvs.ServiceSchedulerOpt3

// service is print_service_entry.
func (p *printer) service(se *Service) {
	s := &se.Service
	var name string
	proto := s.Protocol
	if s.FWMark != 0 {
		// ipvsadm prints the u32 fwmark with %d, and never reads a
		// fwmark service's protocol, so its real servers' ports are
		// never resolved to names.
		proto = 0
		mark := int32(s.FWMark)
		switch {
		case p.f&fmtRule != 0 && s.Family == ipvs.INET6:
			name = fmt.Sprintf("-f %d -6", mark)
		case p.f&fmtRule != 0:
			name = fmt.Sprintf("-f %d", mark)
		case s.Family == ipvs.INET6:
			name = fmt.Sprintf("FWM  %d IPv6", mark)
		default:
			name = fmt.Sprintf("FWM  %d", mark)
		}
	} else {
		vname := p.addrPort(s.Family, s.Address, s.Port, s.Protocol)
		if p.f&fmtRule != 0 {
			name = protocolOption(s.Protocol) + " " + vname
		} else {
			name = fmt.Sprintf("%-4s %s", protocolName(s.Protocol), vname)
			if s.Family != ipvs.INET6 && len(name) > 33 {
				name = name[:33]
			}
		}
	}

	st := stats(se.Stats64, se.Stats)
	switch f := p.f; {
	case f&fmtRule != 0:
		p.printf("-A %s -s %s", name, s.Scheduler)
		if s.Flags&ipvs.ServicePersistent != 0 {
			p.printf(" -p %d", s.Timeout)
			if m, ok := persistenceMask(s); ok {
				p.printf(" -M %s", m)
			}
		}
		if s.Flags&ipvs.ServiceOnePacket != 0 {
			p.printf(" -o")
		}
		if s.Flags&schedFlags != 0 {
			p.printf(" -b %s", schedFlagNames(s))
		}
	case f&fmtStats != 0:
		p.printf("%-33s", name)
		p.largeNums(st.Connections, st.IncomingPackets, st.OutgoingPackets, st.IncomingBytes, st.OutgoingBytes)
	case f&fmtRate != 0:
		p.printf("%-33s", name)
		p.largeNums(st.ConnectionRate, st.IncomingPacketRate, st.OutgoingPacketRate, st.IncomingByteRate, st.OutgoingByteRate)
	default:
		p.printf("%s %s", name, s.Scheduler)
		if s.Flags&schedFlags != 0 {
			p.printf(" (%s)", schedFlagNames(s))
		}
		if s.Flags&ipvs.ServicePersistent != 0 {
			p.printf(" persistent %d", s.Timeout)
			if m, ok := persistenceMask(s); ok {
				p.printf(" mask %s", m)
			}
		}
		if s.Flags&ipvs.ServiceOnePacket != 0 {
			p.printf(" ops")
		}
	}
	p.printf("\n")

	for i := range se.Dests {
		p.dest(&se.Dests[i], proto, name)
	}
}

// persistenceMask is the mask ipvsadm shows after "mask" or -M: an IPv4
// mask unless it is 255.255.255.255, an IPv6 prefix length unless 128.
func persistenceMask(s *ipvs.Service) (string, bool) {
	switch s.Family {
	case ipvs.INET:
		var b [4]byte
		if s.Netmask.Is4() {
			copy(b[:], s.Netmask.AsSlice())
		}
		if b == [4]byte{255, 255, 255, 255} {
			return "", false
		}
		return netip.AddrFrom4(b).String(), true
	case ipvs.INET6:
		bits := max(s.Netmask.Bits(), 0)
		if bits == 128 {
			return "", false
		}
		return strconv.Itoa(bits), true
	}
	return "", false
}

// schedFlagNames is print_sched_flags: the names depend on the
// scheduler, and a flag the scheduler has no name for prints nothing
// (so "sh" with flag-3 shows as "sh ()" and saves as "-b ").
func schedFlagNames(s *ipvs.Service) string {
	var names []byte
	add := func(on bool, name string) {
		if on {
			if len(names) > 0 {
				names = append(names, ',')
			}
			names = append(names, name...)
		}
	}
	f1, f2, f3 := s.Flags&ipvs.ServiceSchedulerOpt1 != 0, s.Flags&ipvs.ServiceSchedulerOpt2 != 0, s.Flags&ipvs.ServiceSchedulerOpt3 != 0
	switch s.Scheduler {
	case "sh":
		add(f1, "sh-fallback")
		add(f2, "sh-port")
	case "mh":
		add(f1, "mh-fallback")
		add(f2, "mh-port")
	default:
		add(f1, "flag-1")
		add(f2, "flag-2")
		add(f3, "flag-3")
	}
	return string(names)
}

// ForwardName is ipvsadm's fwd_name: Masq, Local, Tunnel, Route; glibc
// prints a NULL string as "(null)".
func ForwardName(m ipvs.ForwardType) string {
	switch m & 7 {
	case ipvs.Masquerade:
		return "Masq"
	case ipvs.Local:
		return "Local"
	case ipvs.Tunnel:
		return "Tunnel"
	case ipvs.DirectRoute:
		return "Route"
	}
	return "(null)"
}

// forwardSwitch is fwd_switch: Local is saved as -g.
func forwardSwitch(m ipvs.ForwardType) string {
	switch m & 7 {
	case ipvs.Masquerade:
		return "-m"
	case ipvs.Tunnel:
		return "-i"
	case ipvs.Local, ipvs.DirectRoute:
		return "-g"
	}
	return "(null)"
}

var (
	tunnelNames     = [...]string{ipvs.IPIP: "ipip", ipvs.GUE: "gue", ipvs.GRE: "gre"}
	tunnelFlagShort = [...]string{"-c", "+c", "r+c"}
	tunnelFlagOpts  = [...]string{"--tun-nocsum", "--tun-csum", "--tun-remcsum"}
)

// tunnelFlag indexes one of ipvsadm's flag tables. ipvsadm indexes them
// with the raw flags; values it cannot set itself (3 and up) would read
// past its arrays, and print "?" here.
func tunnelFlag(table [3]string, f ipvs.TunnelFlags) string {
	if int(f) < len(table) {
		return table[f]
	}
	return "?"
}

// tunnelInfo is fwd_tun_info ("" where ipvsadm prints n/a).
func tunnelInfo(d *ipvs.Destination) string {
	if d.FwdMethod&7 != ipvs.Tunnel {
		return ""
	}
	var s string
	switch d.TunnelType {
	case ipvs.IPIP:
		s = "ipip"
	case ipvs.GUE:
		s = fmt.Sprintf("gue:%d:%s", d.TunnelPort, tunnelFlag(tunnelFlagShort, d.TunnelFlags))
	case ipvs.GRE:
		s = "gre:" + tunnelFlag(tunnelFlagShort, d.TunnelFlags)
	default:
		return ""
	}
	if len(s) > 15 { // snprintf(info, 16, ...)
		s = s[:15]
	}
	return s
}

// dest prints one real server, as the loop of print_service_entry does.
func (p *printer) dest(e *ipvs.DestinationExtended, proto ipvs.Protocol, svcName string) {
	d := &e.Destination
	dname := p.addrPort(d.Family, d.Address, d.Port, proto)
	if p.f&fmtRule == 0 && d.Family != ipvs.INET6 && len(dname) > 28 {
		dname = dname[:28]
	}
	weight := int32(d.Weight) // an int in the kernel and in ipvsadm
	st := stats(e.Stats64, e.Stats)
	switch f := p.f; {
	case f&fmtRule != 0:
		p.printf("-a %s -r %s %s -w %d", svcName, dname, forwardSwitch(d.FwdMethod), weight)
		if d.FwdMethod&7 == ipvs.Tunnel {
			switch d.TunnelType {
			case ipvs.GRE:
				p.printf(" --tun-type gre %s", tunnelFlag(tunnelFlagOpts, d.TunnelFlags))
			case ipvs.GUE:
				p.printf(" --tun-type gue --tun-port %d %s", d.TunnelPort, tunnelFlag(tunnelFlagOpts, d.TunnelFlags))
			case ipvs.IPIP:
				p.printf(" --tun-type ipip")
			}
		}
		p.printf("\n")
	case f&fmtStats != 0:
		p.printf("  -> %-28s", dname)
		p.largeNums(st.Connections, st.IncomingPackets, st.OutgoingPackets, st.IncomingBytes, st.OutgoingBytes)
		p.printf("\n")
	case f&fmtRate != 0:
		// ipvsadm prints the first three rates of a real server with a
		// plain %8llu, never abbreviated, and only the byte rates with
		// print_largenum.
		p.printf("  -> %-28s %8d %8d %8d", dname, st.ConnectionRate, st.IncomingPacketRate, st.OutgoingPacketRate)
		p.largeNums(st.IncomingByteRate, st.OutgoingByteRate)
		p.printf("\n")
	case f&fmtThresholds != 0:
		p.printf("  -> %-28s %-10d %-10d %-10d %-10d\n", dname, d.UpperThreshold, d.LowerThreshold, e.ActiveConnections, e.InactiveConnections)
	case f&fmtPersistentConn != 0:
		p.printf("  -> %-28s %-9d %-11d %-10d %-10d\n", dname, weight, e.PersistentConnections, e.ActiveConnections, e.InactiveConnections)
	case f&fmtTunInfo != 0:
		ti := tunnelInfo(d)
		if ti == "" {
			ti = "n/a"
		}
		p.printf("  -> %-28s %-7s %-13s %-6d %-10d %-10d\n", dname, ForwardName(d.FwdMethod), ti, weight, e.ActiveConnections, e.InactiveConnections)
	default:
		p.printf("  -> %-28s %-7s %-6d %-10d %-10d\n", dname, ForwardName(d.FwdMethod), weight, e.ActiveConnections, e.InactiveConnections)
	}
}

// largeNums is print_largenum for each number.
func (p *printer) largeNums(nums ...uint64) {
	for _, n := range nums {
		p.b.WriteString(FormatNumber(n, p.f&fmtExact != 0))
	}
}

// FormatNumber is ipvsadm's print_largenum: a number of the --stats and
// --rate columns, right-aligned in 9 characters (so always after at
// least one space). Unless exact, numbers of 100 million and more are
// cut to thousands (K), millions (M), billions (G) or trillions (T),
// truncating, in 8 characters plus the unit. Exact numbers wider than 8
// digits get exactly one leading space.
func FormatNumber(n uint64, exact bool) string {
	if exact {
		s := strconv.FormatUint(n, 10)
		if len(s) <= 8 {
			return fmt.Sprintf("%9s", s)
		}
		return " " + s
	}
	switch {
	case n < 100_000_000:
		return fmt.Sprintf("%9d", n)
	case n < 1_000_000_000:
		return fmt.Sprintf("%8dK", n/1_000)
	case n < 100_000_000_000:
		return fmt.Sprintf("%8dM", n/1_000_000)
	case n < 100_000_000_000_000:
		return fmt.Sprintf("%8dG", n/1_000_000_000)
	}
	return fmt.Sprintf("%8dT", n/1_000_000_000_000)
}
