package director

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"

	"github.com/cloudflare/ipvs"
	"github.com/directorlb/director/config"
)

// fakeSysctl is net.ipv4.vs.* in memory, with the kernel's defaults, and
// the history of every write.
type fakeSysctl struct {
	mu     sync.Mutex
	vals   map[string]string
	writes []string
	fail   bool
}

func newFakeSysctl() *fakeSysctl {
	return &fakeSysctl{vals: map[string]string{"sloppy_tcp": "0", "sloppy_sctp": "0", "schedule_icmp": "0",
		"expire_nodest_conn": "0", "conn_reuse_mode": "1", "backup_only": "0", "conntrack": "0"}}
}

func (f *fakeSysctl) Get(name string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.vals[name], nil
}

func (f *fakeSysctl) Set(name, value string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail {
		return fmt.Errorf("write %s: permission denied", name)
	}
	f.vals[name] = value
	f.writes = append(f.writes, name+"="+value)
	return nil
}

func (f *fakeSysctl) history() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.writes)
}

// mhCfg is a bgp-mode config with one DR mh service over reals.
func mhCfg(reals ...config.RealServer) *config.Config {
	s := svc("web", "192.0.2.10", 80, reals...)
	s.Scheduler, s.SchedulerFlags, s.Forward = "mh", []string{"mh-fallback", "mh-port"}, config.Direct
	for i := range s.RealServers {
		s.RealServers[i].Forward = config.Direct
	}
	c := cfgOf(s)
	c.BGP = &config.BGP{ASN: 65001}
	return c
}

func dr(addr string, weight int) config.RealServer {
	r := rs(addr, weight)
	r.Forward = config.Direct
	return r
}

// slot is what the kernel builds mh's table from, for one destination,
// plus its current weight (what lookups skip).
type slot struct {
	Key    string
	Last   uint32
	Weight uint32
}

// kernelList is a service's list in the fake kernel, head first.
func kernelList(k *fakeKernel, cfg *config.Config) []slot {
	k.mu.Lock()
	defer k.mu.Unlock()
	e := k.table[KeyOf(ServiceOf(&cfg.Services[0]))]
	var out []slot
	for _, l := range e.List {
		d, _ := e.Dests.Get(l.Key)
		out = append(out, slot{l.Key.String(), l.Last, d.Weight})
	}
	return out
}

// freshList is the list a fresh start with cfg and w builds.
func freshList(t *testing.T, cfg *config.Config, w Weights) []slot {
	t.Helper()
	k := newFakeKernel()
	startDirectorWith(t, k, Options{Kernel: k, Weights: w, Logger: quietLog(), Sysctl: newFakeSysctl()}, cfg)
	return kernelList(k, cfg)
}

func sameList(t *testing.T, what string, got, want []slot) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s: kernel list (head first)\n got %v\nwant %v (a fresh start's)", what, got, want)
	}
}

// recorder counts the destination removals a fake kernel is asked for and
// checks each is a move: re-added by the very next request.
type recorder struct {
	mu    sync.Mutex
	calls []string
}

func (r *recorder) hook(call string, _ ipvs.Service, d ipvs.Destination) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if call == "CreateDestination" || call == "UpdateDestination" || call == "RemoveDestination" {
		r.calls = append(r.calls, fmt.Sprintf("%s %s w%d", call, DestKeyOf(d), d.Weight))
	}
	return nil
}

// removals are the removals that were not moves.
func (r *recorder) removals() (plain []string, moves int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, c := range r.calls {
		var key string
		if _, err := fmt.Sscanf(c, "RemoveDestination %s", &key); err != nil {
			continue
		}
		if i+1 < len(r.calls) && slices.Contains([]string{"CreateDestination " + key}, prefix2(r.calls[i+1])) {
			moves++
			continue
		}
		plain = append(plain, c)
	}
	return plain, moves
}

func prefix2(s string) string {
	var a, b string
	_, _ = fmt.Sscanf(s, "%s %s", &a, &b)
	return a + " " + b
}

var mhReals = []config.RealServer{dr("10.0.2.1:80", 1), dr("10.0.2.2:80", 2), dr("10.0.2.3:80", 1), dr("10.0.2.4:80", 3), dr("10.0.2.5:80", 1)}

