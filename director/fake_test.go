package director

import (
	"fmt"
	"os"
	"slices"
	"sync"

	"github.com/cloudflare/ipvs"
	"golang.org/x/sys/unix"
)

// fakeKernel is an in-memory IPVS with the kernel's error semantics:
// EEXIST for a duplicate, ESRCH for a missing service, ENOENT for a
// missing destination or an unknown scheduler. It counts every call.
// Like the kernel, it keeps each service's destinations in a list, a new
// one inserted at the head and dumped head first, with each one's
// last_weight (Entry.List: the weight added at, even 0, then the last
// non-zero weight written; docs/design/consistent-hashing.md §2).
type fakeKernel struct {
	mu      sync.Mutex
	table   Table
	order   []SvcKey // creation order, as the kernel lists
	cfg     ipvs.Config
	calls   map[string]int
	schedOK map[string]bool
	failOn  func(call string, svc ipvs.Service, d ipvs.Destination) error
	// tornDumps makes that many next service dumps skip their first
	// entry, as a dump torn by another namespace's changes does.
	tornDumps int
}

func newFakeKernel() *fakeKernel {
	ok := map[string]bool{}
	for _, s := range []string{"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh"} {
		ok[s] = true
	}
	return &fakeKernel{table: Table{}, calls: map[string]int{}, schedOK: ok, cfg: ipvs.Config{TCPTimeout: 900, TCPFinTimeout: 120, UDPTimeout: 300}}
}

func (f *fakeKernel) call(name string, s ipvs.Service, d ipvs.Destination) error {
	f.calls[name]++
	if f.failOn != nil {
		return f.failOn(name, s, d)
	}
	return nil
}

// mutations is how many calls changed (or tried to change) the table.
func (f *fakeKernel) mutations() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for k, v := range f.calls {
		if k != "Services" && k != "Destinations" && k != "Config" {
			n += v
		}
	}
	return n
}

func (f *fakeKernel) resetCalls() {
	f.mu.Lock()
	f.calls = map[string]int{}
	f.mu.Unlock()
}

func (f *fakeKernel) Services() ([]ipvs.ServiceExtended, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["Services"]++
	var out []ipvs.ServiceExtended
	for _, k := range f.order {
		// The kernel adds the hashed flag to every service it holds.
		s := f.table[k].Service
		s.Flags |= ipvs.ServiceHashed
		out = append(out, ipvs.ServiceExtended{Service: s})
	}
	if f.tornDumps > 0 && len(out) > 0 {
		f.tornDumps--
		out = out[1:]
	}
	if len(out) == 0 {
		return nil, os.ErrNotExist // as cloudflare/ipvs reports an empty dump
	}
	return out, nil
}

func (f *fakeKernel) Destinations(s ipvs.Service) ([]ipvs.DestinationExtended, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["Destinations"]++
	e, ok := f.table[KeyOf(s)]
	if !ok {
		return nil, unix.ESRCH
	}
	var out []ipvs.DestinationExtended
	for _, l := range e.List {
		d, _ := e.Dests.Get(l.Key)
		out = append(out, ipvs.DestinationExtended{Destination: d})
	}
	if len(out) == 0 {
		return nil, os.ErrNotExist
	}
	return out, nil
}

func (f *fakeKernel) CreateService(s ipvs.Service) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("CreateService", s, ipvs.Destination{}); err != nil {
		return err
	}
	if !f.schedOK[s.Scheduler] {
		return fmt.Errorf("scheduler %q: %w", s.Scheduler, unix.ENOENT)
	}
	k := KeyOf(s)
	if _, ok := f.table[k]; ok {
		return unix.EEXIST
	}
	f.table[k] = &Entry{Service: normalService(s)}
	f.order = append(f.order, k)
	return nil
}

func (f *fakeKernel) UpdateService(s ipvs.Service) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("UpdateService", s, ipvs.Destination{}); err != nil {
		return err
	}
	e, ok := f.table[KeyOf(s)]
	if !ok {
		return unix.ESRCH
	}
	if !f.schedOK[s.Scheduler] {
		return unix.ENOENT
	}
	e.Service = normalService(s)
	return nil
}

func (f *fakeKernel) RemoveService(s ipvs.Service) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("RemoveService", s, ipvs.Destination{}); err != nil {
		return err
	}
	k := KeyOf(s)
	if _, ok := f.table[k]; !ok {
		return unix.ESRCH
	}
	delete(f.table, k)
	f.order = slices.DeleteFunc(f.order, func(x SvcKey) bool { return x == k })
	return nil
}

func (f *fakeKernel) CreateDestination(s ipvs.Service, d ipvs.Destination) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("CreateDestination", s, d); err != nil {
		return err
	}
	e, ok := f.table[KeyOf(s)]
	if !ok {
		return unix.ESRCH
	}
	if _, ok := e.Dests.Get(DestKeyOf(d)); ok {
		return unix.EEXIST
	}
	e.Dests.put(d)
	e.List = slices.Insert(e.List, 0, ListDest{Key: DestKeyOf(d), Last: d.Weight, Known: true})
	return nil
}

func (f *fakeKernel) UpdateDestination(s ipvs.Service, d ipvs.Destination) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("UpdateDestination", s, d); err != nil {
		return err
	}
	e, ok := f.table[KeyOf(s)]
	if !ok {
		return unix.ESRCH
	}
	if _, ok := e.Dests.Get(DestKeyOf(d)); !ok {
		return unix.ENOENT
	}
	e.Dests.put(d)
	if d.Weight != 0 {
		i := slices.IndexFunc(e.List, func(l ListDest) bool { return l.Key == DestKeyOf(d) })
		e.List[i].Last = d.Weight
	}
	return nil
}

func (f *fakeKernel) RemoveDestination(s ipvs.Service, d ipvs.Destination) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("RemoveDestination", s, d); err != nil {
		return err
	}
	e, ok := f.table[KeyOf(s)]
	if !ok {
		return unix.ESRCH
	}
	if _, ok := e.Dests.Get(DestKeyOf(d)); !ok {
		return unix.ENOENT
	}
	e.Dests.remove(DestKeyOf(d))
	e.List = slices.DeleteFunc(e.List, func(l ListDest) bool { return l.Key == DestKeyOf(d) })
	return nil
}

func (f *fakeKernel) Config() (ipvs.Config, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["Config"]++
	return f.cfg, nil
}

func (f *fakeKernel) SetConfig(c ipvs.Config) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["SetConfig"]++
	f.cfg = c
	return nil
}
