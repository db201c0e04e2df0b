package director

import (
	"iter"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/cloudflare/ipvs"
	"github.com/cloudflare/ipvs/netmask"
	"github.com/directorlb/director/config"
)

// Weights is the one place that decides the weight the kernel holds for a
// real server right now. Health checks and manual drain feed it; the
// director only asks. present false means the destination must not be in
// the table at all (on_failure: remove). Weight may be called from
// several goroutines at once (NextDesiredTable).
type Weights interface {
	Weight(svc *config.Service, rs *config.RealServer) (weight int, present bool)
}

// ConfiguredWeights gives every real server its configured weight: the
// source used before any health check exists.
type ConfiguredWeights struct{}

// Weight implements Weights.
func (ConfiguredWeights) Weight(_ *config.Service, rs *config.RealServer) (int, bool) {
	return rs.Weight, true
}

// ServiceOf converts a configured service to the kernel's form: for a
// service with vips, the first VIP's kernel service (ServicesOf has all).
func ServiceOf(s *config.Service) ipvs.Service {
	return serviceFor(s, s.VIP)
}

// ServicesOf is every kernel service s asks for: one per VIP (a service
// with vips has several, all alike but for the address), or the one of
// a fwmark service.
func ServicesOf(s *config.Service) []ipvs.Service {
	vips := s.KernelVIPs()
	if len(vips) <= 1 {
		return []ipvs.Service{ServiceOf(s)}
	}
	out := make([]ipvs.Service, len(vips))
	for i, v := range vips {
		out[i] = serviceFor(s, v)
	}
	return out
}

// kernelVIPs is the VIP of each of s's kernel services, in
// ServicesOf's order; the invalid address for a fwmark service.
func kernelVIPs(s *config.Service) []netip.Addr {
	if len(s.VIPs) > 0 {
		return s.VIPs
	}
	return []netip.Addr{s.VIP}
}

// serviceFor is s's kernel service on vip. The persistence mask is the
// service's for the family of its first VIP; a VIP of the other family
// (the file may not set a mask then) groups clients by whole address.
func serviceFor(s *config.Service, vip netip.Addr) ipvs.Service {
	out := ipvs.Service{Scheduler: s.Scheduler, Family: ipvs.INET}
	bits := 32
	v6 := s.IPv6
	if s.FWMark == 0 {
		v6 = vip.Is6()
	}
	if v6 {
		out.Family, bits = ipvs.INET6, 128
	}
	if s.FWMark != 0 {
		out.FWMark = s.FWMark
	} else {
		out.Address, out.Port = vip, s.Port
		switch s.Protocol {
		case config.TCP:
			out.Protocol = ipvs.TCP
		case config.UDP:
			out.Protocol = ipvs.UDP
		case config.SCTP:
			out.Protocol = ipvs.SCTP
		}
	}
	mask := bits
	if s.Persistence > 0 {
		out.Flags |= ipvs.ServicePersistent
		out.Timeout = uint32(s.Persistence.Seconds())
		if v6 == s.IPv6 {
			mask = s.PersistenceMask
		}
	}
	out.Netmask = netmask.MaskFrom(mask, bits)
	if s.OnePacket {
		out.Flags |= ipvs.ServiceOnePacket
	}
	for _, f := range s.SchedulerFlags {
		switch f {
		case "sh-fallback", "mh-fallback":
			out.Flags |= ipvs.ServiceSchedulerOpt1
		case "sh-port", "mh-port":
			out.Flags |= ipvs.ServiceSchedulerOpt2
		}
	}
	return out
}

// DestinationOf converts a real server with a given weight.
func DestinationOf(rs *config.RealServer, weight int) ipvs.Destination {
	var d ipvs.Destination
	setDestination(&d, rs, weight)
	return d
}

// setDestination is DestinationOf written in place: a large table's
// destinations are built straight into their slice, not copied there.
func setDestination(d *ipvs.Destination, rs *config.RealServer, weight int) {
	*d = ipvs.Destination{
		Address:        rs.Address,
		Port:           rs.Port,
		Weight:         uint32(weight),
		UpperThreshold: rs.UpperThreshold,
		LowerThreshold: rs.LowerThreshold,
		Family:         ipvs.INET,
		FwdMethod:      ipvs.Masquerade,
	}
	if rs.Address.Is6() {
		d.Family = ipvs.INET6
	}
	switch rs.Forward {
	case config.Direct:
		d.FwdMethod = ipvs.DirectRoute
	case config.Tunnel:
		setTunnel(d, &rs.Tunnel)
	}
}

