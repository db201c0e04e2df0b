package metrics

import (
	"bufio"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/cloudflare/ipvs"
	"github.com/directorlb/director/config"
	"github.com/directorlb/director/director"
)

// Kernel is the part of IPVS a scrape reads. *ipvs.Client satisfies it;
// the exporter should have a handle of its own, so a scrape never waits
// behind the reconcile loop's netlink requests.
type Kernel interface {
	Services() ([]ipvs.ServiceExtended, error)
	Destinations(ipvs.Service) ([]ipvs.DestinationExtended, error)
}

// Health is the check engine's view of one real server.
type Health interface {
	// Transition reports whether the server is healthy and since when;
	// known is false for a server no check covers.
	Transition(service string, rs netip.AddrPort) (healthy bool, since time.Time, known bool)
}

// The kernel families are written straight in the text exposition
// format rather than through client_golang's registry: a registry
// materialises every sample as a protobuf message before encoding, and at
// 10,000 services of 10 real servers that is 1.5 million messages per
// scrape. Here a scrape keeps one small record per service and real
// server, and formats each family from them in turn.

// svcRec is one configured service at scrape time.
type svcRec struct {
	labels, name       span // the full label set; service alone
	inKernel           bool
	st                 ipvs.Stats
	active, inactive   uint64
	servers, healthy   int
	firstDest, endDest int // its real servers in kernelView.dests
	// moreVIP marks the second and later kernel services of a service
	// with vips: the families labelled by service alone are written
	// once, from the first, which counts every real server.
	moreVIP bool
}

// destRec is one real server (or a sorry server) of a service.
type destRec struct {
	labels    span
	inKernel  bool
	st        ipvs.Stats
	weight    uint32
	active    uint32
	inactive  uint32
	cfgWeight int32 // -1: not in the config (a sorry server)
	health    int8  // -1 unknown, 0 down, 1 up
	since     float64
}

// span is a slice of kernelView.arena.
type span struct{ from, to uint32 }

// kernelView is one scrape's reading of the kernel, config and health.
type kernelView struct {
	arena []byte // every label set, back to back
	svcs  []svcRec
	dests []destRec
	ok    bool
	seen  []bool // scratch, per service
}

func (v *kernelView) bytes(s span) []byte { return v.arena[s.from:s.to] }

// label appends `name="value"` (escaped) to the arena.
func (v *kernelView) label(first bool, name, value string) {
	if !first {
		v.arena = append(v.arena, ',')
	}
	v.arena = append(v.arena, name...)
	v.arena = append(v.arena, '=', '"')
	for i := 0; i < len(value); i++ {
		switch c := value[i]; c {
		case '\\':
			v.arena = append(v.arena, '\\', '\\')
		case '"':
			v.arena = append(v.arena, '\\', '"')
		case '\n':
			v.arena = append(v.arena, '\\', 'n')
		default:
			v.arena = append(v.arena, c)
		}
	}
	v.arena = append(v.arena, '"')
}

func (v *kernelView) mark() uint32 { return uint32(len(v.arena)) }

var protoNames = map[ipvs.Protocol]string{ipvs.TCP: "TCP", ipvs.UDP: "UDP", ipvs.SCTP: "SCTP"}

// readKernel fills v, reusing its memory: it joins the config's services with what the kernel holds and
// what the checks say. A kernel that cannot be read leaves ok false and
// the kernel's numbers out; health and configuration still show.
func readKernel(v *kernelView, cfg *config.Config, k Kernel, h Health) {
	// Sized up front and reused from scrape to scrape: growing these by
	// doubling, every scrape, would leave tens of MB of garbage behind
	// at a large farm's scale.
	servers := 0
	for i := range cfg.Services {
		servers += len(cfg.Services[i].RealServers) + 1 // a sorry server
	}
	v.svcs = slices.Grow(v.svcs[:0], len(cfg.Services))
	v.dests = slices.Grow(v.dests[:0], servers)
	v.arena = slices.Grow(v.arena[:0], 100*len(cfg.Services)+48*servers)
	held := map[director.SvcKey]ipvs.ServiceExtended{}
	svcs, err := k.Services()
	v.ok = err == nil
	for _, s := range svcs {
		held[director.KeyOf(s.Service)] = s
	}
	for i := range cfg.Services {
		cs := &cfg.Services[i]
		// One record per kernel service: a service with vips has one
		// per VIP, each with the real servers of its family.
		for vi, want := range director.ServicesOf(cs) {
			v.readService(cs, want, vi > 0, held, k, h)
		}
	}
}

