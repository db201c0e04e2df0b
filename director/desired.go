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
		out.Protocol = map[config.Protocol]ipvs.Protocol{config.TCP: ipvs.TCP, config.UDP: ipvs.UDP, config.SCTP: ipvs.SCTP}[s.Protocol]
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
	e := &Entry{Name: s.Name, Service: ServiceOf(s), Dests: make(map[DestKey]ipvs.Destination, len(s.RealServers))}
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
		d := DestinationOf(rs, weight)
		e.Dests[DestKeyOf(d)] = d
	}
	if s.SorryServer != nil && !available {
		d := DestinationOf(s.SorryServer, max(s.SorryServer.Weight, 1))
		e.Dests[DestKeyOf(d)] = d
	}
	return e
}

// DesiredTable is the whole table the configuration asks for.
func DesiredTable(cfg *config.Config, w Weights) Table {
	t := make(Table, len(cfg.Services))
	for i := range cfg.Services {
		e := DesiredEntry(&cfg.Services[i], w)
		t[KeyOf(e.Service)] = e
	}
	return t
}
