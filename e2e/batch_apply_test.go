//go:build lab

package e2e

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudflare/ipvs"
	"github.com/cloudflare/ipvs/netmask"
	"golang.org/x/sys/unix"

	"github.com/directorlb/director/director"
	"github.com/directorlb/director/ipvsdump"
	"github.com/directorlb/director/lab/topo"
)

// oneByOne hides Batch: the director applies through it one request per
// change, as before batching.
type oneByOne struct{ director.Kernel }

// countedBatch is the ipvsdump client, its batched changes counted.
type countedBatch struct {
	*ipvsdump.Client
	changes *atomic.Int64
}

func (c countedBatch) Batch(chs []ipvsdump.Change) []error {
	c.changes.Add(int64(len(chs)))
	return c.Client.Batch(chs)
}

// batchTable is copies of every shape of service and destination the
// kernel takes: tcp, udp, sctp and fwmark, IPv4 and IPv6, every
// forwarding method, tunnel types and flags, thresholds, persistence,
// schedulers with flags, mh and sh (whose list order counts), weight 0;
// and one service and one destination the kernel refuses.
func batchTable(copies int, weight uint32) director.Table {
	t := director.Table{}
	add := func(s ipvs.Service, ds ...ipvs.Destination) {
		if !s.Netmask.IsValid() {
			s.Netmask = netmask.MaskFrom(32, 32)
			if s.Family == ipvs.INET6 {
				s.Netmask = netmask.MaskFrom(128, 128)
			}
		}
		slices.SortFunc(ds, func(a, b ipvs.Destination) int {
			if c := a.Address.Compare(b.Address); c != 0 {
				return c
			}
			return int(a.Port) - int(b.Port)
		})
		t[director.KeyOf(s)] = &director.Entry{Name: fmt.Sprint(len(t)), Service: s, Dests: ds}
	}
	v4 := func(i, j int) netip.Addr {
		return netip.AddrFrom4([4]byte{10, 20 + byte(j), byte(i / 250), byte(i%250 + 1)})
	}
	v6 := func(i, j int) netip.Addr {
		return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 4: byte(j), 14: byte(i >> 8), 15: byte(i)})
	}
	d4 := func(i, j int, fwd ipvs.ForwardType, port uint16) ipvs.Destination {
		return ipvs.Destination{Family: ipvs.INET, Address: v4(i, 100+j), Port: port, FwdMethod: fwd, Weight: weight}
	}
	for i := range copies {
		tun := d4(i, 3, ipvs.Tunnel, 80)
		tun.TunnelType, tun.TunnelPort, tun.TunnelFlags = ipvs.GUE, 6080, ipvs.TunnelEncapChecksum|ipvs.TunnelEncapRemoteChecksum
		gre := d4(i, 4, ipvs.Tunnel, 80)
		gre.TunnelType, gre.TunnelFlags = ipvs.GRE, ipvs.TunnelEncapChecksum
		thr := d4(i, 1, ipvs.Masquerade, 8080)
		thr.UpperThreshold, thr.LowerThreshold = 100, 10
		zero := d4(i, 2, ipvs.Masquerade, 8080)
		zero.Weight = 0
		add(ipvs.Service{Family: ipvs.INET, Protocol: ipvs.TCP, Address: v4(i, 0), Port: 80, Scheduler: "wlc"},
			thr, zero, d4(i, 5, ipvs.Masquerade, 8080), tun, gre)
		add(ipvs.Service{Family: ipvs.INET, Protocol: ipvs.UDP, Address: v4(i, 0), Port: 53, Scheduler: "sh",
			Flags: ipvs.ServicePersistent | ipvs.ServiceSchedulerOpt1 | ipvs.ServiceSchedulerOpt2, Timeout: 600, Netmask: netmask.MaskFrom(24, 32)},
			d4(i, 1, ipvs.DirectRoute, 53), d4(i, 2, ipvs.DirectRoute, 53), d4(i, 3, ipvs.DirectRoute, 53))
		add(ipvs.Service{Family: ipvs.INET, Protocol: ipvs.SCTP, Address: v4(i, 1), Port: 3868, Scheduler: "rr", Flags: ipvs.ServiceOnePacket},
			d4(i, 1, ipvs.Tunnel, 3868), d4(i, 2, ipvs.Local, 3868))
		add(ipvs.Service{Family: ipvs.INET6, Protocol: ipvs.TCP, Address: v6(i, 0), Port: 443, Scheduler: "mh",
			Flags: ipvs.ServicePersistent | ipvs.ServiceSchedulerOpt1, Timeout: 300, Netmask: netmask.MaskFrom(64, 128)},
			ipvs.Destination{Family: ipvs.INET6, Address: v6(i, 1), Port: 443, FwdMethod: ipvs.Masquerade, Weight: weight},
			ipvs.Destination{Family: ipvs.INET6, Address: v6(i, 2), Port: 443, FwdMethod: ipvs.Masquerade, Weight: 2 * weight},
			ipvs.Destination{Family: ipvs.INET6, Address: v6(i, 3), Port: 443, FwdMethod: ipvs.Masquerade, Weight: 3})
		add(ipvs.Service{Family: ipvs.INET6, Protocol: ipvs.UDP, Address: v6(i, 0), Port: 53, Scheduler: "sed"},
			ipvs.Destination{Family: ipvs.INET6, Address: v6(i, 1), Port: 53, FwdMethod: ipvs.DirectRoute, Weight: weight},
			ipvs.Destination{Family: ipvs.INET6, Address: v6(i, 2), Port: 53, FwdMethod: ipvs.Tunnel, Weight: 1})
		add(ipvs.Service{Family: ipvs.INET, FWMark: uint32(1 + i), Scheduler: "lc"},
			d4(i, 1, ipvs.DirectRoute, 0), d4(i, 2, ipvs.DirectRoute, 0))
		add(ipvs.Service{Family: ipvs.INET6, FWMark: uint32(1 + i), Scheduler: "wrr"},
			ipvs.Destination{Family: ipvs.INET6, Address: v6(i, 4), Port: 0, FwdMethod: ipvs.DirectRoute, Weight: weight})
	}
	// Refused: an unknown scheduler (ENOENT), and a weight the kernel
	// reads as negative (ERANGE) among good destinations.
	add(ipvs.Service{Family: ipvs.INET, Protocol: ipvs.TCP, Address: netip.MustParseAddr("10.19.0.1"), Port: 80, Scheduler: "nosuch"},
		d4(0, 1, ipvs.Masquerade, 80))
	bad := d4(1, 2, ipvs.Masquerade, 80)
	bad.Weight = 1 << 31
	add(ipvs.Service{Family: ipvs.INET, Protocol: ipvs.TCP, Address: netip.MustParseAddr("10.19.0.2"), Port: 80, Scheduler: "wlc"},
		d4(1, 1, ipvs.Masquerade, 80), bad, d4(1, 3, ipvs.Masquerade, 80))
	return t
}