// readService reads one kernel service of cs into v.
func (v *kernelView) readService(cs *config.Service, want ipvs.Service, moreVIP bool, held map[director.SvcKey]ipvs.ServiceExtended, k Kernel, h Health) {
	var err error
	ks, inKernel := held[director.KeyOf(want)]
	r := svcRec{inKernel: inKernel, firstDest: len(v.dests), moreVIP: moreVIP}
	from := v.mark()
	v.label(true, "service", cs.Name)
	r.name = span{from, v.mark()}
	if want.FWMark != 0 {
		v.label(false, "local_address", "")
		v.label(false, "local_port", "0")
		v.label(false, "proto", "FWM")
		v.label(false, "local_mark", strconv.FormatUint(uint64(want.FWMark), 10))
	} else {
		v.label(false, "local_address", want.Address.String())
		v.label(false, "local_port", strconv.Itoa(int(want.Port)))
		v.label(false, "proto", protoNames[want.Protocol])
		v.label(false, "local_mark", "")
	}
	r.labels = span{from, v.mark()}
	var kdests []ipvs.DestinationExtended
	if inKernel {
		r.st = stats(ks.Stats, ks.Stats64)
		if kdests, err = k.Destinations(ks.Service); err != nil {
			v.ok = false
		}
	}
	for _, d := range kdests {
		r.active += uint64(d.ActiveConnections)
		r.inactive += uint64(d.InactiveConnections)
	}
	find := destFinder(kdests)
	seen := v.seen[:0]
	for range kdests {
		seen = append(seen, false)
	}
	v.seen = seen
	for _, rs := range cs.RealServers {
		d := destRec{cfgWeight: int32(rs.Weight), health: -1}
		up, since, known := h.Transition(cs.Name, rs.AddrPort())
		if !moreVIP {
			// Counted once, over every real server of the service.
			r.servers++
			if known && up {
				r.healthy++
			}
		}
		if !cs.ServesFrom(want.Address, &rs) {
			continue // another VIP's kernel service has it
		}
		if known {
			d.health, d.since = 0, float64(since.UnixMilli())/1e3
			if up {
				d.health = 1
			}
		}
		if j, ok := find(director.DestKey{Addr: rs.Address, Port: rs.Port}); ok {
			seen[j] = true
			d.fromKernel(&kdests[j])
		}
		d.labels = v.destLabels(cs.Name, rs.AddrPort())
		v.dests = append(v.dests, d)
	}
	// What else the kernel holds under this service: the sorry
	// server, or a real server added by hand.
	for j := range kdests {
		if !seen[j] {
			d := destRec{cfgWeight: -1, health: -1}
			d.fromKernel(&kdests[j])
			d.labels = v.destLabels(cs.Name, netip.AddrPortFrom(kdests[j].Address, kdests[j].Port))
			v.dests = append(v.dests, d)
		}
	}
	r.endDest = len(v.dests)
	v.svcs = append(v.svcs, r)
}

func (v *kernelView) destLabels(service string, addr netip.AddrPort) span {
	from := v.mark()
	v.label(true, "service", service)
	// An address needs no escaping; appending it in place saves an
	// allocation per real server.
	v.arena = append(v.arena, `,address="`...)
	v.arena = addr.AppendTo(v.arena)
	v.arena = append(v.arena, '"')
	return span{from, v.mark()}
}

// destFinder looks up a service's kernel destinations by key: a scan for
// the usual few, a map for many.
func destFinder(kdests []ipvs.DestinationExtended) func(director.DestKey) (int, bool) {
	if len(kdests) <= 32 {
		return func(k director.DestKey) (int, bool) {
			for j := range kdests {
				if kdests[j].Address == k.Addr && kdests[j].Port == k.Port {
					return j, true
				}
			}
			return 0, false
		}
	}
	byKey := make(map[director.DestKey]int, len(kdests))
	for j := range kdests {
		byKey[director.DestKeyOf(kdests[j].Destination)] = j
	}
	return func(k director.DestKey) (int, bool) { j, ok := byKey[k]; return j, ok }
}