// A fresh start: the canonical order (descending, largest key at the
// head), every last_weight the configured weight, a server not known
// healthy at 0, and the sysctls of bgp mode written first.
func TestMHFreshStart(t *testing.T) {
	cfg := mhCfg(mhReals...)
	w := &switchWeights{down: map[string]bool{"10.0.2.3:80": true}}
	k, sc := newFakeKernel(), newFakeSysctl()
	d, _ := startDirectorWith(t, k, Options{Kernel: k, Weights: w, Logger: quietLog(), Sysctl: sc}, cfg)
	sameList(t, "fresh start", kernelList(k, cfg), []slot{
		{"10.0.2.5:80", 1, 1}, {"10.0.2.4:80", 3, 3}, {"10.0.2.3:80", 1, 0}, {"10.0.2.2:80", 2, 2}, {"10.0.2.1:80", 1, 1}})
	for name, want := range map[string]string{"sloppy_tcp": "1", "sloppy_sctp": "1", "schedule_icmp": "1",
		"expire_nodest_conn": "1", "conn_reuse_mode": "2", "backup_only": "0", "conntrack": "0"} {
		if got, _ := sc.Get(name); got != want {
			t.Errorf("net.ipv4.vs.%s = %s, want %s", name, got, want)
		}
	}
	st, err := d.Status(context.Background())
	if err != nil || st.Services[0].OrderCanonical == nil || !*st.Services[0].OrderCanonical {
		t.Fatalf("status order_canonical: %+v %v", st.Services[0].OrderCanonical, err)
	}
	// A timer's reconcile re-reads the kernel, where the quiesced
	// server's last_weight does not show: it must not write it again
	// (each write makes the server live for a moment).
	k.resetCalls()
	if res, err := d.Reconcile(context.Background()); err != nil || res.Applied != 0 || k.mutations() != 0 {
		t.Fatalf("no-op reconcile changed the kernel: %+v %v %v", res, err, k.calls)
	}
	// Not in bgp mode the same service keeps the old behaviour: a
	// server down is added at 0, and no sysctl is written.
	plain := mhCfg(mhReals...)
	plain.BGP = nil
	k2, sc2 := newFakeKernel(), newFakeSysctl()
	startDirectorWith(t, k2, Options{Kernel: k2, Weights: w, Logger: quietLog(), Sysctl: sc2}, plain)
	if l := kernelList(k2, plain); l[2] != (slot{"10.0.2.3:80", 0, 0}) {
		t.Fatalf("without bgp a down server is added at 0: %v", l)
	}
	if h := sc2.history(); len(h) != 0 {
		t.Fatalf("sysctls written without bgp: %v", h)
	}
}

// A restart adopts a table left in another order, with servers added at
// 0 (last_weight 0), quiesced ones, one the config lacks, and ends as a
// fresh start does; the moves run with expire_nodest_conn off.
func TestMHRestartAdoptsOtherOrder(t *testing.T) {
	cfg := mhCfg(mhReals...)
	w := &switchWeights{down: map[string]bool{"10.0.2.2:80": true, "10.0.2.4:80": true}}
	want := freshList(t, cfg, w)

	k, sc := newFakeKernel(), newFakeSysctl()
	svc := ServiceOf(&cfg.Services[0])
	if err := k.CreateService(svc); err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		addr      string
		add, edit int // edit -1: none
	}{
		{"10.0.2.1:80", 1, -1}, {"10.0.2.9:80", 1, -1}, {"10.0.2.5:80", 1, -1},
		{"10.0.2.4:80", 0, -1},                        // added at 0: last_weight 0
		{"10.0.2.3:80", 1, -1}, {"10.0.2.2:80", 5, 0}, // quiesced, last_weight 5
	} {
		ap := netip.MustParseAddrPort(step.addr)
		d := ipvs.Destination{Address: ap.Addr(), Port: ap.Port(), Family: ipvs.INET, FwdMethod: ipvs.DirectRoute, Weight: uint32(step.add)}
		if err := k.CreateDestination(svc, d); err != nil {
			t.Fatal(err)
		}
		if step.edit >= 0 {
			d.Weight = uint32(step.edit)
			_ = k.UpdateDestination(svc, d)
		}
	}
	rec := &recorder{}
	k.failOn = rec.hook
	d, _ := startDirectorWith(t, k, Options{Kernel: k, Weights: w, Logger: quietLog(), Sysctl: sc}, cfg)
	sameList(t, "restart", kernelList(k, cfg), want)
	plain, moves := rec.removals()
	if len(plain) != 1 || plain[0] != "RemoveDestination 10.0.2.9:80 w1" || moves == 0 {
		t.Fatalf("removals %v, %d moves: %v", plain, moves, rec.calls)
	}
	h := sc.history()
	if i := slices.Index(h, "expire_nodest_conn=0"); i < 0 || h[len(h)-1] != "expire_nodest_conn=1" {
		t.Fatalf("expire_nodest_conn not off around the moves: %v", h)
	}
	k.failOn = nil
	k.resetCalls()
	if res, _ := d.Reconcile(context.Background()); k.mutations() != 0 {
		t.Fatalf("converged table changed again: %+v %v", res, k.calls)
	}
}

