package config

import (
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Read-only tables of what the schema allows.
var (
	serviceKeys = []string{"name", "vip", "vips", "port", "protocol", "fwmark", "family", "scheduler",
		"scheduler_flags", "one_packet", "persistence", "persistence_netmask", "forward", "tunnel",
		"check", "on_failure", "slow_start", "sorry_server", "real_servers", "announce"}
	protocols      = []string{string(TCP), string(UDP), string(SCTP)}
	families       = []string{"ipv4", "ipv6"}
	forwards       = []string{string(NAT), string(Direct), string(Tunnel)}
	onFailures     = []string{string(Quiesce), string(Remove)}
	schedulerFlags = []string{"sh-port", "sh-fallback", "mh-port", "mh-fallback"}
)

const maxNameLen = 64

// serviceID is what the checks across services need from one service.
type serviceID struct {
	nameNode *yaml.Node // nil if the name is missing or invalid
	idents   []ident    // one per kernel service; none if unknown
}

// ident is what makes one kernel service unique, and where it is written.
type ident struct {
	ident    string     // what makes it unique in the kernel
	label    string     // ident as a message shows it
	identAt  *yaml.Node // where the ident is written, and its key
	identKey string
}

// services decodes the services list and checks what must be unique
// across it: names, and the kernel's identity of each virtual service.
func (d *decoder) services(n *yaml.Node, base Check) []Service {
	entries, ok := d.list(n, "services", "services (each starting with \"- name:\")")
	if !ok {
		return nil
	}
	// Refused before decoding: a service costs a few kilobytes decoded,
	// and a file of empty entries ("- {}") would cost hundreds of times
	// its size. The limit is on all files together (include.go).
	switch total := d.svc.count + len(entries); {
	case len(entries) > MaxServices:
		d.limitf(n, "services", "lists %d services, more than the %d directord takes", len(entries), MaxServices)
		return nil
	case total > MaxServices:
		d.limitf(n, "services", "brings the configuration to %d services, more than the %d directord takes", total, MaxServices)
		return nil
	}
	if d.svc.names == nil {
		d.svc.names, d.svc.idents = map[string]Pos{}, map[string]svcOwner{}
	}
	// Key paths count services across files in the order they join
	// (Config.Services' index), so that Where and CheckKey agree.
	first := d.svc.count
	d.svc.count += len(entries)
	out := make([]Service, 0, len(entries))
	pre := d.servicesInParallel(entries, first, base)
	for i, e := range entries {
		path := index("services", first+i)
		var s *Service
		var id serviceID
		if pre != nil {
			s, id = pre[i].svc, pre[i].id
		} else {
			s, id = d.service(e, path, base)
		}
		if s == nil {
			continue
		}
		if id.nameNode != nil {
			if first, dup := d.svc.names[s.Name]; dup {
				d.errorf(id.nameNode, join(path, "name"), "duplicate service name %q (first at %s)", s.Name, d.at(first))
			} else {
				d.svc.names[s.Name] = d.pos(id.nameNode)
			}
		}
		for _, id := range id.idents {
			if o, dup := d.svc.idents[id.ident]; dup {
				d.errorf(id.identAt, id.identKey, "%s is already used by service %q (%s)", id.label, o.name, d.at(o.at))
			} else {
				d.svc.idents[id.ident] = svcOwner{s.Name, d.pos(id.identAt)}
			}
		}
		out = append(out, *s)
	}
	return out
}

// serviceSet is what must be unique across every file's services.
type serviceSet struct {
	count  int // entries listed so far, in all files
	names  map[string]Pos
	idents map[string]svcOwner
}

// svcOwner is the service that holds a kernel identity, and where.
type svcOwner struct {
	name string
	at   Pos
}

// at is where p is, as a message shows it: line:col in the file being
// read, or file:line:col in another one (an included file).
func (d *decoder) at(p Pos) string {
	if p.File == d.file {
		return fmt.Sprintf("%d:%d", p.Line, p.Col)
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// service decodes one service. It returns nil only when the entry is not
// a mapping at all; otherwise every problem has been reported and the
// Service is as complete as its valid parts allow.
func (d *decoder) service(n *yaml.Node, path string, base Check) (*Service, serviceID) {
	var id serviceID
	f := d.mapping(n, path, "a service", serviceKeys)
	if f == nil {
		return nil, id
	}
	s := &Service{Pos: d.pos(n), Scheduler: DefaultScheduler, Forward: NAT, OnFailure: Quiesce}

	if v := f.value("name"); v == nil {
		d.errorf(n, f.sub("name"), "missing; every service needs a unique name")
	} else if name, ok := d.serviceName(v, f.sub("name")); ok {
		s.Name, id.nameNode = name, v
	}

	// What the real servers' checks depend on; false where the service's
	// own value was wrong, to report the cause once and not its echoes.
	ctx := &endpointContext{svc: s, forwardOK: true}
	protoOK := true
	var vipNodes []*yaml.Node // with vips: where each is written
	if mark := f.value("fwmark"); mark != nil {
		for _, k := range []string{"vip", "vips", "port", "protocol"} {
			if kn := f.key(k); kn != nil {
				d.errorf(kn, f.sub(k), "cannot be used with fwmark (the mark alone selects the packets)")
			}
		}
		m, markOK := d.integer(mark, f.sub("fwmark"), 1, math.MaxUint32)
		s.FWMark = uint32(m)
		ctx.familyOK = true
		if v := f.value("family"); v != nil {
			fam, ok := d.enum(v, f.sub("family"), families)
			s.IPv6, ctx.familyOK = fam == "ipv6", ok
		}
		ctx.anyPort, ctx.portOK = true, true
		if markOK && ctx.familyOK {
			fam := "ipv4"
			if s.IPv6 {
				fam = "ipv6"
			}
			label := fmt.Sprintf("fwmark %d (%s)", s.FWMark, fam)
			id.idents = []ident{{label, label, mark, f.sub("fwmark")}}
		}
	} else {
		if kn := f.key("family"); kn != nil {
			d.errorf(kn, f.sub("family"), "only for fwmark services (a vip has its own family)")
		}
		vip, vips := f.value("vip"), f.value("vips")
		switch {
		case vip != nil && vips != nil:
			d.errorf(f.key("vips"), f.sub("vips"), "cannot be used with vip (vips lists every VIP of the service; move %s into it)", describe(vip))
		case vips != nil:
			// Several VIPs (vips.go): one kernel service each, one set of checks.
			var list []netip.Addr
			list, vipNodes, ctx.familyOK = d.vipList(vips, f.sub("vips"))
			if ctx.familyOK {
				s.VIP, s.IPv6 = list[0], list[0].Is6()
				if len(list) > 1 {
					s.VIPs = list
				}
			}
		case vip == nil:
			d.errorf(n, f.sub("vip"), "missing; a service needs vip and port, or fwmark")
		default:
			s.VIP, ctx.familyOK = d.vip(vip, f.sub("vip"))
			s.IPv6 = s.VIP.Is6()
			if ctx.familyOK {
				d.svcVIPs = append(d.svcVIPs, placed{s.VIP, vip, f.sub("vip")})
			}
		}
		if vip == nil {
			vip = vips // where "vip or vips" is written, for what follows
		}
		if v := f.value("port"); v != nil {
			p, ok := d.integer(v, f.sub("port"), 0, 65535)
			s.Port, ctx.portOK = uint16(p), ok
			ctx.anyPort = ok && p == 0
		} else if vip != nil {
			d.errorf(n, f.sub("port"), "missing; a port from 1 to 65535, or 0 with persistence for every port")
		}
		s.Protocol = TCP
		if v := f.value("protocol"); v != nil {
			p, ok := d.enum(v, f.sub("protocol"), protocols)
			s.Protocol, protoOK = Protocol(p), ok
		}
		if ctx.familyOK && ctx.portOK && protoOK && vip != nil && f.value("port") != nil {
			if vipNodes == nil {
				label := fmt.Sprintf("%s/%s", netip.AddrPortFrom(s.VIP, s.Port), s.Protocol)
				id.idents = []ident{{label, label, vip, f.sub("vip")}}
			}
			for i, a := range s.KernelVIPs() {
				if i < len(vipNodes) {
					label := fmt.Sprintf("%s/%s", netip.AddrPortFrom(a, s.Port), s.Protocol)
					id.idents = append(id.idents, ident{label, label, vipNodes[i], index(f.sub("vips"), i)})
				}
			}
		}
	}

	if d.bgpMode {
		s.Scheduler = "mh"
	}
	d.scheduling(f, s)
	if d.bgpMode && f.value("scheduler") == nil && f.value("scheduler_flags") == nil {
		s.SchedulerFlags = slices.Clone(bgpDefaultFlags)
	}

	if v := f.value("one_packet"); v != nil {
		if on, ok := d.boolean(v, f.sub("one_packet")); ok {
			s.OnePacket = on
			if on && protoOK && s.FWMark == 0 && s.Protocol != UDP {
				d.errorf(v, f.sub("one_packet"), "only for udp services (and fwmark); this one is %s", s.Protocol)
			}
		}
	}

	persistOK := true
	if v := f.value("persistence"); v != nil {
		s.Persistence, persistOK = d.seconds(v, f.sub("persistence"))
	}
	s.PersistenceMask = 32
	if s.IPv6 {
		s.PersistenceMask = 128
	}
	if v := f.value("persistence_netmask"); v != nil {
		switch {
		case persistOK && s.Persistence == 0:
			d.errorf(f.key("persistence_netmask"), f.sub("persistence_netmask"), "needs persistence (ipvsadm -M works only with -p)")
		case s.mixedFamilies():
			// One mask cannot be both an IPv4 and an IPv6 prefix length.
			d.errorf(f.key("persistence_netmask"), f.sub("persistence_netmask"), "cannot be used with vips of both families; each VIP groups clients by their whole address")
		case ctx.familyOK:
			if m, ok := d.persistenceMask(v, f.sub("persistence_netmask"), s.IPv6); ok {
				s.PersistenceMask = m
			}
		}
	}
	if s.FWMark == 0 && ctx.portOK && s.Port == 0 && f.value("port") != nil && persistOK && s.Persistence == 0 {
		d.errorf(f.value("port"), f.sub("port"), "port 0 (every port) needs persistence; otherwise use a port from 1 to 65535")
	}

	if v := f.value("forward"); v != nil {
		fw, ok := d.enum(v, f.sub("forward"), forwards)
		if ctx.forwardOK = ok; ok {
			s.Forward = Forward(fw)
		}
	}
	ctx.tunnel = TunnelSpec{Type: IPIP, Checksum: NoCsum}
	if v := f.value("tunnel"); v != nil {
		ctx.tunnel, _ = d.tunnel(v, f.sub("tunnel"))
	}
	if s.Forward == Tunnel || f.value("tunnel") != nil {
		s.Tunnel = ctx.tunnel
	}

	s.Check = cloneCheck(base)
	if v := f.value("check"); v != nil {
		s.Check = d.check(v, f.sub("check"), base)
	}
	if v := f.value("on_failure"); v != nil {
		of, _ := d.enum(v, f.sub("on_failure"), onFailures)
		s.OnFailure = OnFailure(of)
	}
	if v := f.value("slow_start"); v != nil {
		if ss, ok := d.interval(v, f.sub("slow_start")); ok {
			s.SlowStart = ss
		}
	}

	usesTunnel := s.Forward == Tunnel
	if v := f.value("real_servers"); v != nil {
		s.RealServers = d.realServers(v, f.sub("real_servers"), ctx)
	}
	for _, r := range s.RealServers {
		usesTunnel = usesTunnel || r.Forward == Tunnel
	}
	if v := f.value("sorry_server"); v != nil {
		s.SorryServer = d.sorryServer(v, f.sub("sorry_server"), ctx)
		if s.SorryServer != nil {
			usesTunnel = usesTunnel || s.SorryServer.Forward == Tunnel
		}
	}
	if f.value("tunnel") != nil && ctx.forwardOK && !usesTunnel {
		d.warnf(f.key("tunnel"), f.sub("tunnel"), "has no effect: neither the service nor a real server uses forward: tun")
	}
	d.vipsServed(s, vipNodes, f.sub("vips"))
	d.bgpService(f, n, s)
	return s, id
}

// serviceName checks a name used in metrics labels and on the command line.
func (d *decoder) serviceName(n *yaml.Node, key string) (string, bool) {
	const want = `lower-case letters, digits, "_", "." and "-" (at most 64)`
	s, ok := d.text(n, key, want)
	if !ok {
		return "", false
	}
	valid := len(s) <= maxNameLen
	for _, c := range s {
		valid = valid && (c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-')
	}
	if !valid {
		d.errorf(n, key, "must be %s, got %s", want, describe(n))
		return "", false
	}
	return s, true
}

// scheduling reads scheduler and scheduler_flags, whose flags each belong
// to one scheduler.
func (d *decoder) scheduling(f *fields, s *Service) {
	schedOK := true
	if v := f.value("scheduler"); v != nil {
		var sched string
		sched, schedOK = d.enum(v, f.sub("scheduler"), Schedulers)
		s.Scheduler = sched
	}
	v := f.value("scheduler_flags")
	if v == nil {
		return
	}
	items, _ := d.items(v, f.sub("scheduler_flags"), "flags")
	seen := map[string]bool{}
	for _, it := range items {
		flag, ok := d.enum(it.node, it.key, schedulerFlags)
		if !ok {
			continue
		}
		if seen[flag] {
			d.errorf(it.node, it.key, "duplicate flag %q", flag)
			continue
		}
		seen[flag] = true
		owner, other, _ := strings.Cut(flag, "-")
		switch {
		case !schedOK || owner == s.Scheduler:
		case s.Scheduler == "sh" || s.Scheduler == "mh":
			// sh-port and mh-port are the same kernel bit (and so are the
			// fallbacks): on the other hashing scheduler the flag would
			// quietly turn on that one's feature.
			d.errorf(it.node, it.key, "%s needs scheduler: %s; with %s it would mean %s-%s", flag, owner, s.Scheduler, s.Scheduler, other)
			continue
		default:
			d.warnf(it.node, it.key, "%s has no effect with scheduler %s (only with %s)", flag, s.Scheduler, owner)
		}
		s.SchedulerFlags = append(s.SchedulerFlags, flag)
	}
}

var tunnelKeys = []string{"type", "port", "checksum"}

// tunnel decodes a tunnel spec with its defaults. A real server's tunnel
// replaces its service's as a whole rather than field by field: a type
// decides which ports and checksums make sense, so mixing halves of two
// specs would produce a combination nobody wrote.
func (d *decoder) tunnel(n *yaml.Node, path string) (TunnelSpec, bool) {
	t := TunnelSpec{Type: IPIP, Checksum: NoCsum}
	f := d.mapping(n, path, "a tunnel: type, port, checksum", tunnelKeys)
	if f == nil {
		return t, false
	}
	ok := true
	typeOK := true
	if v := f.value("type"); v != nil {
		var typ string
		typ, typeOK = d.enum(v, f.sub("type"), []string{string(IPIP), string(GUE), string(GRE)})
		t.Type = TunnelType(typ)
		ok = typeOK
	}
	port := f.value("port")
	if port != nil {
		p, pok := d.integer(port, f.sub("port"), 1, 65535)
		t.Port, ok = uint16(p), ok && pok
	}
	csum := f.value("checksum")
	if csum != nil {
		c, cok := d.enum(csum, f.sub("checksum"), []string{string(NoCsum), string(Csum), string(RemCsum)})
		t.Checksum, ok = TunnelChecksum(c), ok && cok
	}
	if !typeOK {
		return t, false
	}
	if t.Type == GUE && port == nil {
		d.errorf(n, f.sub("port"), "missing; gue needs a port (the UDP port the real servers decapsulate on)")
		ok = false
	}
	if t.Type != GUE && port != nil {
		d.errorf(f.key("port"), f.sub("port"), "only gue tunnels take a port; this one is %s", t.Type)
		ok = false
	}
	if t.Checksum == RemCsum && t.Type != GUE {
		d.errorf(csum, f.sub("checksum"), "remcsum needs type: gue; this tunnel is %s", t.Type)
		ok = false
	}
	return t, ok
}
