package ipvsadm

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/cloudflare/ipvs"
	"github.com/cloudflare/ipvs/netmask"
)

// The expected values are C's: print_largenum compiled from ipvsadm
// 1.31's source and run with glibc.
func TestFormatNumber(t *testing.T) {
	for _, tc := range []struct {
		n            uint64
		short, exact string
	}{
		{0, "        0", "        0"},
		{1, "        1", "        1"},
		{999, "      999", "      999"},
		{1000, "     1000", "     1000"},
		{9999, "     9999", "     9999"},
		{10000, "    10000", "    10000"},
		{1234567, "  1234567", "  1234567"},
		{99999999, " 99999999", " 99999999"},
		{100000000, "  100000K", " 100000000"},
		{100000001, "  100000K", " 100000001"},
		{999999999, "  999999K", " 999999999"},
		{1000000000, "    1000M", " 1000000000"},
		{1234567890, "    1234M", " 1234567890"},
		{99999999999, "   99999M", " 99999999999"},
		{100000000000, "     100G", " 100000000000"},
		{99999999999999, "   99999G", " 99999999999999"},
		{100000000000000, "     100T", " 100000000000000"},
		{1234567890123456, "    1234T", " 1234567890123456"},
		{18446744073709551615, "18446744T", " 18446744073709551615"},
	} {
		if got := FormatNumber(tc.n, false); got != tc.short {
			t.Errorf("FormatNumber(%d, false) = %q, want %q", tc.n, got, tc.short)
		}
		if got := FormatNumber(tc.n, true); got != tc.exact {
			t.Errorf("FormatNumber(%d, true) = %q, want %q", tc.n, got, tc.exact)
		}
	}
}

