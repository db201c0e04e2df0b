// Package director turns the configuration into kernel IPVS state and
// keeps the kernel saying it: it computes the desired table, diffs it with
// a cached view of the kernel's, applies only the difference, and repairs
// drift on a timer.
package director

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"sync"

	"github.com/cloudflare/ipvs"
)

// Kernel is the part of IPVS the director drives. *ipvs.Client satisfies
// it; tests use a fake.
type Kernel interface {
	Services() ([]ipvs.ServiceExtended, error)
	Destinations(ipvs.Service) ([]ipvs.DestinationExtended, error)
	CreateService(ipvs.Service) error
	UpdateService(ipvs.Service) error
	RemoveService(ipvs.Service) error
	CreateDestination(ipvs.Service, ipvs.Destination) error
	UpdateDestination(ipvs.Service, ipvs.Destination) error
	RemoveDestination(ipvs.Service, ipvs.Destination) error
	Config() (ipvs.Config, error)
	SetConfig(ipvs.Config) error
}

// SvcKey identifies a virtual service the way the kernel does.
type SvcKey struct {
	Addr   netip.Addr
	FWMark uint32
	Port   uint16
	// The kernel's address family and protocol numbers each fit a byte.
	// So held, the key has no padding, and a map hashes and compares it
	// as one block of memory: a reload of a large table looks up every
	// service several times.
	Family   uint8
	Protocol uint8
}

// KeyOf returns the identity of a service.
func KeyOf(s ipvs.Service) SvcKey {
	if s.FWMark != 0 {
		return SvcKey{FWMark: s.FWMark, Family: uint8(s.Family)}
	}
	return SvcKey{Family: uint8(s.Family), Protocol: uint8(s.Protocol), Addr: s.Address, Port: s.Port}
}

func (k SvcKey) String() string {
	if k.FWMark != 0 {
		fam := "ipv4"
		if ipvs.AddressFamily(k.Family) == ipvs.INET6 {
			fam = "ipv6"
		}
		return fmt.Sprintf("fwmark %d/%s", k.FWMark, fam)
	}
	proto := map[ipvs.Protocol]string{ipvs.TCP: "tcp", ipvs.UDP: "udp", ipvs.SCTP: "sctp"}[ipvs.Protocol(k.Protocol)]
	return fmt.Sprintf("%s/%s", netip.AddrPortFrom(k.Addr, k.Port), proto)
}

// DestKey identifies a destination within its service.
type DestKey struct {
	Addr netip.Addr
	Port uint16
}

// DestKeyOf returns the identity of a destination.
func DestKeyOf(d ipvs.Destination) DestKey { return DestKey{Addr: d.Address, Port: d.Port} }

func (k DestKey) String() string { return netip.AddrPortFrom(k.Addr, k.Port).String() }

// Dests are one service's destinations, sorted by DestKey. Two of them
// are compared in one walk, with no hashing, and building one is one
// allocation: a no-op reconcile of a large table is mostly this.
type Dests []ipvs.Destination

// makeDests sorts ds into a Dests. Of two with the same key, the later
// one is kept, as assigning them in turn to a map would.
func makeDests(ds []ipvs.Destination) Dests {
	if !slices.IsSortedFunc(ds, compareDest) {
		slices.SortStableFunc(ds, compareDest)
	}
	out := ds[:0]
	for i, d := range ds {
		if i+1 < len(ds) && sameKey(d, ds[i+1]) {
			continue
		}
		out = append(out, d)
	}
	return Dests(out)
}

func (ds Dests) find(k DestKey) (int, bool) {
	return slices.BinarySearchFunc(ds, k, func(d ipvs.Destination, k DestKey) int {
		return compareDestKey(DestKeyOf(d), k)
	})
}

// Get returns the destination with key k.
func (ds Dests) Get(k DestKey) (ipvs.Destination, bool) {
	if i, ok := ds.find(k); ok {
		return ds[i], true
	}
	return ipvs.Destination{}, false
}

// put adds d, or replaces the destination with its key.
func (ds *Dests) put(d ipvs.Destination) {
	i, ok := ds.find(DestKeyOf(d))
	if ok {
		(*ds)[i] = d
		return
	}
	*ds = slices.Insert(*ds, i, d)
}

// remove deletes the destination with key k, if there is one.
func (ds *Dests) remove(k DestKey) {
	if i, ok := ds.find(k); ok {
		*ds = slices.Delete(*ds, i, i+1)
	}
}

// sameKey reports whether a and b are the same destination of a service.
func sameKey(a, b ipvs.Destination) bool { return a.Address == b.Address && a.Port == b.Port }

