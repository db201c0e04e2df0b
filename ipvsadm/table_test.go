package ipvsadm

import (
	"fmt"
	"net/netip"
	"strings"
	"syscall"
	"testing"

	"github.com/cloudflare/ipvs"
)

func label(s *Service) string {
	if s.FWMark != 0 {
		return fmt.Sprintf("FWM %d", int32(s.FWMark))
	}
	return s.Address.String()
}

// ipvsadm's comparison wraps 32-bit differences, so it is not even
// transitive, and its order depends on the order the kernel dumps in.
// The expected orders are glibc 2.36's qsort with libipvs's
// ipvs_cmp_services, compiled and run on the same inputs.
func TestSortIsIpvsadms(t *testing.T) {
	v4 := func(a string) Service { return svc4(ipvs.TCP, a, 80, "rr") }
	fw := func(m uint32) Service {
		return Service{ServiceExtended: ipvs.ServiceExtended{Service: ipvs.Service{FWMark: m, Family: ipvs.INET, Scheduler: "rr"}}}
	}
	for _, tc := range []struct {
		in   []Service
		want string
	}{
		{[]Service{v4("10.0.0.1"), v4("172.16.0.1"), v4("192.0.2.1"), fw(7), fw(4294967295), fw(2147483648)},
			"172.16.0.1 192.0.2.1 10.0.0.1 FWM 7 FWM -2147483648 FWM -1"},
		{[]Service{fw(4294967295), fw(7), v4("192.0.2.1"), fw(2147483648), v4("10.0.0.1"), v4("172.16.0.1")},
			"FWM -2147483648 FWM -1 172.16.0.1 192.0.2.1 10.0.0.1 FWM 7"},
	} {
		tab := &Table{Services: tc.in}
		tab.Sort()
		var got []string
		for i := range tab.Services {
			got = append(got, label(&tab.Services[i]))
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("got  %s\nwant %s", strings.Join(got, " "), tc.want)
		}
	}
}

func TestMergeSortIsStable(t *testing.T) {
	s := []int{5, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5}
	idx := make([][2]int, len(s))
	for i, v := range s {
		idx[i] = [2]int{v, i}
	}
	mergeSort(idx, func(a, b *[2]int) int { return a[0] - b[0] })
	for i := 1; i < len(idx); i++ {
		if idx[i-1][0] > idx[i][0] || (idx[i-1][0] == idx[i][0] && idx[i-1][1] > idx[i][1]) {
			t.Fatalf("not a stable sort: %v", idx)
		}
	}
}

type failingReader struct {
	fakeKernel
	infoErr, svcErr, destErr error
}

func (r *failingReader) Info() (ipvs.Info, error) { return r.info, r.infoErr }
func (r *failingReader) Services() ([]ipvs.ServiceExtended, error) {
	if r.svcErr != nil {
		return nil, r.svcErr
	}
	return r.fakeKernel.Services()
}
func (r *failingReader) Destinations(s ipvs.Service) ([]ipvs.DestinationExtended, error) {
	if r.destErr != nil {
		return nil, r.destErr
	}
	return r.fakeKernel.Destinations(s)
}

func TestReadErrors(t *testing.T) {
	k := newFakeKernel()
	if err := k.CreateService(tcp4("192.0.2.10", 80)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		r    *failingReader
		want string
	}{
		{&failingReader{fakeKernel: *k, infoErr: syscall.ENOPROTOOPT}, "read IPVS info: protocol not available"},
		{&failingReader{fakeKernel: *k, svcErr: syscall.EPERM}, "read IPVS services: operation not permitted"},
		{&failingReader{fakeKernel: *k, destErr: syscall.ESRCH}, "read real servers of -t 192.0.2.10:80: no such process"},
	} {
		_, err := Read(tc.r)
		if err == nil || err.Error() != tc.want {
			t.Errorf("got %v, want %s", err, tc.want)
		}
	}
	// No real servers is os.ErrNotExist from cloudflare/ipvs: no error.
	tab, err := Read(&failingReader{fakeKernel: *k})
	if err != nil || len(tab.Services) != 1 || tab.Services[0].Dests != nil {
		t.Errorf("%+v %v", tab, err)
	}
}

// repeatingReader answers a service dump with one service twice, as
// the kernel does when another namespace changes mid-dump.
type repeatingReader struct{ fakeKernel }

func (r *repeatingReader) Services() ([]ipvs.ServiceExtended, error) {
	svcs, err := r.fakeKernel.Services()
	return append(svcs, svcs[0]), err
}

func TestReadDropsRepeatsOfATornDump(t *testing.T) {
	k := newFakeKernel()
	for _, s := range []ipvs.Service{tcp4("192.0.2.10", 80), tcp4("192.0.2.10", 443), {Family: ipvs.INET, FWMark: 7}} {
		if err := k.CreateService(s); err != nil {
			t.Fatal(err)
		}
	}
	tab, err := Read(&repeatingReader{fakeKernel: *k})
	if err != nil {
		t.Fatal(err)
	}
	if len(tab.Services) != 3 {
		t.Fatalf("got %d services, want 3: %+v", len(tab.Services), tab.Services)
	}
}

func TestDescribeService(t *testing.T) {
	for _, tc := range []struct {
		s    ipvs.Service
		want string
	}{
		{tcp4("192.0.2.10", 80), "-t 192.0.2.10:80"},
		{ipvs.Service{Protocol: ipvs.SCTP, Address: netip.MustParseAddr("2001:db8::1"), Port: 5, Family: ipvs.INET6}, "--sctp-service [2001:db8::1]:5"},
		{ipvs.Service{FWMark: 3, Family: ipvs.INET6}, "-f 3 -6"},
	} {
		if got := describeService(tc.s); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}