// The expected values are glibc's inet_ntop.
func TestAddrStringIsGlibcInetNtop(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"::", "::"},
		{"::1", "::1"},
		{"::1.2.3.4", "::1.2.3.4"},
		{"::ffff:1.2.3.4", "::ffff:1.2.3.4"},
		{"::ffff:0:1.2.3.4", "::ffff:0:102:304"},
		{"2001:db8::1", "2001:db8::1"},
		{"2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"},
		{"2001:0:0:1:0:0:0:1", "2001:0:0:1::1"},
		{"1:0:0:0:0:0:0:0", "1::"},
		{"2001:db8:1:1:1:1:1:1", "2001:db8:1:1:1:1:1:1"},
		{"2001:db8::", "2001:db8::"},
		{"fe80::1:2", "fe80::1:2"},
		{"0:0:1::", "0:0:1::"},
		{"::0.0.1.0", "::100"},
		{"1::ffff:1.2.3.4", "1::ffff:102:304"},
		{"::ffff:0.0.0.0", "::ffff:0.0.0.0"},
		{"::2:0:0", "::2:0:0"},
		{"0:0:0:0:0:1:0:0", "::1:0:0"},
	} {
		if got := addrString(ipvs.INET6, netip.MustParseAddr(tc.in)); got != tc.want {
			t.Errorf("addrString(%s) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if got := addrString(ipvs.INET, netip.MustParseAddr("10.0.0.1")); got != "10.0.0.1" {
		t.Errorf("IPv4: %q", got)
	}
}

type fakeResolver struct {
	hosts    map[string]string
	services map[string]string // "port/proto"
	lookups  int
}

func (r *fakeResolver) LookupAddr(a netip.Addr) (string, error) {
	r.lookups++
	if h, ok := r.hosts[a.String()]; ok {
		return h, nil
	}
	return "", errors.New("not found")
}

func (r *fakeResolver) ServiceName(port uint16, proto ipvs.Protocol) (string, bool) {
	pn, _ := protoName(proto)
	s, ok := r.services[fmt.Sprintf("%d/%s", port, pn)]
	return s, ok
}

func mask4(ones int) netmask.Mask { return netmask.MaskFrom(ones, 32) }

func svc4(proto ipvs.Protocol, addr string, port uint16, sched string, dests ...ipvs.DestinationExtended) Service {
	return Service{
		ServiceExtended: ipvs.ServiceExtended{Service: ipvs.Service{
			Protocol: proto, Address: netip.MustParseAddr(addr), Port: port, Family: ipvs.INET,
			Scheduler: sched, Netmask: mask4(32), Flags: ipvs.ServiceHashed,
		}},
		Dests: dests,
	}
}

func dest(addr string, port uint16, fwd ipvs.ForwardType, weight uint32) ipvs.DestinationExtended {
	a := netip.MustParseAddr(addr)
	fam := ipvs.INET
	if a.Is6() {
		fam = ipvs.INET6
	}
	return ipvs.DestinationExtended{Destination: ipvs.Destination{Address: a, Port: port, Family: fam, FwdMethod: fwd, Weight: weight}}
}

func list(t *testing.T, tab *Table, o ListOptions, r Resolver) string {
	t.Helper()
	var b bytes.Buffer
	if err := WriteList(&b, tab, o, r); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// Without -n ipvsadm shows names: addr_to_anyname and port_to_anyname,
// with the service name from the service's protocol, never for a
// fwmark service's real servers, and the numbers when a lookup fails.
// Names are cut to the columns (33 bytes for an IPv4 service, 28 for
// an IPv4 real server, 59 for anything) and IPv6 names are bracketed.
func TestListResolvedNames(t *testing.T) {
	r := &fakeResolver{
		hosts: map[string]string{
			"192.0.2.10":   "www.example.com",
			"192.0.2.11":   "a-very-long-host-name-for-the-column.example.com",
			"10.0.1.11":    "rs1.example.com",
			"10.0.1.12":    "a-long-real-server-name.example.com",
			"2001:db8::10": "v6.example.com",
			"2001:db8::11": "an-extremely-long-ipv6-real-server-host-name.example.com",
		},
		services: map[string]string{"80/tcp": "http", "443/tcp": "https", "53/udp": "domain", "3868/sctp": "diameter"},
	}
	fw := Service{ServiceExtended: ipvs.ServiceExtended{Service: ipvs.Service{FWMark: 5, Family: ipvs.INET, Scheduler: "rr", Netmask: mask4(32)}},
		Dests: []ipvs.DestinationExtended{dest("10.0.1.11", 80, ipvs.DirectRoute, 1)}}
	v6 := Service{ServiceExtended: ipvs.ServiceExtended{Service: ipvs.Service{Protocol: ipvs.TCP, Address: netip.MustParseAddr("2001:db8::10"),
		Port: 443, Family: ipvs.INET6, Scheduler: "wlc", Netmask: netmask.MaskFrom(128, 128)}},
		Dests: []ipvs.DestinationExtended{dest("2001:db8::11", 443, ipvs.Masquerade, 1), dest("2001:db8::99", 8443, ipvs.Masquerade, 1)}}
	tab := &Table{Info: ipvs.Info{Version: [3]int{1, 2, 1}, ConnectionTableSize: 4096}, Services: []Service{
		svc4(ipvs.TCP, "192.0.2.10", 80, "wlc", dest("10.0.1.11", 80, ipvs.Masquerade, 1), dest("10.0.1.12", 8080, ipvs.Masquerade, 1), dest("10.0.9.9", 443, ipvs.Masquerade, 1)),
		svc4(ipvs.TCP, "192.0.2.11", 443, "rr"),
		svc4(ipvs.UDP, "192.0.2.10", 53, "rr", dest("10.0.1.11", 53, ipvs.Masquerade, 1)),
		svc4(ipvs.SCTP, "192.0.2.10", 3868, "rr"),
		fw, v6,
	}}
	want := "IP Virtual Server version 1.2.1 (size=4096)\n" +
		"Prot LocalAddress:Port Scheduler Flags\n" +
		"  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n" +
		"TCP  www.example.com:http wlc\n" +
		"  -> rs1.example.com:http         Masq    1      0          0         \n" +
		"  -> a-long-real-server-name.exam Masq    1      0          0         \n" +
		"  -> 10.0.9.9:https               Masq    1      0          0         \n" +
		"TCP  a-very-long-host-name-for-th rr\n" +
		"UDP  www.example.com:domain rr\n" +
		"  -> rs1.example.com:domain       Masq    1      0          0         \n" +
		"SCTP www.example.com:diameter rr\n" +
		"FWM  5 rr\n" +
		"  -> rs1.example.com:80           Route   1      0          0         \n" +
		"TCP  [v6.example.com]:https wlc\n" +
		"  -> [an-extremely-long-ipv6-real-server-host-name.example.com]: Masq    1      0          0         \n" +
		"  -> [2001:db8::99]:8443          Masq    1      0          0         \n"
	if got := list(t, tab, ListOptions{}, r); got != want {
		t.Errorf("ipvsadm -L:\n%s", textDiff(want, got))
	}
	// One lookup per address, however many lines show it.
	if r.lookups != 8 {
		t.Errorf("%d host lookups, want 8", r.lookups)
	}
	// -n never asks.
	r.lookups = 0
	if got := list(t, tab, ListOptions{Numeric: true}, r); !strings.Contains(got, "TCP  192.0.2.10:80 wlc\n") || r.lookups != 0 {
		t.Errorf("ipvsadm -L -n looked up %d names:\n%s", r.lookups, got)
	}
}

// Large counters: print_largenum for every service column and for the
// byte columns of real servers, plain %8llu for a real server's CPS,
// InPPS and OutPPS. The expected lines are C's printf.
func TestListLargeStats(t *testing.T) {
	big := ipvs.Stats{
		Connections: 1234567890123, IncomingPackets: 99999999, OutgoingPackets: 100000000,
		IncomingBytes: 18446744073709551615, OutgoingBytes: 99999999999,
		ConnectionRate: 123456789, IncomingPacketRate: 1000000000, OutgoingPacketRate: 7,
		IncomingByteRate: 1000000000000, OutgoingByteRate: 99999999999999,
	}
	d := dest("10.0.1.11", 80, ipvs.Masquerade, 1)
	d.Stats64 = big
	s := svc4(ipvs.TCP, "192.0.2.10", 80, "wlc", d)
	s.Stats64 = big
	// The 32-bit counters are only a fallback for kernels without 64.
	s.Stats = ipvs.Stats{Connections: 1}
	tab := &Table{Services: []Service{s}}
	for _, tc := range []struct {
		o         ListOptions
		svc, dest string
	}{
		{ListOptions{Numeric: true, Stats: true},
			"TCP  192.0.2.10:80                   1234G 99999999  100000K18446744T   99999M",
			"  -> 10.0.1.11:80                    1234G 99999999  100000K18446744T   99999M"},
		{ListOptions{Numeric: true, Stats: true, Exact: true},
			"TCP  192.0.2.10:80                1234567890123 99999999 100000000 18446744073709551615 99999999999",
			"  -> 10.0.1.11:80                 1234567890123 99999999 100000000 18446744073709551615 99999999999"},
		{ListOptions{Numeric: true, Rate: true},
			"TCP  192.0.2.10:80                 123456K    1000M        7    1000G   99999G",
			"  -> 10.0.1.11:80                 123456789 1000000000        7    1000G   99999G"},
		{ListOptions{Numeric: true, Rate: true, Exact: true},
			"TCP  192.0.2.10:80                123456789 1000000000        7 1000000000000 99999999999999",
			"  -> 10.0.1.11:80                 123456789 1000000000        7 1000000000000 99999999999999"},
		// --stats wins over --rate, as in ipvsadm.
		{ListOptions{Numeric: true, Stats: true, Rate: true},
			"TCP  192.0.2.10:80                   1234G 99999999  100000K18446744T   99999M",
			"  -> 10.0.1.11:80                    1234G 99999999  100000K18446744T   99999M"},
	} {
		got := list(t, tab, tc.o, nil)
		want := tc.svc + "\n" + tc.dest + "\n"
		if !strings.HasSuffix(got, want) {
			t.Errorf("%+v:\n%s", tc.o, textDiff(want, got[strings.Index(got, "TCP"):]))
		}
	}
}

// Values ipvsadm itself cannot set but the kernel keeps: forwarding
// methods without a name print glibc's "(null)", weights over INT_MAX
// print negative (%d), an empty scheduler flag list prints "()".
func TestListOddValues(t *testing.T) {
	s := svc4(ipvs.TCP, "192.0.2.10", 80, "sh", dest("10.0.1.11", 80, ipvs.Bypass, 4294967295))
	s.Flags |= ipvs.ServiceSchedulerOpt3
	tab := &Table{Info: ipvs.Info{Version: [3]int{1, 2, 1}, ConnectionTableSize: 4096}, Services: []Service{s}}
	got := list(t, tab, ListOptions{Numeric: true}, nil)
	for _, want := range []string{
		"TCP  192.0.2.10:80 sh ()\n",
		"  -> 10.0.1.11:80                 (null)  -1     0          0         \n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in\n%s", want, got)
		}
	}
	var save bytes.Buffer
	if err := WriteSave(&save, tab); err != nil {
		t.Fatal(err)
	}
	if want := "-A -t 192.0.2.10:80 -s sh -b \n-a -t 192.0.2.10:80 -r 10.0.1.11:80 (null) -w -1\n"; save.String() != want {
		t.Errorf("save:\n%s", textDiff(want, save.String()))
	}
}

