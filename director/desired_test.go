package director

import (
	"fmt"
	"net/netip"
	"reflect"
	"testing"

	"github.com/cloudflare/ipvs"
	"github.com/directorlb/director/config"
	"golang.org/x/sys/unix"
)

// sameMap reports whether two tables are one map, not two equal ones.
func sameMap(a, b Table) bool {
	return reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
}

func reloadCfg() *config.Config {
	return cfgOf(
		svc("web", "192.0.2.10", 80, rs("10.0.0.1:80", 1), rs("10.0.0.2:80", 3)),
		svc("api", "192.0.2.11", 443, rs("10.0.0.3:443", 1)),
		svc("web6", "2001:db8::10", 80, rs("[2001:db8::1]:80", 2)),
	)
}

func TestNextDesiredTableReusesWhatIsEqual(t *testing.T) {
	prev := DesiredTable(reloadCfg(), nil2w())
	key := func(c *config.Config, i int) SvcKey { return KeyOf(ServiceOf(&c.Services[i])) }

	// A config parsed again, equal: the very same table.
	same := reloadCfg()
	if next := NextDesiredTable(same, nil2w(), prev); !sameMap(next, prev) {
		t.Fatal("an unchanged config built a new table")
	}

	// Real servers written in another order ask for the same table.
	swapped := reloadCfg()
	rss := swapped.Services[0].RealServers
	rss[0], rss[1] = rss[1], rss[0]
	if next := NextDesiredTable(swapped, nil2w(), prev); !sameMap(next, prev) {
		t.Fatal("real servers in another order built a new table")
	}

	edits := []struct {
		name string
		edit func(*config.Config)
	}{
		{"weight", func(c *config.Config) { c.Services[0].RealServers[1].Weight = 4 }},
		{"scheduler", func(c *config.Config) { c.Services[0].Scheduler = "rr" }},
		{"threshold", func(c *config.Config) { c.Services[0].RealServers[0].UpperThreshold = 100 }},
		{"forward", func(c *config.Config) { c.Services[0].RealServers[0].Forward = config.Direct }},
		{"tunnel", func(c *config.Config) {
			c.Services[0].RealServers[0].Forward = config.Tunnel
			c.Services[0].RealServers[0].Tunnel = config.TunnelSpec{Type: config.GUE, Port: 6080, Checksum: "csum"}
		}},
		{"persistence", func(c *config.Config) { c.Services[0].Persistence = 300e9; c.Services[0].PersistenceMask = 24 }},
		{"real server added", func(c *config.Config) {
			c.Services[0].RealServers = append(c.Services[0].RealServers, rs("10.0.0.9:80", 1))
		}},
		{"sorry server", func(c *config.Config) {
			c.Services[0].RealServers[0].Weight, c.Services[0].RealServers[1].Weight = 0, 0
			sorry := rs("10.0.0.99:80", 1)
			c.Services[0].SorryServer = &sorry
		}},
		{"renamed", func(c *config.Config) { c.Services[0].Name = "www" }},
	}
	for _, tc := range edits {
		t.Run(tc.name, func(t *testing.T) {
			c := reloadCfg()
			tc.edit(c)
			next := NextDesiredTable(c, nil2w(), prev)
			if sameMap(next, prev) {
				t.Fatal("a changed config kept the old table")
			}
			if next[key(c, 0)] == prev[key(c, 0)] {
				t.Fatal("the changed service kept its old entry")
			}
			// What came out is what a table built afresh says.
			if plan := Diff(next, DesiredTable(c, nil2w()), func(SvcKey) bool { return true }); len(plan.Ops) != 0 {
				t.Fatalf("differs from DesiredTable: %v", plan.Ops)
			}
			for i := 1; i < len(c.Services); i++ {
				if next[key(c, i)] != prev[key(c, i)] {
					t.Errorf("unchanged service %s got a new entry", c.Services[i].Name)
				}
			}
		})
	}

	// A service gone, or added: a new table with exactly the new keys.
	fewer := reloadCfg()
	fewer.Services = fewer.Services[:2]
	if next := NextDesiredTable(fewer, nil2w(), prev); len(next) != 2 || sameMap(next, prev) {
		t.Fatalf("a removed service: %d entries", len(next))
	}
	more := reloadCfg()
	more.Services = append(more.Services, svc("new", "192.0.2.12", 80, rs("10.0.0.4:80", 1)))
	if next := NextDesiredTable(more, nil2w(), prev); len(next) != 4 || next[key(more, 3)] == nil {
		t.Fatalf("an added service: %d entries", len(next))
	}
	if len(prev) != 3 {
		t.Fatal("prev was modified")
	}
}

// A weights source that changed since prev was built changes the entry,
// though the config did not.
func TestNextDesiredTableFollowsTheWeights(t *testing.T) {
	cfg := reloadCfg()
	prev := DesiredTable(cfg, nil2w())
	down := downWeights{"10.0.0.2:80": "down"}
	next := NextDesiredTable(cfg, down, prev)
	if sameMap(next, prev) {
		t.Fatal("a weight change kept the old table")
	}
	if plan := Diff(next, DesiredTable(cfg, down), func(SvcKey) bool { return true }); len(plan.Ops) != 0 {
		t.Fatalf("differs from DesiredTable: %v", plan.Ops)
	}
}

