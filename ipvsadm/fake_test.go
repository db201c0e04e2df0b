package ipvsadm

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/cloudflare/ipvs"
)

// fakeKernel is an in-memory IPVS table that answers like the kernel
// and cloudflare/ipvs do where it matters here: services and real
// servers kept in the order they were added, os.ErrNotExist for an
// empty dump, errno values for what the kernel refuses.
type fakeKernel struct {
	info     ipvs.Info
	services []Service
	config   ipvs.Config
	calls    []string
	// failOn makes the call with this description fail with the errno.
	failOn map[string]syscall.Errno
}

func newFakeKernel() *fakeKernel {
	return &fakeKernel{info: ipvs.Info{Version: [3]int{1, 2, 1}, ConnectionTableSize: 4096}}
}

// loadFixture reads a table saved from the real kernel, in the kernel's
// order.
func loadFixture(t testing.TB, name string) *fakeKernel {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var tab Table
	if err := json.Unmarshal(b, &tab); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return &fakeKernel{info: tab.Info, services: tab.Services}
}

func sameService(a, b *ipvs.Service) bool {
	if a.FWMark != 0 || b.FWMark != 0 {
		return a.FWMark == b.FWMark && a.Family == b.Family
	}
	return a.Protocol == b.Protocol && a.Address == b.Address && a.Port == b.Port && a.Family == b.Family
}

func (k *fakeKernel) find(s ipvs.Service) *Service {
	for i := range k.services {
		if sameService(&k.services[i].Service, &s) {
			return &k.services[i]
		}
	}
	return nil
}

func (k *fakeKernel) call(format string, args ...any) error {
	c := fmt.Sprintf(format, args...)
	k.calls = append(k.calls, c)
	if e, ok := k.failOn[c]; ok {
		return fmt.Errorf("netlink receive: %w", e)
	}
	return nil
}

func (k *fakeKernel) Info() (ipvs.Info, error) { return k.info, nil }

func (k *fakeKernel) Services() ([]ipvs.ServiceExtended, error) {
	if len(k.services) == 0 {
		return nil, os.ErrNotExist
	}
	var out []ipvs.ServiceExtended
	for _, s := range k.services {
		out = append(out, s.ServiceExtended)
	}
	return out, nil
}

func (k *fakeKernel) Destinations(s ipvs.Service) ([]ipvs.DestinationExtended, error) {
	svc := k.find(s)
	if svc == nil {
		return nil, fmt.Errorf("netlink receive: %w", syscall.ESRCH)
	}
	if len(svc.Dests) == 0 {
		return nil, os.ErrNotExist
	}
	return append([]ipvs.DestinationExtended(nil), svc.Dests...), nil
}

// kernelView is what the kernel reports back for a service it was given:
// the hashed flag set, no protocol or address for a fwmark service.
func kernelView(s ipvs.Service) ipvs.Service {
	s.Flags |= ipvs.ServiceHashed
	if s.FWMark != 0 {
		s.Protocol, s.Address, s.Port = 0, ipvs.Service{}.Address, 0
	}
	return s
}

func (k *fakeKernel) CreateService(s ipvs.Service) error {
	if err := k.call("add %s", describeService(s)); err != nil {
		return err
	}
	if k.find(s) != nil {
		return fmt.Errorf("netlink receive: %w", syscall.EEXIST)
	}
	k.services = append(k.services, Service{ServiceExtended: ipvs.ServiceExtended{Service: kernelView(s)}})
	return nil
}

func (k *fakeKernel) UpdateService(s ipvs.Service) error {
	if err := k.call("edit %s", describeService(s)); err != nil {
		return err
	}
	svc := k.find(s)
	if svc == nil {
		return fmt.Errorf("netlink receive: %w", syscall.ESRCH)
	}
	svc.Service = kernelView(s)
	return nil
}

func (k *fakeKernel) RemoveService(s ipvs.Service) error {
	if err := k.call("del %s", describeService(s)); err != nil {
		return err
	}
	for i := range k.services {
		if sameService(&k.services[i].Service, &s) {
			k.services = append(k.services[:i], k.services[i+1:]...)
			return nil
		}
	}
	return fmt.Errorf("netlink receive: %w", syscall.ESRCH)
}

func (k *fakeKernel) findDest(svc *Service, d ipvs.Destination) int {
	for i := range svc.Dests {
		if svc.Dests[i].Address == d.Address && svc.Dests[i].Port == d.Port {
			return i
		}
	}
	return -1
}

func (k *fakeKernel) CreateDestination(s ipvs.Service, d ipvs.Destination) error {
	if err := k.call("add %s %s", describeService(s), describeDest(d)); err != nil {
		return err
	}
	svc := k.find(s)
	if svc == nil {
		return fmt.Errorf("netlink receive: %w", syscall.ESRCH)
	}
	if k.findDest(svc, d) >= 0 {
		return fmt.Errorf("netlink receive: %w", syscall.EEXIST)
	}
	svc.Dests = append(svc.Dests, ipvs.DestinationExtended{Destination: d})
	return nil
}

func (k *fakeKernel) UpdateDestination(s ipvs.Service, d ipvs.Destination) error {
	if err := k.call("edit %s %s", describeService(s), describeDest(d)); err != nil {
		return err
	}
	svc := k.find(s)
	if svc == nil {
		return fmt.Errorf("netlink receive: %w", syscall.ESRCH)
	}
	i := k.findDest(svc, d)
	if i < 0 {
		return fmt.Errorf("netlink receive: %w", syscall.ENOENT)
	}
	svc.Dests[i].Destination = d
	return nil
}

func (k *fakeKernel) RemoveDestination(s ipvs.Service, d ipvs.Destination) error {
	if err := k.call("del %s %s", describeService(s), describeDest(d)); err != nil {
		return err
	}
	svc := k.find(s)
	if svc == nil {
		return fmt.Errorf("netlink receive: %w", syscall.ESRCH)
	}
	i := k.findDest(svc, d)
	if i < 0 {
		return fmt.Errorf("netlink receive: %w", syscall.ENOENT)
	}
	svc.Dests = append(svc.Dests[:i], svc.Dests[i+1:]...)
	return nil
}

func (k *fakeKernel) SetConfig(c ipvs.Config) error {
	if err := k.call("set %d %d %d", c.TCPTimeout, c.TCPFinTimeout, c.UDPTimeout); err != nil {
		return err
	}
	k.config = c
	return nil
}

var (
	_ Reader = (*fakeKernel)(nil)
	_ Writer = (*fakeKernel)(nil)
	_ Reader = ipvs.Client(nil)
	_ Writer = ipvs.Client(nil)
)

// textDiff shows where two texts differ, line by line, with the ends
// of lines visible.
func textDiff(want, got string) string {
	w, g := strings.SplitAfter(want, "\n"), strings.SplitAfter(got, "\n")
	var b strings.Builder
	for i := 0; i < max(len(w), len(g)); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d:\n  want %q\n  got  %q\n", i+1, wl, gl)
		}
	}
	return b.String()
}