// A reload adds a server whose key sorts in the middle: the servers above
// it move, and the list is a fresh start's.
func TestMHReloadAddsMiddleKey(t *testing.T) {
	for _, up := range []bool{true, false} {
		t.Run(fmt.Sprintf("new-server-up=%v", up), func(t *testing.T) {
			full := mhCfg(mhReals...)
			w := &switchWeights{down: map[string]bool{"10.0.2.3:80": !up, "10.0.2.5:80": true}}
			want := freshList(t, full, w)
			before := mhCfg(slices.Delete(slices.Clone(mhReals), 2, 3)...)
			k, sc := newFakeKernel(), newFakeSysctl()
			d, _ := startDirectorWith(t, k, Options{Kernel: k, Weights: w, Logger: quietLog(), Sysctl: sc}, before)
			rec := &recorder{}
			k.failOn = rec.hook
			if res, err := d.Reload(context.Background(), full); err != nil || res.Failed != 0 {
				t.Fatal(res, err)
			}
			sameList(t, "reload", kernelList(k, full), want)
			if plain, moves := rec.removals(); len(plain) != 0 || moves != 2 {
				t.Fatalf("want the two servers above the new one moved, nothing removed: %v", rec.calls)
			}
			if h := sc.history(); h[len(h)-2] != "expire_nodest_conn=0" || h[len(h)-1] != "expire_nodest_conn=1" {
				t.Fatalf("expire_nodest_conn around the moves: %v", h)
			}
		})
	}
}

// A health failure quiesces (one edit, no removal) and a recovery edits
// back: the list is a fresh start's with the same health at each step.
func TestMHHealthFlap(t *testing.T) {
	cfg := mhCfg(mhReals...)
	w := &switchWeights{down: map[string]bool{}}
	k := newFakeKernel()
	d, _ := startDirectorWith(t, k, Options{Kernel: k, Weights: w, Logger: quietLog(), Sysctl: newFakeSysctl()}, cfg)
	rec := &recorder{}
	k.failOn = rec.hook
	for _, down := range []bool{true, false} {
		w.set("10.0.2.4:80", down)
		if err := d.WeightsChanged(context.Background(), "web"); err != nil {
			t.Fatal(err)
		}
		if _, err := d.Reconcile(context.Background()); err != nil {
			t.Fatal(err)
		}
		k.failOn = nil
		sameList(t, fmt.Sprintf("down=%v", down), kernelList(k, cfg), freshList(t, cfg, w))
		k.failOn = rec.hook
	}
	if want := []string{"UpdateDestination 10.0.2.4:80 w0", "UpdateDestination 10.0.2.4:80 w3"}; !slices.Equal(rec.calls, want) {
		t.Fatalf("flap cost %v, want %v", rec.calls, want)
	}
}

// A view's order is canonical only in full; a sysctl that cannot be
// written does not stop the director.
func TestMHCanonicalAndSysctlFailure(t *testing.T) {
	cfg := mhCfg(mhReals...)
	w := &switchWeights{down: map[string]bool{}}
	want := DesiredTable(cfg, w)[KeyOf(ServiceOf(&cfg.Services[0]))]
	have := &Entry{List: slices.Clone(want.List)}
	if !canonical(want, have) {
		t.Fatal("canonical list reported out of order")
	}
	have.List[0], have.List[1] = have.List[1], have.List[0]
	if canonical(want, have) || sameRelativeOrder(want.List, have.List) {
		t.Fatal("swapped list reported in order")
	}
	if !sameRelativeOrder(want.List, want.List[1:]) {
		t.Fatal("a list lacking a server is still in relative order")
	}
	sc := newFakeSysctl()
	sc.fail = true
	k := newFakeKernel()
	startDirectorWith(t, k, Options{Kernel: k, Weights: w, Logger: quietLog(), Sysctl: sc}, cfg)
	sameList(t, "sysctls failing", kernelList(k, cfg), freshList(t, cfg, w))
}