func compareDest(a, b ipvs.Destination) int { return compareDestKey(DestKeyOf(a), DestKeyOf(b)) }

// Entry is one service with its destinations.
type Entry struct {
	Name    string // the config's name; empty for services read from the kernel
	Service ipvs.Service
	Dests   Dests

	// List is the kernel's list of destinations, head first, for a
	// service whose scheduler builds its lookup table from that order
	// (mh, sh; listOrdered): on a view entry as dumped and as changed
	// since, with each last_weight as far as known; on an Ordered desired
	// entry, the canonical list with each configured weight. See order.go.
	List []ListDest
	// Ordered, on a desired entry, asks for List exactly: order and last
	// weights (bgp mode).
	Ordered bool

	// matches, on a view entry, is the desired entry it was last found
	// equal to. Desired entries are never modified (a change makes a new
	// one) and a view entry is replaced whenever the kernel is read
	// differently, so while both pointers hold, there is nothing to
	// compare: that keeps a no-op reconcile of a large table cheap.
	matches *Entry
}

// Table is a whole IPVS table, desired or as the kernel holds it.
type Table map[SvcKey]*Entry

// The kernel reports flags the director never sets (hashed): they must
// not count as a difference.
const serviceFlagMask = ipvs.ServicePersistent | ipvs.ServiceOnePacket |
	ipvs.ServiceSchedulerOpt1 | ipvs.ServiceSchedulerOpt2 | ipvs.ServiceSchedulerOpt3

// normalService strips what the kernel adds to what was configured.
func normalService(s ipvs.Service) ipvs.Service {
	s.Flags &= serviceFlagMask
	if s.FWMark != 0 {
		s.Address, s.Port, s.Protocol = netip.Addr{}, 0, 0
	}
	return s
}

// sameService reports whether two services of the same key need no edit.
func sameService(a, b ipvs.Service) bool {
	a, b = normalService(a), normalService(b)
	return a.Scheduler == b.Scheduler && a.Flags == b.Flags && a.Timeout == b.Timeout &&
		a.Netmask.Bits() == b.Netmask.Bits()
}

// sameDest reports whether two destinations of the same key need no edit.
func sameDest(a, b ipvs.Destination) bool {
	return a.FwdMethod == b.FwdMethod && a.Weight == b.Weight &&
		a.UpperThreshold == b.UpperThreshold && a.LowerThreshold == b.LowerThreshold &&
		a.TunnelType == b.TunnelType && a.TunnelPort == b.TunnelPort && a.TunnelFlags == b.TunnelFlags
}

// ReadTable dumps the kernel's whole table. The kernel answers one
// destination dump per service, so with extra handles the dumps are
// spread over their sockets.
func ReadTable(k Kernel, extra ...Kernel) (Table, error) {
	svcs, err := readServices(k)
	if err != nil {
		return nil, err
	}
	entries, err := readDests(append([]Kernel{k}, extra...), svcs)
	if err != nil {
		return nil, err
	}
	t := make(Table, len(entries))
	for _, e := range entries {
		t[KeyOf(e.Service)] = e
	}
	return t, nil
}

// readServices dumps the services alone: one request for the whole table.
func readServices(k Kernel) ([]ipvs.Service, error) {
	svcs, err := k.Services()
	// cloudflare/ipvs reports an empty dump as os.ErrNotExist.
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read IPVS services: %w", err)
	}
	out := make([]ipvs.Service, len(svcs))
	for i, s := range svcs {
		out[i] = s.Service
	}
	return out, nil
}

// readDests dumps the destinations of each service, spread over kernels.
func readDests(kernels []Kernel, svcs []ipvs.Service) ([]*Entry, error) {
	entries := make([]*Entry, len(svcs))
	errs := make([]error, len(svcs))
	var wg sync.WaitGroup
	for w, kk := range kernels {
		wg.Add(1)
		go func(w int, kk Kernel) {
			defer wg.Done()
			for i := w; i < len(svcs); i += len(kernels) {
				s := svcs[i]
				dests, err := kk.Destinations(s)
				if err != nil && !errors.Is(err, os.ErrNotExist) {
					errs[i] = fmt.Errorf("read destinations of %s: %w", KeyOf(s), err)
					return
				}
				ds := make([]ipvs.Destination, len(dests))
				for j := range dests {
					ds[j] = dests[j].Destination
				}
				// The dump is in list order; makeDests sorts ds in place.
				list := dumpList(s.Scheduler, ds)
				entries[i] = &Entry{Service: normalService(s), Dests: makeDests(ds), List: list}
			}
		}(w, kk)
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return entries, nil
}
