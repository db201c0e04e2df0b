package ipvsadm

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/cloudflare/ipvs"
)

// procConns is /proc/net/ip_vs_conn as the kernel writes it
// (ip_vs_conn_seq_show): IPv4 as %08X, IPv6 as %pI6 (no compression),
// ports as %04X, the expiry in seconds as %7u, then " PENAME PEDATA"
// when a persistence engine holds data.
const procConns = `Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData
TCP C0A80A05 D431 C000020A 0050 0A00010B 0050 ESTABLISHED     899
UDP C0A80A05 8CA1 C0000235 0035 0A00010B 0035 NONE            299
TCP 2001:0db8:0000:0000:0000:0000:0000:0005 D432 2001:0db8:0000:0000:0000:0000:0000:0010 0050 2001:0db8:0002:0000:0000:0000:0000:0011 0050 SYN_RECV         59
TCP C0A80A06 0000 C000020A 0000 0A00010B 0000 NONE           6001 sip 1234
`

// The expected outputs are ipvsadm 1.31's print_conn formats applied
// by hand (printf's %-Ns), the expiry as %02d:%02d of minutes and
// seconds, which grows past five columns after 99 minutes.
func TestWriteConns(t *testing.T) {
	for _, c := range []struct {
		name string
		o    ListOptions
		want string
	}{
		{"numeric", ListOptions{Numeric: true}, `IPVS connection entries
pro expire state       source             virtual            destination
TCP 14:59  ESTABLISHED 192.168.10.5:54321 192.0.2.10:80      10.0.1.11:80
UDP 04:59  NONE        192.168.10.5:36001 192.0.2.53:53      10.0.1.11:53
TCP 00:59  SYN_RECV    [2001:db8::5]:54322 [2001:db8::10]:80  [2001:db8:2::11]:80
TCP 100:01 NONE        192.168.10.6:0     192.0.2.10:0       10.0.1.11:0
`},
		{"persistent-conn", ListOptions{Numeric: true, Persistent: true}, `IPVS connection entries
pro expire state       source             virtual            destination        pe name          pe_data
TCP 14:59  ESTABLISHED 192.168.10.5:54321 192.0.2.10:80      10.0.1.11:80
UDP 04:59  NONE        192.168.10.5:36001 192.0.2.53:53      10.0.1.11:53
TCP 00:59  SYN_RECV    [2001:db8::5]:54322 [2001:db8::10]:80  [2001:db8:2::11]:80
TCP 100:01 NONE        192.168.10.6:0     192.0.2.10:0       10.0.1.11:0      sip                1234
`},
	} {
		t.Run(c.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := WriteConns(&b, strings.NewReader(procConns), c.o, nil); err != nil {
				t.Fatal(err)
			}
			if b.String() != c.want {
				t.Errorf("got\n%s\nwant\n%s", b.String(), c.want)
			}
		})
	}
}

func TestWriteConnsNames(t *testing.T) {
	var b bytes.Buffer
	r := connNames{hosts: map[netip.Addr]string{netip.MustParseAddr("192.0.2.10"): "www"}, ports: map[uint16]string{80: "http"}}
	if err := WriteConns(&b, strings.NewReader(procConns), ListOptions{}, r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "TCP 14:59  ESTABLISHED 192.168.10.5:54321 www:http           10.0.1.11:http\n") {
		t.Errorf("names not used as ipvsadm uses them:\n%s", b.String())
	}
}

type connNames struct {
	hosts map[netip.Addr]string
	ports map[uint16]string
}

func (f connNames) LookupAddr(a netip.Addr) (string, error) {
	if h, ok := f.hosts[a]; ok {
		return h, nil
	}
	return "", errors.New("no name")
}

func (f connNames) ServiceName(port uint16, _ ipvs.Protocol) (string, bool) {
	n, ok := f.ports[port]
	return n, ok
}

func TestWriteConnsEmpty(t *testing.T) {
	var b bytes.Buffer
	if err := WriteConns(&b, strings.NewReader(""), ListOptions{Numeric: true}, nil); err == nil {
		t.Errorf("no header line: want ipvsadm's error, got\n%s", b.String())
	}
}

func TestWriteTimeout(t *testing.T) {
	var b bytes.Buffer
	if err := WriteTimeout(&b, ipvs.Config{TCPTimeout: 900, TCPFinTimeout: 120, UDPTimeout: 300}); err != nil {
		t.Fatal(err)
	}
	if want := "Timeout (tcp tcpfin udp): 900 120 300\n"; b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
}

func TestWriteDaemons(t *testing.T) {
	var b bytes.Buffer
	ds := []SyncDaemon{
		{Interface: "eth1", SyncID: 7, MaxLen: 1472, Group: netip.MustParseAddr("224.0.0.81"), Port: 8848, TTL: 1},
		{Backup: true, Interface: "eth2", SyncID: 0},
	}
	if err := WriteDaemons(&b, ds); err != nil {
		t.Fatal(err)
	}
	want := "master sync daemon (mcast=eth1, syncid=7, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n" +
		"backup sync daemon (mcast=eth2, syncid=0)\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}
