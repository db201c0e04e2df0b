package ipvsadm

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/cloudflare/ipvs"
)

// WriteJSON writes t as the JSON document of `directorctl list --json`,
// in t's order, indented by two spaces. Every key is always present
// (null only for "tunnel" of a real server that is not tunnelled), so
// scripts need no existence checks; keys may be added, never renamed or
// removed.
//
//	{
//	  "version": "1.2.1",                 IPVS version of the kernel
//	  "connection_table_size": 4096,
//	  "services": [{
//	    "protocol": "tcp",                tcp | udp | sctp; "" for a fwmark service
//	    "address": "192.0.2.10",          "" for a fwmark service
//	    "port": 80,                       0 for a fwmark service
//	    "fwmark": 0,                      0 unless a fwmark service
//	    "family": "inet",                 inet | inet6
//	    "scheduler": "wlc",
//	    "flags": ["persistent", "ops", "sh-port"],
//	                                      persistent, ops, and the scheduler flags
//	                                      under ipvsadm's names for the scheduler:
//	                                      sh-fallback sh-port | mh-fallback mh-port |
//	                                      flag-1 flag-2 flag-3
//	    "persistence": 300,               persistence timeout in seconds, 0 if not persistent
//	    "netmask": "255.255.255.0",       persistence granularity: an IPv4 mask, or an
//	                                      IPv6 prefix length as a string ("64")
//	    "stats": {"connections": 0, "packets_in": 0, "packets_out": 0,
//	              "bytes_in": 0, "bytes_out": 0},        counters since creation
//	    "rates": {"connections": 0, "packets_in": 0, "packets_out": 0,
//	              "bytes_in": 0, "bytes_out": 0},        per second, the kernel's estimate
//	    "destinations": [{
//	      "address": "10.0.1.11",
//	      "port": 80,
//	      "family": "inet",
//	      "forward": "masq",              masq | local | tunnel | route | bypass
//	      "weight": 1,
//	      "active_connections": 0,
//	      "inactive_connections": 0,
//	      "persistent_connections": 0,
//	      "thresholds": {"upper": 0, "lower": 0},        0: no limit
//	      "tunnel": {"type": "gue", "port": 6080, "checksum": "csum"},
//	                                      null unless forward is tunnel; type ipip | gue |
//	                                      gre, port 0 unless gue, checksum nocsum | csum |
//	                                      remcsum
//	      "stats": {...}, "rates": {...}  as for the service
//	    }]
//	  }]
//	}
func WriteJSON(w io.Writer, t *Table) error {
	doc := jsonTable{
		Version:             fmt.Sprintf("%d.%d.%d", t.Info.Version[0]&0xff, t.Info.Version[1]&0xff, t.Info.Version[2]&0xff),
		ConnectionTableSize: t.Info.ConnectionTableSize,
		Services:            make([]jsonService, 0, len(t.Services)),
	}
	for i := range t.Services {
		doc.Services = append(doc.Services, newJSONService(&t.Services[i]))
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return fmt.Errorf("encode IPVS table as JSON: %w", err)
	}
	if _, err := w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("write IPVS table: %w", err)
	}
	return nil
}

type jsonTable struct {
	Version             string        `json:"version"`
	ConnectionTableSize uint32        `json:"connection_table_size"`
	Services            []jsonService `json:"services"`
}

type jsonService struct {
	Protocol     string     `json:"protocol"`
	Address      string     `json:"address"`
	Port         uint16     `json:"port"`
	FWMark       uint32     `json:"fwmark"`
	Family       string     `json:"family"`
	Scheduler    string     `json:"scheduler"`
	Flags        []string   `json:"flags"`
	Persistence  uint32     `json:"persistence"`
	Netmask      string     `json:"netmask"`
	Stats        jsonCounts `json:"stats"`
	Rates        jsonCounts `json:"rates"`
	Destinations []jsonDest `json:"destinations"`
}

type jsonDest struct {
	Address               string         `json:"address"`
	Port                  uint16         `json:"port"`
	Family                string         `json:"family"`
	Forward               string         `json:"forward"`
	Weight                uint32         `json:"weight"`
	ActiveConnections     uint32         `json:"active_connections"`
	InactiveConnections   uint32         `json:"inactive_connections"`
	PersistentConnections uint32         `json:"persistent_connections"`
	Thresholds            jsonThresholds `json:"thresholds"`
	Tunnel                *jsonTunnel    `json:"tunnel"`
	Stats                 jsonCounts     `json:"stats"`
	Rates                 jsonCounts     `json:"rates"`
}

type jsonThresholds struct {
	Upper uint32 `json:"upper"`
	Lower uint32 `json:"lower"`
}

type jsonTunnel struct {
	Type     string `json:"type"`
	Port     uint16 `json:"port"`
	Checksum string `json:"checksum"`
}

