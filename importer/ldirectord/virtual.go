package ldirectord

import (
	"net/netip"
	"regexp"
	"strconv"
	"strings"
)

// vsrv is one virtual service with ldirectord's defaults filled in
// (read_config: checktype negotiate, scheduler wrr, request "/", protocol
// tcp or udp for port 53).
type vsrv struct {
	line             int
	v6               bool
	addr             netip.Addr
	port             int
	fwmark           int64 // 0: an address service
	protocol         string
	checktype        string // connect, negotiate, ping, off, on, external, external-perl, combined
	every            int    // combined: negotiate every Nth check
	service          string
	checkcommand     string
	request, receive string
	login, passwd    string
	database, secret string
	httpmethod       string
	virtualhost      string
	checktimeout     int
	negotiatetimeout int
	failurecount     int
	checkinterval    int
	checkport        int
	scheduler        string
	persistent       int
	netmask          string
	ops              bool
	quiescent        string
	fallback         *directive
	name, comment    string
	set              map[string]int // option -> line where the file sets it
}

var (
	ipv4PortRe = regexp.MustCompile(`^(\d+\.\d+\.\d+\.\d+):([0-9A-Za-z_-]+)`)
	hostPortRe = regexp.MustCompile(`^([0-9A-Za-z._+-]+):([0-9A-Za-z_-]+)`)
	fwmarkRe   = regexp.MustCompile(`^(\d+)`)
	ipv6PortRe = regexp.MustCompile(`^\[([0-9A-Fa-f:.]+)\]:([0-9A-Za-z_-]+)`)
)

// virtualNotes: options of a virtual section with no director equivalent.
var virtualNotes = map[string]string{
	"emailalert":       globalNotes["emailalert"],
	"emailalertfreq":   globalNotes["emailalertfreq"],
	"emailalertstatus": globalNotes["emailalertstatus"],
	"smtp":             globalNotes["smtp"],
	"monitorfile":      globalNotes["monitorfile"],
	"fallbackcommand":  globalNotes["fallbackcommand"],
	"checkcount":       globalNotes["checkcount"],
	"connecttimeout":   globalNotes["connecttimeout"],
	"load":             globalNotes["load"],
	"cleanstop":        "not carried over: directord's ipvs.cleanup_on_exit is for every service, not one",
}

// readVirtual reads a virtual section; nil (after a report) when its
// address cannot be carried over.
func (im *conv) readVirtual(v *virtual) *vsrv {
	vs := &vsrv{line: v.Line, v6: v.V6, checktype: "negotiate", protocol: "tcp", scheduler: "wrr",
		request: "/", httpmethod: "GET", checktimeout: -1, negotiatetimeout: -1, failurecount: -1,
		checkinterval: -1, persistent: -1, set: map[string]int{}}
	key := "virtual"
	if v.V6 {
		key = "virtual6"
	}
	var host, port string
	if m := ipv4PortRe.FindStringSubmatch(v.Addr); m != nil && !v.V6 {
		host, port = m[1], m[2]
	} else if m := hostPortRe.FindStringSubmatch(v.Addr); m != nil {
		host, port = m[1], m[2]
	} else if m := fwmarkRe.FindStringSubmatch(v.Addr); m != nil {
		n, err := strconv.ParseInt(m[1], 10, 64)
		if err != nil || n < 1 || n > 4294967295 {
			im.report(v.Line, key, "firewall mark "+quoteMsg(m[1])+" is out of range 1-4294967295; service not carried over")
			return nil
		}
		vs.fwmark, vs.protocol, vs.service = n, "fwm", "none"
	} else if m := ipv6PortRe.FindStringSubmatch(v.Addr); m != nil {
		if !v.V6 {
			im.report(v.Line, key, "an IPv6 address needs virtual6 (ldirectord refuses it here); read as virtual6")
		}
		host, port = m[1], m[2]
	} else {
		im.report(v.Line, key, "not an address:port or a firewall mark ("+quoteMsg(v.Addr)+"); service not carried over")
		return nil
	}
	if vs.fwmark == 0 {
		a, err := netip.ParseAddr(host)
		if err != nil {
			im.report(v.Line, key, "address "+quoteMsg(host)+" is not an IP address (ldirectord resolved host names at start): write the address; service not carried over")
			return nil
		}
		p, ok := portOf(port)
		if !ok {
			im.report(v.Line, key, "port "+quoteMsg(port)+" is neither a number nor a service name this importer knows: write the number; service not carried over")
			return nil
		}
		vs.addr, vs.port, vs.v6 = a.Unmap(), p, a.Is6() && !a.Is4In6()
		if port == "53" || port == "domain" {
			vs.protocol = "udp" // read_config: a virtual on port 53 is udp unless protocol says otherwise
		}
	}
	for _, d := range v.Opts {
		im.virtualOption(vs, d)
	}
	if vs.service == "" {
		vs.service = portService(vs.port) // _ld_read_config_virtual_resolve
	}
	return vs
}