// TestBatchedApplyMatchesOneByOne: the same plans applied through the
// batched path on one host and one request per change on another leave
// the two kernels with the same table (every field, and the list order
// ipvsadm -L shows) and report the same changes refused, for a cold apply
// and for a reload that edits, adds and removes.
func TestBatchedApplyMatchesOneByOne(t *testing.T) {
	n := topo.New(t)
	a, b := n.Host("a"), n.Host("b")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var batched atomic.Int64
	plain := director.NewReconciler(oneByOne{ipvsdumpIn(t, a)}, log, "")
	plain.SetWorkers(oneByOne{ipvsdumpIn(t, a)})
	fast := director.NewReconciler(countedBatch{ipvsdumpIn(t, b), &batched}, log, "")
	fast.SetWorkers(countedBatch{ipvsdumpIn(t, b), &batched})

	const copies = 60
	cold := batchTable(copies, 1)
	// The reload: every weight changed, a tenth of the services gone,
	// a destination of each remaining wlc service gone, one added.
	reload := batchTable(copies, 4)
	i := 0
	for k, e := range reload {
		switch {
		case i%10 == 0:
			delete(reload, k)
		case e.Service.Scheduler == "wlc" && len(e.Dests) > 3:
			e.Dests = slices.Delete(slices.Clone(e.Dests), 0, 1)
		case e.Service.Scheduler == "sed":
			d := e.Dests[0]
			d.Address = d.Address.Next()
			e.Dests = append(slices.Clone(e.Dests), d)
			slices.SortFunc(e.Dests, func(x, y ipvs.Destination) int { return x.Address.Compare(y.Address) })
		}
		i++
	}

	for step, desired := range []director.Table{cold, reload} {
		before := batched.Load()
		var want, got director.Result
		for _, x := range []struct {
			r   *director.Reconciler
			res *director.Result
		}{{plain, &want}, {fast, &got}} {
			if _, err := x.r.Refresh(); err != nil {
				t.Fatal(err)
			}
			*x.res = x.r.Apply(desired)
		}
		if batched.Load()-before < int64(got.Applied)/2 {
			t.Fatalf("step %d: %d changes batched of %d applied: the batched path was not taken", step, batched.Load()-before, got.Applied)
		}
		t.Logf("step %d: %d applied, %d refused; %d changes batched", step, got.Applied, got.Failed, batched.Load()-before)
		if got.Applied != want.Applied || got.Failed != want.Failed || len(got.Errors) != len(want.Errors) {
			t.Fatalf("step %d: batched %d applied %d refused %v; one by one %d applied %d refused %v",
				step, got.Applied, got.Failed, got.Errors, want.Applied, want.Failed, want.Errors)
		}
		for j := range want.Errors {
			if got.Errors[j].Error() != want.Errors[j].Error() {
				t.Fatalf("step %d: refusal %d: batched %q, one by one %q", step, j, got.Errors[j], want.Errors[j])
			}
		}
		if step == 0 {
			// The scheduler refused and the weight refused, each for
			// itself: nothing else.
			if want.Failed != 2 || !errors.Is(got.Errors[0], unix.ENOENT) && !errors.Is(got.Errors[1], unix.ENOENT) ||
				!errors.Is(got.Errors[0], unix.ERANGE) && !errors.Is(got.Errors[1], unix.ERANGE) {
				t.Fatalf("cold apply refused %v, want the unknown scheduler and the negative weight", got.Errors)
			}
		}
		sameKernelTables(t, fmt.Sprintf("step %d", step), ipvsdumpIn(t, b), ipvsdumpIn(t, a))
		// What ipvsadm shows, each list in the kernel's order. Not -S:
		// ipvsadm 1.31 dies of a signal saving this wlc service's
		// destinations (in the lab, however they were made).
		for _, argv := range [][]string{{"-L", "-n"}, {"-L", "-n", "--thresholds"}, {"-L", "-n", "--tun-info"}, {"-L", "-n", "--persistent-conn"}} {
			argv = append([]string{"/bin/ipvsadm"}, argv...)
			if g, w := must(t, b, argv...), must(t, a, argv...); g != w || len(g) < 1000 {
				t.Fatalf("step %d: %v differs (%d and %d bytes):\nbatched:\n%s\none by one:\n%s", step, argv, len(g), len(w), g, w)
			}
		}
	}
}

