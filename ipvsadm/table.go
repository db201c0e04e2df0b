package ipvsadm

import (
	"errors"
	"fmt"
	"net/netip"
	"os"

	"github.com/cloudflare/ipvs"
)

// Table is the kernel's IPVS table as ipvsadm shows it: the services in
// ipvsadm's order, each with its real servers in ipvsadm's order.
type Table struct {
	Info     ipvs.Info
	Services []Service
}

// Service is a virtual service with its real servers (destinations).
type Service struct {
	ipvs.ServiceExtended
	Dests []ipvs.DestinationExtended
}

// Reader is the read-only part of ipvs.Client that Read needs.
type Reader interface {
	Info() (ipvs.Info, error)
	Services() ([]ipvs.ServiceExtended, error)
	Destinations(ipvs.Service) ([]ipvs.DestinationExtended, error)
}

// Read reads the whole table from the kernel and sorts it the way
// `ipvsadm -L` and `ipvsadm -S` do.
func Read(c Reader) (*Table, error) {
	t, err := ReadUnsorted(c)
	if err != nil {
		return nil, err
	}
	t.Sort()
	return t, nil
}

// ReadUnsorted reads the table in the kernel's own order, as
// `ipvsadm --nosort` shows it.
func ReadUnsorted(c Reader) (*Table, error) {
	info, err := c.Info()
	if err != nil {
		return nil, fmt.Errorf("read IPVS info: %w", err)
	}
	svcs, err := c.Services()
	// cloudflare/ipvs reports an empty dump as os.ErrNotExist: for a
	// table that is simply an empty table.
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read IPVS services: %w", err)
	}
	t := &Table{Info: info, Services: make([]Service, 0, len(svcs))}
	seen := make(map[serviceID]bool, len(svcs))
	for _, s := range svcs {
		// The kernel resumes a multi-part service dump by an index that
		// counts every namespace's services (ip_vs_genl_dump_services),
		// so a change in another namespace mid-dump can repeat one of
		// ours. A namespace cannot hold one service twice: the repeat is
		// that artefact, and listing it would show a table that is not
		// there.
		id := idOf(s.Service)
		if seen[id] {
			continue
		}
		seen[id] = true
		dests, err := c.Destinations(s.Service)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("read real servers of %s: %w", describeService(s.Service), err)
		}
		t.Services = append(t.Services, Service{ServiceExtended: s, Dests: dests})
	}
	return t, nil
}

// serviceID is what identifies a virtual service in one namespace.
type serviceID struct {
	family   ipvs.AddressFamily
	fwmark   uint32
	protocol ipvs.Protocol
	addr     netip.Addr
	port     uint16
}

func idOf(s ipvs.Service) serviceID {
	if s.FWMark != 0 {
		return serviceID{family: s.Family, fwmark: s.FWMark}
	}
	return serviceID{family: s.Family, protocol: s.Protocol, addr: s.Address, port: s.Port}
}

// describeService names a service for error messages, in ipvsadm's
// save syntax.
func describeService(s ipvs.Service) string {
	if s.FWMark != 0 {
		if s.Family == ipvs.INET6 {
			return fmt.Sprintf("-f %d -6", s.FWMark)
		}
		return fmt.Sprintf("-f %d", s.FWMark)
	}
	return protocolOption(s.Protocol) + " " + addrPortNumeric(s.Family, s.Address, s.Port)
}

// Sort orders the services and each service's real servers exactly as
// ipvsadm 1.31 does. ipvsadm sorts with glibc's qsort, which is a merge
// sort, and with comparison functions that subtract 32-bit unsigned
// values and keep the wrapped difference as an int (libipvs.c:
// ipvs_cmp_services, ipvs_cmp_dests). So addresses or fwmarks more than
// 2^31 apart compare "backwards" (10.0.0.1 sorts after 172.16.0.1, and
// fwmark 4294967295 before every service without a fwmark), and the
// order is not even transitive. Replaying the same comparisons in the
// same merge sort reproduces ipvsadm's order in every case.
func (t *Table) Sort() {
	mergeSort(t.Services, func(a, b *Service) int { return compareServices(&a.Service, &b.Service) })
	for i := range t.Services {
		mergeSort(t.Services[i].Dests, func(a, b *ipvs.DestinationExtended) int {
			return compareDests(&a.Destination, &b.Destination)
		})
	}
}