func (im *conv) virtualOption(vs *vsrv, d directive) {
	vs.set[d.Key] = d.Line
	switch d.Key {
	case "request":
		if d.Val == "" {
			im.report(d.Line, d.Key, "empty: ldirectord refuses it; not read")
			return
		}
		vs.request = withSlash(d.Val)
	case "receive":
		vs.receive = d.Val
	case "checktype":
		switch ds := leadingDigits(d.Val); {
		case ds != "" && strings.HasPrefix(d.Val, ds):
			vs.checktype = "combined"
			vs.every, _ = strconv.Atoi(ds)
		case d.Val == "connect", d.Val == "negotiate", d.Val == "ping", d.Val == "off", d.Val == "on",
			d.Val == "external", d.Val == "external-perl":
			vs.checktype = d.Val
		default:
			im.report(d.Line, d.Key, "unknown check type "+quoteMsg(d.Val)+" (ldirectord refuses it); kept negotiate")
		}
	case "checkcommand":
		vs.checkcommand = d.Val
	case "checktimeout":
		im.positive(d, &vs.checktimeout)
	case "negotiatetimeout":
		im.positive(d, &vs.negotiatetimeout)
	case "failurecount":
		im.positive(d, &vs.failurecount)
	case "checkinterval":
		im.positive(d, &vs.checkinterval)
	case "checkport":
		if p, err := strconv.Atoi(d.Val); err == nil && p > 0 && p < 65536 {
			vs.checkport = p
		} else {
			im.report(d.Line, d.Key, "not a port 1-65535 ("+quoteMsg(d.Val)+"); not read")
		}
	case "login":
		vs.login = d.Val
	case "passwd":
		vs.passwd = d.Val
	case "database":
		vs.database = d.Val
	case "secret":
		vs.secret = d.Val
	case "scheduler":
		vs.scheduler = d.Val
	case "persistent":
		if p, err := strconv.Atoi(leadingDigits(d.Val)); err == nil {
			vs.persistent = p
		} else {
			im.report(d.Line, d.Key, "not a number of seconds ("+quoteMsg(d.Val)+"); not read")
		}
	case "netmask":
		vs.netmask = d.Val
	case "protocol":
		switch {
		case vs.fwmark != 0 && d.Val != "fwm":
			im.report(d.Line, d.Key, "a firewall-mark virtual's protocol is fwm (ldirectord refuses "+quoteMsg(d.Val)+"); not read")
		case vs.fwmark == 0 && d.Val != "tcp" && d.Val != "udp":
			im.report(d.Line, d.Key, "must be tcp or udp ("+quoteMsg(d.Val)+"); not read")
		case vs.fwmark == 0:
			vs.protocol = d.Val
		}
	case "ops":
		vs.ops = d.Val == "yes"
	case "service":
		vs.service = d.Val
	case "httpmethod":
		vs.httpmethod = strings.ToUpper(d.Val)
	case "virtualhost":
		vs.virtualhost = d.Val
	case "fallback", "fallback6":
		d := d
		vs.fallback = &d
	case "quiescent":
		if im.yesNo(d) {
			vs.quiescent = d.Val
		}
	case "servicename":
		vs.name = d.Val
	case "comment":
		vs.comment = d.Val
	default:
		if note, ok := virtualNotes[d.Key]; ok {
			im.report(d.Line, d.Key, note)
		} else {
			im.report(d.Line, d.Key, "not an ldirectord virtual option (ldirectord refuses the file here); not read")
		}
	}
}

func withSlash(s string) string {
	if strings.HasPrefix(s, "/") {
		return s
	}
	return "/" + s
}

// real is one real server after ldirectord's add_real_server.
type real struct {
	line             int
	addr             netip.Addr
	port             int // 0: the virtual's
	fwd              string
	weight           int
	request, receive string
	own              bool // request and receive given on the real= line
	lower, upper     int64
}

