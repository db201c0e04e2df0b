package ipvsadm

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/cloudflare/ipvs"
)

// addrString is glibc's inet_ntop for the given family. Go's
// netip.Addr.String differs from glibc for IPv4-compatible IPv6
// addresses (glibc writes ::1.2.3.4, Go ::102:304), so the IPv6 form is
// glibc's algorithm (resolv/inet_ntop.c) rather than Go's.
func addrString(af ipvs.AddressFamily, a netip.Addr) string {
	if af != ipvs.INET6 {
		if !a.IsValid() {
			return "0.0.0.0"
		}
		if a.Is4In6() {
			a = a.Unmap()
		}
		if a.Is6() {
			// An IPv4 family with an IPv6 address: ipvsadm would print
			// the first four bytes.
			b := a.As16()
			return netip.AddrFrom4([4]byte{b[0], b[1], b[2], b[3]}).String()
		}
		return a.String()
	}
	var b [16]byte
	if a.Is4() {
		// The kernel's union nf_inet_addr: IPv4 in the first word.
		b4 := a.As4()
		copy(b[:], b4[:])
	} else if a.IsValid() {
		b = a.As16()
	}
	return inetNtop6(b)
}

func inetNtop6(b [16]byte) string {
	var words [8]int
	for i := range words {
		words[i] = int(b[2*i])<<8 | int(b[2*i+1])
	}
	// The longest run of at least two zero words, the first on a tie.
	bestBase, bestLen, curBase, curLen := -1, 0, -1, 0
	for i, w := range words {
		if w == 0 {
			if curBase == -1 {
				curBase, curLen = i, 1
			} else {
				curLen++
			}
			continue
		}
		if curBase != -1 {
			if bestBase == -1 || curLen > bestLen {
				bestBase, bestLen = curBase, curLen
			}
			curBase = -1
		}
	}
	if curBase != -1 && (bestBase == -1 || curLen > bestLen) {
		bestBase, bestLen = curBase, curLen
	}
	if bestBase != -1 && bestLen < 2 {
		bestBase = -1
	}
	var s strings.Builder
	for i := 0; i < 8; i++ {
		if bestBase != -1 && i >= bestBase && i < bestBase+bestLen {
			if i == bestBase {
				s.WriteByte(':')
			}
			continue
		}
		if i != 0 {
			s.WriteByte(':')
		}
		// An embedded IPv4 address: ::a.b.c.d or ::ffff:a.b.c.d.
		if i == 6 && bestBase == 0 && (bestLen == 6 || (bestLen == 5 && words[5] == 0xffff)) {
			s.WriteString(netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}).String())
			return s.String()
		}
		s.WriteString(strconv.FormatInt(int64(words[i]), 16))
	}
	if bestBase != -1 && bestBase+bestLen == 8 {
		s.WriteByte(':')
	}
	return s.String()
}

// addrPortNumeric is ipvsadm's addrport_to_anyname with FMT_NUMERIC:
// IPv6 in brackets.
func addrPortNumeric(af ipvs.AddressFamily, a netip.Addr, port uint16) string {
	return joinHostPort(af, addrString(af, a), strconv.Itoa(int(port)))
}

// joinHostPort brackets every family but IPv4, as ipvsadm does, and
// keeps at most 59 bytes: ipvsadm formats into a 60-byte buffer.
func joinHostPort(af ipvs.AddressFamily, host, port string) string {
	var s string
	if af == ipvs.INET {
		s = host + ":" + port
	} else {
		s = "[" + host + "]:" + port
	}
	if len(s) > 59 {
		s = s[:59]
	}
	return s
}

// protocolOption is ipvsadm's option_from_protocol, with the fallback
// print_service_entry uses for protocols it does not know.
func protocolOption(p ipvs.Protocol) string {
	switch p {
	case ipvs.TCP:
		return "-t"
	case ipvs.UDP:
		return "-u"
	case ipvs.SCTP:
		return "--sctp-service"
	}
	return "--xxx-service"
}

// protocolName is ipvsadm's protocol_name.
func protocolName(p ipvs.Protocol) string {
	switch p {
	case ipvs.TCP:
		return "TCP"
	case ipvs.UDP:
		return "UDP"
	case ipvs.SCTP:
		return "SCTP"
	}
	return "?"
}