// An empty kernel table reads as an empty table (cloudflare/ipvs says
// os.ErrNotExist) and lists as ipvsadm lists it.
func TestEmptyTable(t *testing.T) {
	tab, err := Read(newFakeKernel())
	if err != nil {
		t.Fatal(err)
	}
	want := "IP Virtual Server version 1.2.1 (size=4096)\n" +
		"Prot LocalAddress:Port Scheduler Flags\n" +
		"  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
	if got := list(t, tab, ListOptions{Numeric: true}, nil); got != want {
		t.Errorf("%s", textDiff(want, got))
	}
	var save bytes.Buffer
	if err := WriteSave(&save, tab); err != nil || save.Len() != 0 {
		t.Errorf("save of an empty table: %q, %v", save.String(), err)
	}
}

func TestParseServices(t *testing.T) {
	db := parseServices(strings.NewReader("# comment\nhttp\t\t80/tcp\t\twww # WorldWideWeb\nhttp 80/udp\nbad line\ndomain 53/udp\nx 99999/tcp\nhttp-alt 80/tcp\nsctp1 3868/sctp diameter\n"))
	for _, tc := range []struct {
		port  uint16
		proto ipvs.Protocol
		want  string
	}{{80, ipvs.TCP, "http"}, {53, ipvs.UDP, "domain"}, {53, ipvs.TCP, ""}, {3868, ipvs.SCTP, "sctp1"}, {80, 0, ""}} {
		if got, _ := db.name(tc.port, tc.proto); got != tc.want {
			t.Errorf("name(%d, %v) = %q, want %q", tc.port, tc.proto, got, tc.want)
		}
	}
	if p, ok := db.port("www", ipvs.TCP); !ok || p != 80 {
		t.Errorf("alias www: %d %v", p, ok)
	}
	if p, ok := db.port("diameter", ipvs.SCTP); !ok || p != 3868 {
		t.Errorf("alias diameter: %d %v", p, ok)
	}
	if _, ok := db.port("www", ipvs.UDP); ok {
		t.Errorf("www/udp found")
	}
	r := &SystemResolver{ServicesFile: "testdata/does-not-exist"}
	if _, ok := r.ServiceName(80, ipvs.TCP); ok {
		t.Errorf("a missing services file names ports")
	}
}

func TestSystemResolverServicesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "services")
	if err := os.WriteFile(path, []byte("http 80/tcp www\ndomain 53/udp\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := &SystemResolver{ServicesFile: path}
	if name, ok := r.ServiceName(80, ipvs.TCP); !ok || name != "http" {
		t.Errorf("ServiceName(80/tcp) = %q %v", name, ok)
	}
	if port, ok := r.ServicePort("www", ipvs.TCP); !ok || port != 80 {
		t.Errorf("ServicePort(www/tcp) = %d %v", port, ok)
	}
	if _, ok := r.ServicePort("domain", ipvs.TCP); ok {
		t.Errorf("domain/tcp found")
	}
	var _ Resolver = r
	var _ NameLookup = r
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, syscall.EPIPE }

func TestWriteErrors(t *testing.T) {
	tab := &Table{}
	for name, err := range map[string]error{
		"WriteList": WriteList(failWriter{}, tab, ListOptions{Numeric: true}, nil),
		"WriteJSON": WriteJSON(failWriter{}, tab),
	} {
		if !errors.Is(err, syscall.EPIPE) || !strings.HasPrefix(err.Error(), "write IPVS table: ") {
			t.Errorf("%s: %v", name, err)
		}
	}
}