var (
	realRe   = regexp.MustCompile(`^(\d+\.\d+\.\d+\.\d+|[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(->(\d+\.\d+\.\d+\.\d+|[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]))?(:(\d+|[A-Za-z0-9_-]+))?\s+(.*)$`)
	methodRe = regexp.MustCompile(`^(\w+)(.*)$`)
	weightRe = regexp.MustCompile(`^\s+(\d+)(.*)$`)
	rrRe     = regexp.MustCompile(`^\s+"(.*)"[, ]\s*"(.*)"(.*)$`)
	lowerRe  = regexp.MustCompile(`^\s+l:(\d+)(.*)$`) // add_real_server's "<l:l-threshold>"
	upperRe  = regexp.MustCompile(`^\s+u:(\d+)(.*)$`)
	forwards = map[string]string{"gate": "dr", "masq": "nat", "ipip": "tun"}
)

// maxRange bounds an address range a->b on a real= line.
const maxRange = 256

// readReals reads the real= lines of a virtual; what cannot be carried
// over is reported and left out.
func (im *conv) readReals(vs *vsrv, ds []directive) []real {
	var out []real
	for _, d := range ds {
		if (d.Key == "real6") != vs.v6 {
			im.report(d.Line, d.Key, "real6 goes with virtual6 and real with virtual (ldirectord refuses it here); read anyway")
		}
		m := realRe.FindStringSubmatch(d.Val)
		if m == nil {
			im.report(d.Line, d.Key, "not ADDRESS[:PORT] gate|masq|ipip [WEIGHT] (ldirectord refuses it); real server not carried over")
			continue
		}
		r := real{line: d.Line, weight: 1}
		if m[5] != "" {
			p, ok := portOf(m[5])
			if !ok || p == 0 {
				im.report(d.Line, d.Key, "port "+quoteMsg(m[5])+" is not a number or a known service name; real server not carried over")
				continue
			}
			r.port = p
		}
		flags := m[6]
		fm := methodRe.FindStringSubmatch(flags)
		if fm == nil || forwards[fm[1]] == "" {
			im.report(d.Line, d.Key, "forward method must be gate, masq or ipip (ldirectord refuses it); real server not carried over")
			continue
		}
		r.fwd, flags = forwards[fm[1]], fm[2]
		if wm := weightRe.FindStringSubmatch(flags); wm != nil {
			w, err := strconv.Atoi(wm[1])
			if err != nil || w > 65535 {
				im.report(d.Line, d.Key, "weight "+wm[1]+" is above 65535, the kernel's largest: set to 65535")
				w = 65535
			}
			r.weight, flags = w, wm[2]
		}
		if rm := rrRe.FindStringSubmatch(flags); rm != nil {
			r.request, r.receive, r.own, flags = withSlash(rm[1]), rm[2], true, rm[3]
		}
		// Thresholds: lower first, then upper, each optional, as
		// add_real_server reads them.
		if tm := lowerRe.FindStringSubmatch(flags); tm != nil {
			r.lower, flags = threshold(tm[1]), tm[2]
		}
		if tm := upperRe.FindStringSubmatch(flags); tm != nil {
			r.upper, flags = threshold(tm[1]), tm[2]
		}
		if strings.TrimSpace(flags) != "" {
			im.report(d.Line, d.Key, "unexpected text after the weight ("+quoteMsg(flags)+"; ldirectord refuses it); real server not carried over")
			continue
		}
		first, err1 := netip.ParseAddr(strings.Trim(m[1], "[]"))
		if err1 != nil {
			im.report(d.Line, d.Key, "address "+quoteMsg(m[1])+" is not an IP address (ldirectord resolved host names at start): write the address; real server not carried over")
			continue
		}
		if first.Unmap().Is4() == vs.v6 && r.fwd != "tun" {
			im.report(d.Line, d.Key, "address "+quoteMsg(m[1])+" is of the other family than the virtual's (ldirectord refuses it); only a tunnel (ipip) crosses families: real server not carried over")
			continue
		}
		if m[3] == "" {
			r.addr = first.Unmap()
			out = append(out, r)
			continue
		}
		last, err2 := netip.ParseAddr(strings.Trim(m[3], "[]"))
		if err2 != nil || !first.Is4() || !last.Is4() || last.Less(first) {
			im.report(d.Line, d.Key, "address range "+quoteMsg(m[1]+"->"+m[3])+" is not a rising IPv4 range (ldirectord refuses it); not carried over")
			continue
		}
		n := 0
		for a := first; ; a = a.Next() {
			if n == maxRange {
				im.report(d.Line, d.Key, "address range longer than "+itoa(maxRange)+": only its first "+itoa(maxRange)+" addresses carried over")
				break
			}
			r.addr = a
			out = append(out, r)
			n++
			if a == last {
				break
			}
		}
	}
	return out
}

// threshold reads a connection threshold, bounded by the kernel's 32 bits
// (ipvsadm refuses more; ldirectord passed it on and the add failed).
func threshold(s string) int64 {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n > 4294967295 {
		return 4294967295
	}
	return n
}