// compareServices is libipvs's ipvs_cmp_services. For a fwmark service
// ipvsadm never reads the protocol, address or port from the kernel,
// so they are zero there.
func compareServices(s1, s2 *ipvs.Service) int {
	if r := int32(s1.FWMark - s2.FWMark); r != 0 {
		return int(r)
	}
	if r := int(s1.Family) - int(s2.Family); r != 0 {
		return r
	}
	p1, a1, port1 := serviceKey(s1)
	p2, a2, port2 := serviceKey(s2)
	if r := int(p1) - int(p2); r != 0 {
		return r
	}
	if r := compareAddrWords(s1.Family, a1, a2); r != 0 {
		return r
	}
	return int(port1) - int(port2)
}

func serviceKey(s *ipvs.Service) (ipvs.Protocol, [4]uint32, uint16) {
	if s.FWMark != 0 {
		return 0, [4]uint32{}, 0
	}
	return s.Protocol, addrWords(s.Address), s.Port
}

// compareDests is libipvs's ipvs_cmp_dests: the first destination's
// family decides how many address words are compared.
func compareDests(d1, d2 *ipvs.Destination) int {
	if r := compareAddrWords(d1.Family, addrWords(d1.Address), addrWords(d2.Address)); r != 0 {
		return r
	}
	return int(d1.Port) - int(d2.Port)
}

// compareAddrWords subtracts host-order 32-bit words as C does, keeping
// the wrapped difference as a signed int: that is ipvsadm's order.
func compareAddrWords(af ipvs.AddressFamily, a, b [4]uint32) int {
	if af != ipvs.INET6 {
		return int(int32(a[0] - b[0]))
	}
	for i := range a {
		if r := int32(a[i] - b[i]); r != 0 {
			return int(r)
		}
	}
	return 0
}

// addrWords lays an address out as the kernel's union nf_inet_addr: an
// IPv4 address in the first word, the rest zero.
func addrWords(a netip.Addr) [4]uint32 {
	var w [4]uint32
	switch {
	case a.Is4():
		b := a.As4()
		w[0] = uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	case a.Is6():
		b := a.As16()
		for i := range w {
			w[i] = uint32(b[4*i])<<24 | uint32(b[4*i+1])<<16 | uint32(b[4*i+2])<<8 | uint32(b[4*i+3])
		}
	}
	return w
}

// mergeSort is glibc's msort_with_tmp (the algorithm behind qsort in
// glibc 2.36, Debian 12's): split at n/2, sort both halves, merge taking
// from the left half while cmp(left, right) <= 0. With ipvsadm's
// non-transitive comparisons only this exact sequence of comparisons
// gives ipvsadm's order.
func mergeSort[T any](s []T, cmp func(a, b *T) int) {
	if len(s) <= 1 {
		return
	}
	mergeSortTmp(s, make([]T, len(s)), cmp)
}

func mergeSortTmp[T any](b, tmp []T, cmp func(a, b *T) int) {
	n := len(b)
	if n <= 1 {
		return
	}
	n1 := n / 2
	b1, b2 := b[:n1], b[n1:]
	mergeSortTmp(b1, tmp, cmp)
	mergeSortTmp(b2, tmp, cmp)
	i, j, k := 0, 0, 0
	for i < len(b1) && j < len(b2) {
		if cmp(&b1[i], &b2[j]) <= 0 {
			tmp[k] = b1[i]
			i++
		} else {
			tmp[k] = b2[j]
			j++
		}
		k++
	}
	// What is left of the right half is already in place at the end.
	k += copy(tmp[k:], b1[i:])
	copy(b, tmp[:k])
}