// A reload that keeps the table still repairs what a refresh found
// changed, and still removes a service the config dropped later.
func TestNoopReloadAfterDrift(t *testing.T) {
	k := newFakeKernel()
	r := NewReconciler(k, quietLog(), "")
	cfg := reloadCfg()
	desired := DesiredTable(cfg, nil2w())
	if _, err := r.Refresh(); err != nil {
		t.Fatal(err)
	}
	if res := r.Apply(desired); res.Failed != 0 {
		t.Fatal(res.Errors)
	}
	// Behind directord's back: a weight edited.
	s := ServiceOf(&cfg.Services[0])
	d := DestinationOf(&cfg.Services[0].RealServers[0], 9)
	if err := k.UpdateDestination(s, d); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Refresh(); err != nil {
		t.Fatal(err)
	}
	next := NextDesiredTable(reloadCfg(), nil2w(), desired)
	if !sameMap(next, desired) {
		t.Fatal("not a no-op reload")
	}
	if res := r.Apply(next); res.Applied != 1 || res.Failed != 0 {
		t.Fatalf("drift under a kept table: %+v, want one repair", res)
	}
	kernelEquals(t, k, cfg, nil2w())

	// The kept table's services are still owned: dropping one removes it.
	fewer := reloadCfg()
	fewer.Services = fewer.Services[1:]
	if res := r.Apply(NextDesiredTable(fewer, nil2w(), next)); res.Applied != 1 || res.Failed != 0 {
		t.Fatalf("dropping a service: %+v, want one removal", res)
	}
	kernelEquals(t, k, fewer, nil2w())
}

// A change the kernel took only part of leaves the service to be compared
// again: the next Apply of the same table finishes it.
func TestPartlyAppliedServiceIsComparedAgain(t *testing.T) {
	k := newFakeKernel()
	r := NewReconciler(k, quietLog(), "")
	cfg := reloadCfg()
	if res := converge(t, r, cfg, nil2w()); res.Failed != 0 {
		t.Fatal(res.Errors)
	}
	edited := reloadCfg()
	edited.Services[0].RealServers[0].Weight = 7
	edited.Services[0].RealServers[1].Weight = 8
	k.failOn = func(call string, _ ipvs.Service, d ipvs.Destination) error {
		if call == "UpdateDestination" && d.Weight == 8 {
			return unix.EINVAL
		}
		return nil
	}
	next := NextDesiredTable(edited, nil2w(), DesiredTable(cfg, nil2w()))
	if res := r.Apply(next); res.Applied != 1 || res.Failed != 1 {
		t.Fatalf("%+v, want one applied and one refused", res)
	}
	k.failOn = nil
	if res := r.Apply(next); res.Applied != 1 || res.Failed != 0 {
		t.Fatalf("the same table again: %+v, want the refused change made", res)
	}
	kernelEquals(t, k, edited, nil2w())
}

func TestDestinationOfTunnels(t *testing.T) {
	for _, tc := range []struct {
		spec  config.TunnelSpec
		typ   ipvs.TunnelType
		flags ipvs.TunnelFlags
	}{
		{config.TunnelSpec{Type: config.IPIP}, ipvs.IPIP, 0},
		{config.TunnelSpec{Type: config.GRE, Checksum: "csum"}, ipvs.GRE, ipvs.TunnelEncapChecksum},
		{config.TunnelSpec{Type: config.GUE, Port: 6080, Checksum: "remcsum"}, ipvs.GUE, ipvs.TunnelEncapRemoteChecksum},
		{config.TunnelSpec{Type: config.GUE, Port: 6080, Checksum: "nocsum"}, ipvs.GUE, 0},
	} {
		r := rs("10.0.0.1:80", 2)
		r.Forward, r.Tunnel = config.Tunnel, tc.spec
		d := DestinationOf(&r, 2)
		if d.FwdMethod != ipvs.Tunnel || d.TunnelType != tc.typ || d.TunnelFlags != tc.flags || d.TunnelPort != tc.spec.Port || d.Weight != 2 {
			t.Errorf("%+v: got %+v", tc.spec, d)
		}
	}
}

// A table large enough to be compared on several CPUs gives what one
// built afresh does. Run with -race: Weights is called concurrently.
func TestNextDesiredTableInParallel(t *testing.T) {
	large := func() *config.Config {
		c := cfgOf()
		for i := range 3 * parallelServices {
			vip := netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}).String()
			c.Services = append(c.Services, svc(fmt.Sprintf("s%d", i), vip, 80, rs("10.0.0.1:80", 1), rs("10.0.0.2:80", 2)))
		}
		return c
	}
	down := downWeights{"10.0.0.2:80": "down"}
	prev := DesiredTable(large(), down)
	if next := NextDesiredTable(large(), down, prev); !sameMap(next, prev) {
		t.Fatal("an unchanged large config built a new table")
	}
	for _, i := range []int{0, parallelServices + 7, 3*parallelServices - 1} {
		c := large()
		c.Services[i].RealServers[0].Weight = 5
		next := NextDesiredTable(c, down, prev)
		if plan := Diff(next, DesiredTable(c, down), func(SvcKey) bool { return true }); len(plan.Ops) != 0 {
			t.Fatalf("service %d changed: differs from DesiredTable: %v", i, plan.Ops)
		}
		changed := 0
		for k, e := range next {
			if e != prev[k] {
				changed++
			}
		}
		if changed != 1 {
			t.Fatalf("service %d changed: %d entries are new, want 1", i, changed)
		}
	}
}
