//go:build lab

package e2e

import (
	"errors"
	"net/netip"
	"os"
	"reflect"
	"testing"

	"github.com/cloudflare/ipvs"
	"github.com/cloudflare/ipvs/netmask"
	"github.com/directorlb/director/ipvsdump"
	"github.com/directorlb/director/lab/topo"
)

func ipvsdumpIn(t testing.TB, h *topo.Host) *ipvsdump.Client {
	t.Helper()
	var c *ipvsdump.Client
	if err := h.Do(func() (err error) { c, err = ipvsdump.New(); return err }); err != nil {
		t.Fatalf("ipvsdump client in %s: %v", h.Name, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestIpvsdumpReadsWhatCloudflareReads: the fast reader and cloudflare/ipvs
// read the same real kernel table, of every shape directord programs, to
// the same values.
func TestIpvsdumpReadsWhatCloudflareReads(t *testing.T) {
	h := topo.New(t).Host("a")
	ref, fast := ipvsIn(t, h), ipvsdumpIn(t, h)

	if _, err := fast.Services(); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("an empty table: %v, want os.ErrNotExist as cloudflare/ipvs gives", err)
	}
	v4 := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	type svc struct {
		s     ipvs.Service
		dests []ipvs.Destination
	}
	table := []svc{
		{ipvs.Service{Family: ipvs.INET, Protocol: ipvs.TCP, Address: v4("192.0.2.10"), Port: 80, Scheduler: "wlc"},
			[]ipvs.Destination{
				{Family: ipvs.INET, Address: v4("10.0.0.1"), Port: 8080, FwdMethod: ipvs.Masquerade, Weight: 3, UpperThreshold: 100, LowerThreshold: 10},
				{Family: ipvs.INET, Address: v4("10.0.0.2"), Port: 8080, FwdMethod: ipvs.Masquerade, Weight: 0},
			}},
		{ipvs.Service{Family: ipvs.INET, Protocol: ipvs.UDP, Address: v4("192.0.2.10"), Port: 53, Scheduler: "sh",
			Flags: ipvs.ServicePersistent | ipvs.ServiceSchedulerOpt1, Timeout: 600, Netmask: netmask.MaskFrom(24, 32)},
			[]ipvs.Destination{{Family: ipvs.INET, Address: v4("192.0.2.21"), Port: 53, FwdMethod: ipvs.DirectRoute, Weight: 1}}},
		{ipvs.Service{Family: ipvs.INET, Protocol: ipvs.SCTP, Address: v4("192.0.2.11"), Port: 3868, Scheduler: "rr"},
			[]ipvs.Destination{
				{Family: ipvs.INET, Address: v4("198.51.100.1"), Port: 3868, FwdMethod: ipvs.Tunnel, Weight: 2},
				{Family: ipvs.INET, Address: v4("198.51.100.2"), Port: 3868, FwdMethod: ipvs.Tunnel, Weight: 2,
					TunnelType: ipvs.GUE, TunnelPort: 6080, TunnelFlags: ipvs.TunnelEncapChecksum},
			}},
		{ipvs.Service{Family: ipvs.INET6, Protocol: ipvs.TCP, Address: v4("2001:db8::10"), Port: 443, Scheduler: "mh",
			Flags: ipvs.ServicePersistent, Timeout: 300, Netmask: netmask.MaskFrom(64, 128)},
			[]ipvs.Destination{{Family: ipvs.INET6, Address: v4("2001:db8:1::1"), Port: 443, FwdMethod: ipvs.Masquerade, Weight: 5}}},
		{ipvs.Service{Family: ipvs.INET, FWMark: 7, Scheduler: "lc"},
			[]ipvs.Destination{{Family: ipvs.INET, Address: v4("10.0.0.9"), Port: 0, FwdMethod: ipvs.DirectRoute, Weight: 1}}},
		{ipvs.Service{Family: ipvs.INET6, FWMark: 8, Scheduler: "rr"}, nil},
	}
	for _, e := range table {
		if !e.s.Netmask.IsValid() {
			// The kernel wants one for every service.
			e.s.Netmask = netmask.MaskFrom(32, 32)
			if e.s.Family == ipvs.INET6 {
				e.s.Netmask = netmask.MaskFrom(128, 128)
			}
		}
		if err := ref.CreateService(e.s); err != nil {
			t.Fatalf("create %+v: %v", e.s, err)
		}
		for _, d := range e.dests {
			if err := ref.CreateDestination(e.s, d); err != nil {
				t.Fatalf("add %+v to %+v: %v", d, e.s, err)
			}
		}
	}
	want, err := ref.Services()
	if err != nil {
		t.Fatal(err)
	}
	got, err := fast.Services()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(table) || !reflect.DeepEqual(got, want) {
		t.Fatalf("services:\n ipvsdump   %+v\n cloudflare %+v", got, want)
	}
	for _, s := range want {
		wd, werr := ref.Destinations(s.Service)
		gd, gerr := fast.Destinations(s.Service)
		if !reflect.DeepEqual(gd, wd) || errors.Is(gerr, os.ErrNotExist) != errors.Is(werr, os.ErrNotExist) {
			t.Errorf("destinations of %+v:\n ipvsdump   %+v (%v)\n cloudflare %+v (%v)", s.Service, gd, gerr, wd, werr)
		}
	}
	// A service the kernel does not have has no destinations, in the
	// same words.
	missing := ipvs.Service{Family: ipvs.INET, Protocol: ipvs.TCP, Address: v4("203.0.113.1"), Port: 1}
	if _, err := fast.Destinations(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a missing service: %v, want os.ErrNotExist", err)
	}
	// The socket is still in step after all that: a later dump is whole.
	if again, err := fast.Services(); err != nil || !reflect.DeepEqual(again, want) {
		t.Errorf("a later dump: %d services, %v", len(again), err)
	}
}