func (d *destRec) fromKernel(k *ipvs.DestinationExtended) {
	d.inKernel = true
	d.st = stats(k.Stats, k.Stats64)
	d.weight, d.active, d.inactive = k.Weight, k.ActiveConnections, k.InactiveConnections
}

// stats prefers the kernel's 64-bit counters, which older kernels leave
// at zero.
func stats(s32, s64 ipvs.Stats) ipvs.Stats {
	if s64 != (ipvs.Stats{}) {
		return s64
	}
	return s32
}

// A family is one metric: its name, help and type, and how to read its
// value from a record (ok false: no sample for this record).
type family[R any] struct {
	name, help, typ string
	value           func(*R) (v float64, ok bool)
}

func kernelStat(f func(*ipvs.Stats) uint64) func(*ipvs.Stats) float64 {
	return func(s *ipvs.Stats) float64 { return float64(f(s)) }
}

// statFamily is one of the kernel's counters or rates, named after the
// prefix (director_service_ or director_realserver_).
type statFamily struct {
	suffix, help, typ string
	get               func(*ipvs.Stats) float64
}

// statFamilies are the kernel's counters and rates, for services and real
// servers alike.
func statFamilies(what string) []statFamily {
	return []statFamily{
		{"connections_total", "Connections the kernel scheduled to " + what + ".", "counter", kernelStat(func(s *ipvs.Stats) uint64 { return s.Connections })},
		{"incoming_packets_total", "Packets from clients to " + what + ".", "counter", kernelStat(func(s *ipvs.Stats) uint64 { return s.IncomingPackets })},
		{"outgoing_packets_total", "Packets from " + what + " to clients (NAT only: with DR and TUN replies bypass the director).", "counter", kernelStat(func(s *ipvs.Stats) uint64 { return s.OutgoingPackets })},
		{"incoming_bytes_total", "Bytes from clients to " + what + ".", "counter", kernelStat(func(s *ipvs.Stats) uint64 { return s.IncomingBytes })},
		{"outgoing_bytes_total", "Bytes from " + what + " to clients (NAT only).", "counter", kernelStat(func(s *ipvs.Stats) uint64 { return s.OutgoingBytes })},
		{"connections_per_second", "The kernel's estimate of new connections per second to " + what + ".", "gauge", kernelStat(func(s *ipvs.Stats) uint64 { return s.ConnectionRate })},
		{"incoming_packets_per_second", "The kernel's estimate of incoming packets per second for " + what + ".", "gauge", kernelStat(func(s *ipvs.Stats) uint64 { return s.IncomingPacketRate })},
		{"outgoing_packets_per_second", "The kernel's estimate of outgoing packets per second for " + what + ".", "gauge", kernelStat(func(s *ipvs.Stats) uint64 { return s.OutgoingPacketRate })},
		{"incoming_bytes_per_second", "The kernel's estimate of incoming bytes per second for " + what + ".", "gauge", kernelStat(func(s *ipvs.Stats) uint64 { return s.IncomingByteRate })},
		{"outgoing_bytes_per_second", "The kernel's estimate of outgoing bytes per second for " + what + ".", "gauge", kernelStat(func(s *ipvs.Stats) uint64 { return s.OutgoingByteRate })},
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

var svcFamilies, destFamilies = func() ([]family[svcRec], []family[destRec]) {
	var sf []family[svcRec]
	for _, f := range statFamilies("the service") {
		sf = append(sf, family[svcRec]{"director_service_" + f.suffix, f.help, f.typ,
			func(r *svcRec) (float64, bool) { return f.get(&r.st), r.inKernel }})
	}
	sf = append(sf,
		family[svcRec]{"director_service_connections_active", "Connection entries in ESTABLISHED state over the service's real servers.", "gauge",
			func(r *svcRec) (float64, bool) { return float64(r.active), r.inKernel }},
		family[svcRec]{"director_service_connections_inactive", "Connection entries in any other state over the service's real servers.", "gauge",
			func(r *svcRec) (float64, bool) { return float64(r.inactive), r.inKernel }},
		family[svcRec]{"director_service_in_kernel", "1 if the kernel holds the configured service.", "gauge",
			func(r *svcRec) (float64, bool) { return boolValue(r.inKernel), true }},
	)
	var df []family[destRec]
	for _, f := range statFamilies("the real server") {
		df = append(df, family[destRec]{"director_realserver_" + f.suffix, f.help, f.typ,
			func(r *destRec) (float64, bool) { return f.get(&r.st), r.inKernel }})
	}
	df = append(df,
		family[destRec]{"director_realserver_connections_active", "The real server's connection entries in ESTABLISHED state.", "gauge",
			func(r *destRec) (float64, bool) { return float64(r.active), r.inKernel }},
		family[destRec]{"director_realserver_connections_inactive", "The real server's connection entries in any other state.", "gauge",
			func(r *destRec) (float64, bool) { return float64(r.inactive), r.inKernel }},
		family[destRec]{"director_realserver_weight", "The real server's weight in the kernel now.", "gauge",
			func(r *destRec) (float64, bool) { return float64(r.weight), r.inKernel }},
		family[destRec]{"director_realserver_configured_weight", "The real server's weight in the config.", "gauge",
			func(r *destRec) (float64, bool) { return float64(r.cfgWeight), r.cfgWeight >= 0 }},
		family[destRec]{"director_realserver_up", "1 if the real server passes its health check, 0 if not.", "gauge",
			func(r *destRec) (float64, bool) { return float64(r.health), r.health >= 0 }},
		family[destRec]{"director_realserver_last_transition_timestamp_seconds", "When the real server's health last changed (or its check was set up).", "gauge",
			func(r *destRec) (float64, bool) { return r.since, r.health >= 0 }},
	)
	return sf, df
}()

// svcCountFamilies are labelled by service alone.
var svcCountFamilies = []family[svcRec]{
	{"director_service_realservers", "Real servers configured for the service (not counting a sorry server).", "gauge",
		func(r *svcRec) (float64, bool) { return float64(r.servers), !r.moreVIP }},
	{"director_service_realservers_healthy", "Of the service's configured real servers, how many pass their check.", "gauge",
		func(r *svcRec) (float64, bool) { return float64(r.healthy), !r.moreVIP }},
}

// write formats every kernel family in the text exposition format.
func (v *kernelView) write(w *bufio.Writer) error {
	buf := make([]byte, 0, 64)
	for _, f := range svcFamilies {
		writeFamily(w, &buf, v, f, v.svcs, func(r *svcRec) span { return r.labels })
	}
	for _, f := range svcCountFamilies {
		writeFamily(w, &buf, v, f, v.svcs, func(r *svcRec) span { return r.name })
	}
	for _, f := range destFamilies {
		writeFamily(w, &buf, v, f, v.dests, func(r *destRec) span { return r.labels })
	}
	fmt.Fprintf(w, "# HELP director_kernel_read_success 1 if the last scrape read the kernel's IPVS table whole.\n# TYPE director_kernel_read_success gauge\ndirector_kernel_read_success %d\n", int(boolValue(v.ok)))
	return w.Flush()
}

func writeFamily[R any](w *bufio.Writer, buf *[]byte, v *kernelView, f family[R], recs []R, labels func(*R) span) {
	header := false
	for i := range recs {
		r := &recs[i]
		val, ok := f.value(r)
		if !ok {
			continue
		}
		if !header {
			fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", f.name, f.help, f.name, f.typ)
			header = true
		}
		b := append((*buf)[:0], f.name...)
		b = append(b, '{')
		b = append(b, v.bytes(labels(r))...)
		b = append(b, '}', ' ')
		b = appendValue(b, val)
		b = append(b, '\n')
		w.Write(b)
		*buf = b
	}
}

// appendValue writes integers as integers (most values are counts) and
// anything else in Go's shortest float form.
func appendValue(b []byte, v float64) []byte {
	if v == math.Trunc(v) && math.Abs(v) < 1<<53 {
		return strconv.AppendInt(b, int64(v), 10)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}
