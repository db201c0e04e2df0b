package ipvsdump

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/cloudflare/ipvs"
	"github.com/cloudflare/ipvs/netmask"
)

// Attribute numbers from linux/ip_vs.h.
const (
	cmdAttrService = 1
	cmdAttrDest    = 2

	svcAttrAF       = 1
	svcAttrProtocol = 2
	svcAttrAddr     = 3
	svcAttrPort     = 4
	svcAttrFWMark   = 5
	svcAttrSched    = 6
	svcAttrFlags    = 7
	svcAttrTimeout  = 8
	svcAttrNetmask  = 9
	svcAttrStats    = 10
	svcAttrStats64  = 12

	destAttrAddr         = 1
	destAttrPort         = 2
	destAttrFwdMethod    = 3
	destAttrWeight       = 4
	destAttrUThresh      = 5
	destAttrLThresh      = 6
	destAttrActiveConns  = 7
	destAttrInactConns   = 8
	destAttrPersistConns = 9
	destAttrStats        = 10
	destAttrAddrFamily   = 11
	destAttrStats64      = 12
	destAttrTunType      = 13
	destAttrTunPort      = 14
	destAttrTunFlags     = 15
)

// ErrMalformed is a message from the kernel that does not parse.
var ErrMalformed = errors.New("malformed IPVS netlink message")

// attrs walks a run of netlink attributes without copying them. The
// kernel is trusted to send IPVS messages, but not to be bug-free, so a
// length that overruns its buffer stops the walk with an error instead of
// a panic.
type attrs struct {
	b   []byte
	typ uint16
	val []byte
	err error
}

func (a *attrs) next() bool {
	if a.err != nil || len(a.b) == 0 {
		return false
	}
	if len(a.b) < 4 {
		a.err = fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(a.b))
		return false
	}
	l := int(binary.NativeEndian.Uint16(a.b[0:2]))
	if l < 4 || l > len(a.b) {
		a.err = fmt.Errorf("%w: attribute length %d of %d bytes", ErrMalformed, l, len(a.b))
		return false
	}
	// The top two bits are the nested and byte-order flags.
	a.typ = binary.NativeEndian.Uint16(a.b[2:4]) & 0x3fff
	a.val = a.b[4:l]
	a.b = a.b[min(align4(l), len(a.b)):]
	return true
}

func align4(n int) int { return (n + 3) &^ 3 }

// The kernel sends each value at its exact size; anything else is
// malformed rather than silently read short.
func (a *attrs) u8() uint8 {
	if len(a.val) != 1 {
		a.bad("u8")
		return 0
	}
	return a.val[0]
}

func (a *attrs) u16() uint16 {
	if len(a.val) != 2 {
		a.bad("u16")
		return 0
	}
	return binary.NativeEndian.Uint16(a.val)
}

func (a *attrs) u32() uint32 {
	if len(a.val) != 4 {
		a.bad("u32")
		return 0
	}
	return binary.NativeEndian.Uint32(a.val)
}

func (a *attrs) u64() uint64 {
	if len(a.val) != 8 {
		a.bad("u64")
		return 0
	}
	return binary.NativeEndian.Uint64(a.val)
}

// port is in network byte order.
func (a *attrs) port() uint16 {
	if len(a.val) != 2 {
		a.bad("port")
		return 0
	}
	return binary.BigEndian.Uint16(a.val)
}

func (a *attrs) bad(what string) {
	if a.err == nil {
		a.err = fmt.Errorf("%w: attribute %d: %d bytes for a %s", ErrMalformed, a.typ, len(a.val), what)
	}
}

// address reads an IPVS address attribute: always 16 bytes on the wire,
// of which an IPv4 address uses the first 4.
func address(b []byte, family ipvs.AddressFamily) (netip.Addr, error) {
	switch {
	case family == ipvs.INET && len(b) >= 4:
		return netip.AddrFrom4([4]byte(b[:4])), nil
	case family == ipvs.INET6 && len(b) == 16:
		return netip.AddrFrom16([16]byte(b)), nil
	}
	return netip.Addr{}, fmt.Errorf("%w: %d-byte address for family %d", ErrMalformed, len(b), family)
}

