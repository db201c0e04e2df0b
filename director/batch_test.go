package director

import (
	"cmp"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/cloudflare/ipvs"
	"github.com/directorlb/director/config"
	"github.com/directorlb/director/ipvsdump"
	"golang.org/x/sys/unix"
)

// batchFake is fakeKernel with a Batch that behaves as the kernel does
// with a buffer of requests: each made in turn, on after a failure.
type batchFake struct {
	*fakeKernel
	mu               sync.Mutex // two workers share it
	batches, batched int
}

func (b *batchFake) Batch(chs []ipvsdump.Change) []error {
	b.mu.Lock()
	b.batches++
	b.batched += len(chs)
	b.mu.Unlock()
	errs := make([]error, len(chs))
	for i, ch := range chs {
		switch ch.Cmd {
		case ipvsdump.NewService:
			errs[i] = b.CreateService(ch.Service)
		case ipvsdump.SetService:
			errs[i] = b.UpdateService(ch.Service)
		case ipvsdump.DelService:
			errs[i] = b.RemoveService(ch.Service)
		case ipvsdump.NewDest:
			errs[i] = b.CreateDestination(ch.Service, ch.Dest)
		case ipvsdump.SetDest:
			errs[i] = b.UpdateDestination(ch.Service, ch.Dest)
		case ipvsdump.DelDest:
			errs[i] = b.RemoveDestination(ch.Service, ch.Dest)
		default:
			errs[i] = fmt.Errorf("command %d: %w", ch.Cmd, unix.EINVAL)
		}
	}
	return errs
}

// batchCfg has n services of every shape the director batches, and
// some it does not (mh, sh), each with a few real servers.
func batchCfg(n int) *config.Config {
	var svcs []config.Service
	for i := range n {
		s := svc(fmt.Sprintf("s%d", i), fmt.Sprintf("192.0.%d.%d", 2+i/200, i%200+1), 80,
			rs("10.0.0.1:80", 1), rs("10.0.0.2:80", 2), rs("10.0.0.3:80", 3))
		switch i % 5 {
		case 1:
			s.Protocol = config.UDP
		case 2:
			s.Scheduler = "mh"
		case 3:
			s.Scheduler = "sh"
		case 4:
			s.VIP, s.IPv6 = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(i)}), true
			s.RealServers = []config.RealServer{rs("[2001:db8::1]:80", 1), rs("[2001:db8::2]:80", 4)}
		}
		svcs = append(svcs, s)
	}
	return cfgOf(svcs...)
}

// sameKernels checks two fakes hold the same table, list order included.
func sameKernels(t *testing.T, got, want *fakeKernel) {
	t.Helper()
	if len(got.table) != len(want.table) {
		t.Fatalf("%d services, want %d", len(got.table), len(want.table))
	}
	for k, w := range want.table {
		g, ok := got.table[k]
		if !ok {
			t.Fatalf("service %s missing", k)
		}
		if g.Service != w.Service || !slices.Equal(g.Dests, w.Dests) || !slices.Equal(g.List, w.List) {
			t.Fatalf("service %s:\n got %+v\nwant %+v", k, *g, *w)
		}
	}
}

// applyBoth runs the same scenario through a plain fake and a batching
// one, on two sockets as directord does, and checks both end the same:
// the same table and the same account of what was applied and refused.
func applyBoth(t *testing.T, cfg *config.Config, setup func(*fakeKernel)) (plain, batch Result, bk *batchFake) {
	t.Helper()
	return applyBothAfter(t, nil, cfg, setup)
}

