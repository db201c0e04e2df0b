package director

import (
	"github.com/cloudflare/ipvs"
	"github.com/cloudflare/ipvs/netmask"
	"github.com/directorlb/director/config"
)

// Weights is the one place that decides the weight the kernel holds for a
// real server right now. Health checks and manual drain feed it; the
// director only asks. present false means the destination must not be in
// the table at all (on_failure: remove).
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

// ServiceOf converts a configured service to the kernel's form.
func ServiceOf(s *config.Service) ipvs.Service {
	out := ipvs.Service{Scheduler: s.Scheduler, Family: ipvs.INET}
	bits := 32
	if s.IPv6 {
		out.Family, bits = ipvs.INET6, 128
	}
	if s.FWMark != 0 {
		out.FWMark = s.FWMark
	} else {
		out.Address, out.Port = s.VIP, s.Port
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
		mask = s.PersistenceMask
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
	d := ipvs.Destination{
		Address:        rs.Address,
		Port:           rs.Port,
		Weight:         uint32(weight),
		UpperThreshold: rs.UpperThreshold,
		LowerThreshold: rs.LowerThreshold,
		Family:         ipvs.INET,
	}
	if rs.Address.Is6() {
		d.Family = ipvs.INET6
	}
	switch rs.Forward {
	case config.Direct:
		d.FwdMethod = ipvs.DirectRoute
	case config.Tunnel:
		d.FwdMethod = ipvs.Tunnel
		d.TunnelType = map[config.TunnelType]ipvs.TunnelType{config.IPIP: ipvs.IPIP, config.GUE: ipvs.GUE, config.GRE: ipvs.GRE}[rs.Tunnel.Type]
		d.TunnelPort = rs.Tunnel.Port
		d.TunnelFlags = map[string]ipvs.TunnelFlags{"csum": ipvs.TunnelEncapChecksum, "remcsum": ipvs.TunnelEncapRemoteChecksum}[rs.Tunnel.Checksum]
	default:
		d.FwdMethod = ipvs.Masquerade
	}
	return d
}

// DesiredEntry is the kernel state one configured service should have
// now. The sorry server is in it only while no real server can take
// traffic (none present with a weight above zero).
func DesiredEntry(s *config.Service, w Weights) *Entry {
	e := desiredEntry(s, w, make([]ipvs.Destination, 0, destRoom(s)))
	return &e
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
func desiredEntry(s *config.Service, w Weights, buf []ipvs.Destination) Entry {
	available := false
	for i := range s.RealServers {
		rs := &s.RealServers[i]
		weight, present := w.Weight(s, rs)
		if !present {
			continue
		}
		if weight > 0 {
			available = true
		}
		buf = append(buf, DestinationOf(rs, weight))
	}
	if s.SorryServer != nil && !available {
		buf = append(buf, DestinationOf(s.SorryServer, max(s.SorryServer.Weight, 1)))
	}
	return Entry{Name: s.Name, Service: ServiceOf(s), Dests: makeDests(buf)}
}

// DesiredTable is the whole table the configuration asks for. Its
// entries and their destinations are allocated together: a reload of a
// large table makes a handful of objects, not two per service.
func DesiredTable(cfg *config.Config, w Weights) Table {
	n := 0
	for i := range cfg.Services {
		n += destRoom(&cfg.Services[i])
	}
	entries := make([]Entry, len(cfg.Services))
	dests := make([]ipvs.Destination, n)
	t := make(Table, len(cfg.Services))
	for i := range cfg.Services {
		s := &cfg.Services[i]
		room := destRoom(s)
		// Full slice expression: an entry can never grow into the next.
		entries[i] = desiredEntry(s, w, dests[:0:room])
		dests = dests[room:]
		t[KeyOf(entries[i].Service)] = &entries[i]
	}
	return t
}