type jsonCounts struct {
	Connections uint64 `json:"connections"`
	PacketsIn   uint64 `json:"packets_in"`
	PacketsOut  uint64 `json:"packets_out"`
	BytesIn     uint64 `json:"bytes_in"`
	BytesOut    uint64 `json:"bytes_out"`
}

func counts(s ipvs.Stats) (total, rate jsonCounts) {
	return jsonCounts{s.Connections, s.IncomingPackets, s.OutgoingPackets, s.IncomingBytes, s.OutgoingBytes},
		jsonCounts{s.ConnectionRate, s.IncomingPacketRate, s.OutgoingPacketRate, s.IncomingByteRate, s.OutgoingByteRate}
}

func familyName(af ipvs.AddressFamily) string {
	switch af {
	case ipvs.INET:
		return "inet"
	case ipvs.INET6:
		return "inet6"
	}
	return fmt.Sprintf("af%d", uint16(af))
}

func newJSONService(se *Service) jsonService {
	s := &se.Service
	j := jsonService{
		Family:       familyName(s.Family),
		Scheduler:    s.Scheduler,
		Flags:        []string{},
		Netmask:      jsonNetmask(s),
		Destinations: make([]jsonDest, 0, len(se.Dests)),
	}
	if s.FWMark != 0 {
		j.FWMark = s.FWMark
	} else {
		if name, ok := protoName(s.Protocol); ok {
			j.Protocol = name
		} else {
			j.Protocol = fmt.Sprintf("%d", uint16(s.Protocol))
		}
		j.Address = addrString(s.Family, s.Address)
		j.Port = s.Port
	}
	if s.Flags&ipvs.ServicePersistent != 0 {
		j.Flags = append(j.Flags, "persistent")
		j.Persistence = s.Timeout
	}
	if s.Flags&ipvs.ServiceOnePacket != 0 {
		j.Flags = append(j.Flags, "ops")
	}
	for i, f := range []ipvs.Flags{ipvs.ServiceSchedulerOpt1, ipvs.ServiceSchedulerOpt2, ipvs.ServiceSchedulerOpt3} {
		if s.Flags&f == 0 {
			continue
		}
		name := schedFlagNames(&ipvs.Service{Scheduler: s.Scheduler, Flags: f})
		if name == "" {
			// A flag the scheduler has no name for stays visible.
			name = fmt.Sprintf("flag-%d", i+1)
		}
		j.Flags = append(j.Flags, name)
	}
	j.Stats, j.Rates = counts(stats(se.Stats64, se.Stats))
	for i := range se.Dests {
		j.Destinations = append(j.Destinations, newJSONDest(&se.Dests[i]))
	}
	return j
}

func jsonNetmask(s *ipvs.Service) string {
	if m, ok := persistenceMask(s); ok {
		return m
	}
	if s.Family == ipvs.INET6 {
		return "128"
	}
	return "255.255.255.255"
}

func newJSONDest(e *ipvs.DestinationExtended) jsonDest {
	d := &e.Destination
	j := jsonDest{
		Address:               addrString(d.Family, d.Address),
		Port:                  d.Port,
		Family:                familyName(d.Family),
		Weight:                d.Weight,
		ActiveConnections:     e.ActiveConnections,
		InactiveConnections:   e.InactiveConnections,
		PersistentConnections: e.PersistentConnections,
		Thresholds:            jsonThresholds{Upper: d.UpperThreshold, Lower: d.LowerThreshold},
	}
	switch d.FwdMethod & 7 {
	case ipvs.Masquerade:
		j.Forward = "masq"
	case ipvs.Local:
		j.Forward = "local"
	case ipvs.Tunnel:
		j.Forward = "tunnel"
		t := &jsonTunnel{Port: d.TunnelPort}
		switch d.TunnelType {
		case ipvs.IPIP:
			t.Type = "ipip"
		case ipvs.GUE:
			t.Type = "gue"
		case ipvs.GRE:
			t.Type = "gre"
		default:
			t.Type = fmt.Sprintf("%d", uint8(d.TunnelType))
		}
		switch d.TunnelFlags {
		case ipvs.TunnelEncapNoChecksum:
			t.Checksum = "nocsum"
		case ipvs.TunnelEncapChecksum:
			t.Checksum = "csum"
		case ipvs.TunnelEncapRemoteChecksum:
			t.Checksum = "remcsum"
		default:
			t.Checksum = fmt.Sprintf("%d", uint16(d.TunnelFlags))
		}
		j.Tunnel = t
	case ipvs.DirectRoute:
		j.Forward = "route"
	case ipvs.Bypass:
		j.Forward = "bypass"
	default:
		j.Forward = fmt.Sprintf("%d", uint32(d.FwdMethod&7))
	}
	j.Stats, j.Rates = counts(stats(e.Stats64, e.Stats))
	return j
}