// applyBothAfter is applyBoth from a kernel that holds before, as the
// view has it.
func applyBothAfter(t *testing.T, before, cfg *config.Config, setup func(*fakeKernel)) (plain, batch Result, bk *batchFake) {
	t.Helper()
	run := func(k Kernel, extra Kernel, f *fakeKernel) Result {
		r := NewReconciler(k, quietLog(), "")
		r.SetWorkers(extra)
		if _, err := r.Refresh(); err != nil {
			t.Fatal(err)
		}
		if before != nil {
			if res := r.Apply(DesiredTable(before, nil2w())); res.Failed != 0 {
				t.Fatalf("before: %+v", res)
			}
		}
		if setup != nil {
			setup(f) // after the read: the view is stale
		}
		return r.Apply(DesiredTable(cfg, nil2w()))
	}
	pk := newFakeKernel()
	plain = run(pk, pk, pk)
	bk = &batchFake{fakeKernel: newFakeKernel()}
	batch = run(bk, bk, bk.fakeKernel)
	sameKernels(t, bk.fakeKernel, pk)
	if plain.Applied != batch.Applied || plain.Failed != batch.Failed || len(plain.Errors) != len(batch.Errors) {
		t.Fatalf("batched %d applied %d failed %v, one by one %d applied %d failed %v",
			batch.Applied, batch.Failed, batch.Errors, plain.Applied, plain.Failed, plain.Errors)
	}
	for i := range plain.Errors {
		if plain.Errors[i].Error() != batch.Errors[i].Error() {
			t.Fatalf("error %d: batched %q, one by one %q", i, batch.Errors[i], plain.Errors[i])
		}
	}
	return plain, batch, bk
}

// TestBatchedColdApply: a cold start through Batch gives the same table
// as one by one, with the services whose order matters kept out of it.
func TestBatchedColdApply(t *testing.T) {
	cfg := batchCfg(500)
	_, res, bk := applyBoth(t, cfg, nil)
	if res.Failed != 0 {
		t.Fatalf("cold apply: %+v", res)
	}
	// 300 batchable services: 100 tcp and 100 udp of 3 servers, 100 v6
	// of 2; every change of theirs, and only theirs, batched.
	if want := 100*4 + 100*4 + 100*3; bk.batched != want || bk.batches == 0 {
		t.Fatalf("%d changes in %d batches, want %d", bk.batched, bk.batches, want)
	}
	if got := bk.calls["CreateService"]; got != 500 {
		t.Fatalf("%d service creations, want one per service", got)
	}
}

// TestBatchedErrorIsPerChange: a change the kernel refuses is reported
// for itself; the rest of its batch is made; a service that cannot be
// created has its destinations skipped, as one by one.
func TestBatchedErrorIsPerChange(t *testing.T) {
	cfg := batchCfg(100)
	cfg.Services[5].Scheduler = "nosuch" // batched: i%5 == 0
	refuse := netip.MustParseAddr("10.0.0.2")
	bad := cfg.Services[10].VIP
	setup := func(f *fakeKernel) {
		f.failOn = func(call string, s ipvs.Service, d ipvs.Destination) error {
			if call == "CreateDestination" && s.Address == bad && d.Address == refuse {
				return unix.EINVAL
			}
			return nil
		}
	}
	_, res, _ := applyBoth(t, cfg, setup)
	if res.Failed != 2 || len(res.Errors) != 2 {
		t.Fatalf("batched: %d failed %v, want the service and the one destination", res.Failed, res.Errors)
	}
	for _, err := range res.Errors {
		svcErr := errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EINVAL)
		destErr := errors.Is(err, unix.EINVAL) && strings.Contains(err.Error(), refuse.String())
		if !svcErr && !destErr {
			t.Fatalf("unexpected error %v", err)
		}
	}
	for i, want := range map[int]bool{5: true, 10: true, 15: false} {
		if got := res.failed[svcKeyOf(cfg.Services[i])]; got != want {
			t.Fatalf("service %d marked failed %v, want %v", i, got, want)
		}
	}
}

func svcKeyOf(s config.Service) SvcKey {
	return SvcKey{Family: uint8(ipvs.INET), Protocol: uint8(ipvs.TCP), Addr: s.VIP, Port: s.Port}
}

// TestBatchedStaleView: the kernel changed behind the view (a service and
// a destination created, a destination removed); the batch's follow-ups
// make the same table as apply's.
func TestBatchedStaleView(t *testing.T) {
	cfg := batchCfg(50)
	desired := DesiredTable(cfg, nil2w())
	pick := func(i int) *Entry { return desired[svcKeyOf(cfg.Services[i])] }
	setup := func(f *fakeKernel) {
		// Made by someone else with another scheduler and weight.
		e := pick(0)
		s := e.Service
		s.Scheduler = "rr"
		if err := f.CreateService(s); err != nil {
			t.Fatal(err)
		}
		d := e.Dests[1]
		d.Weight = 9
		if err := f.CreateDestination(s, d); err != nil {
			t.Fatal(err)
		}
	}
	_, res, _ := applyBoth(t, cfg, setup)
	if res.Failed != 0 {
		t.Fatalf("stale view: %+v", res)
	}
}