// decodeService reads one service message (after the genetlink header),
// as cloudflare/ipvs does.
func decodeService(b []byte) (ipvs.ServiceExtended, error) {
	var s ipvs.ServiceExtended
	outer := attrs{b: b}
	found := false
	for outer.next() {
		if outer.typ != cmdAttrService {
			continue
		}
		found = true
		var addr, mask []byte
		a := attrs{b: outer.val}
		for a.next() {
			switch a.typ {
			case svcAttrAF:
				s.Family = ipvs.AddressFamily(a.u16())
			case svcAttrProtocol:
				s.Protocol = ipvs.Protocol(a.u16())
			case svcAttrAddr:
				addr = a.val
			case svcAttrPort:
				s.Port = a.port()
			case svcAttrFWMark:
				s.FWMark = a.u32()
			case svcAttrSched:
				s.Scheduler = cString(a.val)
			case svcAttrFlags:
				// struct ip_vs_flags: the flags, then the mask.
				if len(a.val) != 8 {
					a.bad("flags")
				} else {
					s.Flags = ipvs.Flags(binary.NativeEndian.Uint32(a.val))
				}
			case svcAttrTimeout:
				s.Timeout = a.u32()
			case svcAttrNetmask:
				mask = a.val
			case svcAttrStats:
				a.err = decodeStats(a.val, &s.Stats, false)
			case svcAttrStats64:
				a.err = decodeStats(a.val, &s.Stats64, true)
			}
		}
		if a.err != nil {
			return s, a.err
		}
		if s.FWMark == 0 {
			ip, err := address(addr, s.Family)
			if err != nil {
				return s, err
			}
			s.Address = ip
		}
		if len(mask) == 4 {
			switch s.Family {
			case ipvs.INET:
				if m, ok := netmask.MaskFromSlice(mask); ok {
					s.Netmask = m
				}
			case ipvs.INET6:
				s.Netmask = netmask.MaskFrom(int(binary.NativeEndian.Uint32(mask)), 128)
			}
		}
	}
	if outer.err != nil {
		return s, outer.err
	}
	if !found {
		return s, fmt.Errorf("%w: no service attribute", ErrMalformed)
	}
	return s, nil
}

// decodeDestination reads one destination message; the family defaults
// to the service's, as kernels before 3.18 do not send one.
func decodeDestination(b []byte, family ipvs.AddressFamily) (ipvs.DestinationExtended, error) {
	var d ipvs.DestinationExtended
	outer := attrs{b: b}
	found := false
	for outer.next() {
		if outer.typ != cmdAttrDest {
			continue
		}
		found = true
		d.Family = family
		var addr []byte
		a := attrs{b: outer.val}
		for a.next() {
			switch a.typ {
			case destAttrAddr:
				addr = a.val
			case destAttrPort:
				d.Port = a.port()
			case destAttrFwdMethod:
				d.FwdMethod = ipvs.ForwardType(a.u32())
			case destAttrWeight:
				d.Weight = a.u32()
			case destAttrUThresh:
				d.UpperThreshold = a.u32()
			case destAttrLThresh:
				d.LowerThreshold = a.u32()
			case destAttrActiveConns:
				d.ActiveConnections = a.u32()
			case destAttrInactConns:
				d.InactiveConnections = a.u32()
			case destAttrPersistConns:
				d.PersistentConnections = a.u32()
			case destAttrAddrFamily:
				d.Family = ipvs.AddressFamily(a.u16())
			case destAttrTunType:
				d.TunnelType = ipvs.TunnelType(a.u8())
			case destAttrTunPort:
				d.TunnelPort = a.port()
			case destAttrTunFlags:
				d.TunnelFlags = ipvs.TunnelFlags(a.u16())
			case destAttrStats:
				a.err = decodeStats(a.val, &d.Stats, false)
			case destAttrStats64:
				a.err = decodeStats(a.val, &d.Stats64, true)
			}
		}
		if a.err != nil {
			return d, a.err
		}
		ip, err := address(addr, d.Family)
		if err != nil {
			return d, err
		}
		d.Address = ip
	}
	if outer.err != nil {
		return d, outer.err
	}
	if !found {
		return d, fmt.Errorf("%w: no destination attribute", ErrMalformed)
	}
	return d, nil
}

// decodeStats reads struct ip_vs_stats attributes: 32-bit counters and
// rates except the byte counters in the old block, all 64-bit in the
// new one.
func decodeStats(b []byte, st *ipvs.Stats, wide bool) error {
	a := attrs{b: b}
	for a.next() {
		var v uint64
		switch {
		case a.typ > 10:
			continue // padding
		case wide || a.typ == 4 || a.typ == 5:
			v = a.u64()
		default:
			v = uint64(a.u32())
		}
		switch a.typ {
		case 1:
			st.Connections = v
		case 2:
			st.IncomingPackets = v
		case 3:
			st.OutgoingPackets = v
		case 4:
			st.IncomingBytes = v
		case 5:
			st.OutgoingBytes = v
		case 6:
			st.ConnectionRate = v
		case 7:
			st.IncomingPacketRate = v
		case 8:
			st.OutgoingPacketRate = v
		case 9:
			st.IncomingByteRate = v
		case 10:
			st.OutgoingByteRate = v
		}
	}
	return a.err
}

// cString is a NUL-terminated string attribute.
func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}