func setTunnel(d *ipvs.Destination, t *config.TunnelSpec) {
	d.FwdMethod = ipvs.Tunnel
	switch t.Type {
	case config.IPIP:
		d.TunnelType = ipvs.IPIP
	case config.GUE:
		d.TunnelType = ipvs.GUE
	case config.GRE:
		d.TunnelType = ipvs.GRE
	}
	d.TunnelPort = t.Port
	switch t.Checksum {
	case config.Csum:
		d.TunnelFlags = ipvs.TunnelEncapChecksum
	case config.RemCsum:
		d.TunnelFlags = ipvs.TunnelEncapRemoteChecksum
	}
}

// DesiredEntry is the kernel state one configured service should have
// now (for a service with vips, its first VIP's kernel service). The
// sorry server is in it only while no real server can take traffic
// (none present with a weight above zero).
func DesiredEntry(s *config.Service, w Weights) *Entry {
	e := desiredEntry(s, s.VIP, w, make([]ipvs.Destination, 0, destRoom(s)), false)
	return &e
}

// desiredEntriesIn is the desired entry of each kernel service of s, a
// service of cfg, in cfg's mode: one per VIP.
func desiredEntriesIn(cfg *config.Config, s *config.Service, w Weights) []*Entry {
	vips := kernelVIPs(s)
	out := make([]*Entry, len(vips))
	for i, v := range vips {
		e := desiredEntry(s, v, w, make([]ipvs.Destination, 0, destRoom(s)), cfg.BGP != nil)
		out[i] = &e
	}
	return out
}

// destRoom is the most destinations s can have in the kernel.
func destRoom(s *config.Service) int {
	if s.SorryServer != nil {
		return len(s.RealServers) + 1
	}
	return len(s.RealServers)
}

// desiredEntry is DesiredEntry with its destinations appended to buf,
// which has room for them all when entries share one allocation.
// In bgp mode (see bgpList), an mh or sh service also asks for its
// canonical list.
func desiredEntry(s *config.Service, vip netip.Addr, w Weights, buf []ipvs.Destination, bgp bool) Entry {
	e := Entry{Name: s.Name, Service: serviceFor(s, vip), Dests: makeDests(appendDests(buf, s, vip, w, bgp))}
	if bgp && listOrdered(e.Service.Scheduler) {
		e.Ordered, e.List = true, bgpList(s, vip)
	}
	return e
}

// appendDests appends the destinations s asks for now to buf, in the
// config's order.
func appendDests(buf []ipvs.Destination, s *config.Service, vip netip.Addr, w Weights, bgp bool) []ipvs.Destination {
	for rs, weight := range destinations(s, vip, w, bgp) {
		buf = append(buf, ipvs.Destination{})
		setDestination(&buf[len(buf)-1], rs, weight)
		if bgp {
			bgpDest(&buf[len(buf)-1])
		}
	}
	return buf
}

// destinations yields each real server s puts in the kernel now, with
// its weight, in the config's order. The sorry server comes last, and
// only while no real server can take traffic (none present with a
// weight above zero).
//
// In bgp mode every real server is there, at its configured weight or 0
// (bgpWeight), and the sorry server never is: the VIP is withdrawn
// before it would serve, and its coming and going would change the
// kernel's list that mh builds its table from.
//
// With vips, vip's kernel service has the servers of its family only
// (config.Service.ServesFrom), and the sorry server stands in there
// when none of those can take traffic.
func destinations(s *config.Service, vip netip.Addr, w Weights, bgp bool) iter.Seq2[*config.RealServer, int] {
	if bgp {
		return func(yield func(*config.RealServer, int) bool) {
			for i := range s.RealServers {
				rs := &s.RealServers[i]
				if !s.ServesFrom(vip, rs) {
					continue
				}
				if !yield(rs, bgpWeight(s, rs, w)) {
					return
				}
			}
		}
	}
	return func(yield func(*config.RealServer, int) bool) {
		available := false
		for i := range s.RealServers {
			rs := &s.RealServers[i]
			if !s.ServesFrom(vip, rs) {
				continue
			}
			weight, present := w.Weight(s, rs)
			if !present {
				continue
			}
			available = available || weight > 0
			if !yield(rs, weight) {
				return
			}
		}
		if s.SorryServer != nil && !available && s.ServesFrom(vip, s.SorryServer) {
			yield(s.SorryServer, max(s.SorryServer.Weight, 1))
		}
	}
}

// sameDests reports whether s asks for exactly ds now, in ds's order.
// Each destination is built on the stack and compared as it comes: a
// reload of a large unchanged table writes none of them anywhere.
func sameDests(s *config.Service, vip netip.Addr, w Weights, ds Dests, bgp bool) bool {
	i := 0
	for rs, weight := range destinations(s, vip, w, bgp) {
		if i == len(ds) {
			return false
		}
		var d ipvs.Destination
		setDestination(&d, rs, weight)
		if bgp {
			bgpDest(&d)
		}
		if d != ds[i] {
			return false
		}
		i++
	}
	return i == len(ds)
}