// sameKernelTables compares two kernels' tables field by field, with
// each list in the kernel's order.
func sameKernelTables(t *testing.T, what string, got, want director.Kernel) {
	t.Helper()
	g, err := director.ReadTable(got)
	if err != nil {
		t.Fatal(err)
	}
	w, err := director.ReadTable(want)
	if err != nil {
		t.Fatal(err)
	}
	if len(g) != len(w) || len(w) == 0 {
		t.Fatalf("%s: %d services batched, %d one by one", what, len(g), len(w))
	}
	for k, we := range w {
		ge, ok := g[k]
		if !ok {
			t.Fatalf("%s: %s missing from the batched kernel", what, k)
		}
		if ge.Service != we.Service || !slices.Equal(ge.Dests, we.Dests) || !slices.Equal(ge.List, we.List) {
			t.Fatalf("%s: %s:\nbatched    %+v %+v %+v\none by one %+v %+v %+v", what, k, ge.Service, ge.Dests, ge.List, we.Service, we.Dests, we.List)
		}
	}
}

// BenchmarkBatchWrites100k splits a cold apply of the reference table:
// the same 110,000 creations sent straight through Batch on one socket
// (the kernel's work and the system calls, nothing of the director),
// then the director's whole batched apply on a fresh table.
func BenchmarkBatchWrites100k(b *testing.B) {
	n := topo.New(b)
	raw, whole := n.Host("a"), n.Host("b")
	desired := director.DesiredTable(benchConfig(), director.ConfiguredWeights{})
	var chs []ipvsdump.Change
	for _, e := range desired {
		chs = append(chs, ipvsdump.Change{Cmd: ipvsdump.NewService, Service: e.Service})
		for _, d := range e.Dests {
			chs = append(chs, ipvsdump.Change{Cmd: ipvsdump.NewDest, Service: e.Service, Dest: d})
		}
	}
	c := ipvsdumpIn(b, raw)
	start := time.Now()
	for i, err := range c.Batch(chs) {
		if err != nil {
			b.Fatalf("change %d: %v", i, err)
		}
	}
	kernel := time.Since(start)

	r := benchReconciler(b, whole)
	if _, err := r.Refresh(); err != nil {
		b.Fatal(err)
	}
	start = time.Now()
	if res := r.Apply(desired); res.Failed != 0 || res.Applied != len(chs) {
		b.Fatalf("apply: %d applied, %d failed", res.Applied, res.Failed)
	}
	all := time.Since(start)
	b.ReportMetric(kernel.Seconds(), "batch-only-s")
	b.ReportMetric(all.Seconds(), "director-apply-s")
	b.Logf("%d creations: Batch alone on one socket %.1fs; the director's apply on two %.1fs", len(chs), kernel.Seconds(), all.Seconds())
}