// TestBatchedStaleViewGone: what the view holds was removed behind it (a
// service the new config edits and extends, a destination and a service
// the new config drops); the batch's follow-ups make the same table as
// apply's, and a removal of what is gone is no error.
func TestBatchedStaleViewGone(t *testing.T) {
	before := batchCfg(50)
	cfg := batchCfg(50)
	cfg.Services[0].Scheduler = "rr"
	cfg.Services[0].RealServers = append(cfg.Services[0].RealServers, rs("10.0.0.9:80", 1))
	cfg.Services[5].RealServers = cfg.Services[5].RealServers[:2]
	cfg.Services = slices.Delete(cfg.Services, 10, 11)
	for i := range cfg.Services {
		cfg.Services[i].RealServers[0].Weight = 7 // enough ops to batch
	}
	setup := func(f *fakeKernel) {
		desired := DesiredTable(before, nil2w())
		for _, i := range []int{0, 10} {
			if err := f.RemoveService(desired[svcKeyOf(before.Services[i])].Service); err != nil {
				t.Fatal(err)
			}
		}
		e := desired[svcKeyOf(before.Services[5])]
		if err := f.RemoveDestination(e.Service, e.Dests[2]); err != nil {
			t.Fatal(err)
		}
	}
	_, res, _ := applyBothAfter(t, before, cfg, setup)
	if res.Failed != 0 {
		t.Fatalf("stale view: %+v", res)
	}
}

// refSortOps is sortOps as it was: a stable sort of the ops themselves.
func refSortOps(ops []Op) {
	rank := func(o Op) OpKind {
		if o.seq > 0 {
			return CreateDest
		}
		return o.Kind
	}
	slices.SortStableFunc(ops, func(a, b Op) int {
		if c := cmp.Compare(rank(a), rank(b)); c != 0 {
			return c
		}
		if c := compareSvcKey(KeyOf(a.Service), KeyOf(b.Service)); c != 0 {
			return c
		}
		if c := cmp.Compare(a.seq, b.seq); c != 0 {
			return c
		}
		if a.Kind == RemoveDest {
			return compareDestKey(DestKeyOf(b.Dest), DestKeyOf(a.Dest))
		}
		return compareDestKey(DestKeyOf(a.Dest), DestKeyOf(b.Dest))
	})
}

// TestSortOpsIsTheStableSort: sorting indexes gives the stable sort's
// order, ties (ops equal but for Name or weight) included.
func TestSortOpsIsTheStableSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	for round := range 50 {
		ops := make([]Op, 1+rng.IntN(400))
		for i := range ops {
			s := ipvs.Service{Family: ipvs.INET, Protocol: ipvs.TCP, Port: 80,
				Address: netip.AddrFrom4([4]byte{192, 0, 2, byte(rng.IntN(4))})}
			if rng.IntN(5) == 0 {
				s = ipvs.Service{Family: ipvs.INET, FWMark: uint32(1 + rng.IntN(2))}
			}
			ops[i] = Op{Kind: OpKind(rng.IntN(int(RemoveDest) + 1)), Name: fmt.Sprint(i), Service: s,
				Dest: ipvs.Destination{Address: netip.AddrFrom4([4]byte{10, 0, 0, byte(rng.IntN(4))}), Port: 80, Weight: uint32(i)}}
			// An Ordered service's destination ops, each its own place
			// in the sequence, as Diff numbers them.
			if k := ops[i].Kind; rng.IntN(4) == 0 && (k == CreateDest || k == UpdateDest || k == RemoveDest) {
				ops[i].seq = 1 + i
			}
		}
		want := slices.Clone(ops)
		refSortOps(want)
		sortOps(ops)
		for i := range ops {
			if ops[i].Name != want[i].Name {
				t.Fatalf("round %d: op %d is %s, want %s (%v)", round, i, ops[i].Name, want[i].Name, want[i])
			}
		}
	}
}