// DesiredTable is the whole table the configuration asks for. Its
// entries and their destinations are allocated together: a reload of a
// large table makes a handful of objects, not two per service.
func DesiredTable(cfg *config.Config, w Weights) Table {
	n, k := 0, 0
	for i := range cfg.Services {
		vips := len(kernelVIPs(&cfg.Services[i]))
		n += vips * destRoom(&cfg.Services[i])
		k += vips
	}
	entries := make([]Entry, k)
	dests := make([]ipvs.Destination, n)
	t := make(Table, k)
	k = 0
	for i := range cfg.Services {
		s := &cfg.Services[i]
		room := destRoom(s)
		for _, vip := range kernelVIPs(s) {
			// Full slice expression: an entry can never grow into the next.
			entries[k] = desiredEntry(s, vip, w, dests[:0:room], cfg.BGP != nil)
			dests = dests[room:]
			t[KeyOf(entries[k].Service)] = &entries[k]
			k++
		}
	}
	return t
}

// NextDesiredTable is DesiredTable for a configuration that replaces the
// one prev was built from (a reload). Every entry that comes out equal to
// prev's entry for its key is prev's own, so the diff's pointer check
// passes it by without a walk of its destinations; when all of them do,
// prev itself is returned. Equality is Go's == over the kernel's form of
// each field, so nothing that reaches the kernel can be left out of it.
//
// A large table is compared in parallel, a share of its services per CPU:
// Weights must be safe for concurrent use.
func NextDesiredTable(cfg *config.Config, w Weights, prev Table) Table {
	if len(prev) == 0 {
		return DesiredTable(cfg, w)
	}
	// One slot per kernel service: first[i] is service i's first.
	first := make([]int, len(cfg.Services)+1)
	for i := range cfg.Services {
		first[i+1] = first[i] + len(kernelVIPs(&cfg.Services[i]))
	}
	entries := make([]*Entry, first[len(cfg.Services)])
	var reused atomic.Int64
	inParallel(len(cfg.Services), func(lo, hi int) {
		n := 0
		for i := lo; i < hi; i++ {
			for j, vip := range kernelVIPs(&cfg.Services[i]) {
				var kept bool
				entries[first[i]+j], kept = nextEntry(&cfg.Services[i], vip, w, prev, cfg.BGP != nil)
				if kept {
					n++
				}
			}
		}
		reused.Add(int64(n))
	})
	if reused.Load() == int64(len(entries)) && len(prev) == len(entries) {
		// Kernel services are unique in a valid config, and each entry
		// is prev's entry of its key: as many as prev has are all of prev.
		return prev
	}
	t := make(Table, len(entries))
	for _, e := range entries {
		t[KeyOf(e.Service)] = e
	}
	return t
}

// nextEntry is s's desired entry: prev's own (kept) if s asks for the
// same.
func nextEntry(s *config.Service, vip netip.Addr, w Weights, prev Table, bgp bool) (e *Entry, kept bool) {
	svc := serviceFor(s, vip)
	old, ok := prev[KeyOf(svc)]
	// prev's destinations are sorted with no key twice: a config that
	// lists the same ones in that order asks for old itself. An ordered
	// entry also holds configured weights, which Dests do not show while
	// a server is down: it is compared whole.
	if ok && !old.Ordered && old.Name == s.Name && old.Service == svc && sameDests(s, vip, w, old.Dests, bgp) {
		return old, true
	}
	ne := desiredEntry(s, vip, w, make([]ipvs.Destination, 0, destRoom(s)), bgp)
	n := &ne
	if ok && sameEntry(n, old) {
		return old, true // the same table, its real servers in another order
	}
	return n, false
}

// parallelServices is the size of table from which NextDesiredTable
// shares the work among CPUs: below it, goroutines cost more than they
// save.
const parallelServices = 1024

// inParallel calls fn over consecutive shares of [0, n), one goroutine
// per CPU for large n, and returns when all are done.
func inParallel(n int, fn func(lo, hi int)) {
	workers := min(runtime.GOMAXPROCS(0), 8)
	if n < parallelServices || workers < 2 {
		fn(0, n)
		return
	}
	var wg sync.WaitGroup
	for k := range workers {
		wg.Go(func() { fn(n*k/workers, n*(k+1)/workers) })
	}
	wg.Wait()
}

// sameEntry reports whether two desired entries ask the kernel for the
// same thing, field for field.
func sameEntry(a, b *Entry) bool {
	return a.Name == b.Name && a.Service == b.Service && slices.Equal(a.Dests, b.Dests) &&
		a.Ordered == b.Ordered && slices.Equal(a.List, b.List)
}
