package ipvsadm

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"

	"github.com/cloudflare/ipvs"
)

// ConnProcFile is where the kernel lists IPVS connections, and where
// `ipvsadm -L -c` reads them (ipvsadm.c: CONN_PROC_FILE). IPVS has no
// netlink dump of connections.
const ConnProcFile = "/proc/net/ip_vs_conn"

// WriteConns writes the connections of r, a /proc/net/ip_vs_conn, exactly
// as `ipvsadm -L -c [-n] [--persistent-conn]` prints them (ipvsadm.c:
// list_conn, print_conn): the kernel's header line is replaced by
// ipvsadm's two, each entry is re-read as ipvsadm's sscanf reads it, and
// the expiry is shown as MM:SS. Only Numeric and Persistent of o matter.
func WriteConns(w io.Writer, r io.Reader, o ListOptions, res Resolver) error {
	if !o.Numeric && res == nil {
		res = NewSystemResolver()
	}
	names := newNameCache(res)
	br := bufio.NewReader(r)
	// list_conn reads with fgets into 256 bytes: a longer line is read
	// as several, each printed as an entry. readLine does the same.
	if _, err := readLine(br); err != nil {
		return fmt.Errorf("unexpected input from %s", ConnProcFile)
	}
	var b bytes.Buffer
	b.WriteString("IPVS connection entries\n")
	if o.Persistent {
		fmt.Fprintf(&b, "pro expire %-11s %-18s %-18s %-18s %-16s %s\n",
			"state", "source", "virtual", "destination", "pe name", "pe_data")
	} else {
		fmt.Fprintf(&b, "pro expire %-11s %-18s %-18s %s\n",
			"state", "source", "virtual", "destination")
	}
	for {
		line, err := readLine(br)
		if line != "" {
			printConn(&b, line, o, names)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", ConnProcFile, err)
		}
	}
	if _, err := w.Write(b.Bytes()); err != nil {
		return fmt.Errorf("write IPVS connections: %w", err)
	}
	return nil
}

// readLine is fgets(buf, 256, f): at most 255 bytes, up to and
// including a newline.
func readLine(br *bufio.Reader) (string, error) {
	var s []byte
	for len(s) < 255 {
		c, err := br.ReadByte()
		if err != nil {
			if len(s) > 0 && err == io.EOF {
				return string(s), nil
			}
			return string(s), err
		}
		s = append(s, c)
		if c == '\n' {
			break
		}
	}
	return string(s), nil
}

// printConn is print_conn. Entries the kernel never writes (fewer than
// nine fields) are skipped, where ipvsadm would print what its stack
// held.
func printConn(b *bytes.Buffer, line string, o ListOptions, names *nameCache) {
	f := strings.Fields(line)
	if len(f) < 9 {
		return
	}
	protocol, state := f[0], f[7]
	if len(state) > 15 { // char state[16]
		state = state[:15]
	}
	hex16 := func(s string) uint16 {
		s = strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
		v, _ := strconv.ParseUint(s, 16, 64)
		return uint16(v)
	}
	cport, vport, dport := hex16(f[2]), hex16(f[4]), hex16(f[6])
	expires, _ := strconv.ParseInt(f[8], 10, 64)
	e := uint32(expires)

	var proto ipvs.Protocol
	switch protocol {
	case "TCP":
		proto = ipvs.TCP
	case "UDP":
		proto = ipvs.UDP
	case "SCTP":
		proto = ipvs.SCTP
	}
	af := ipvs.INET
	var ca, va, da netip.Addr
	if a, err := netip.ParseAddr(f[1]); err == nil && a.Is6() {
		af = ipvs.INET6
		ca, va, da = a, parse6(f[3]), parse6(f[5])
	} else {
		// The kernel writes IPv4 addresses as %08X.
		h := func(s string) netip.Addr {
			v, _ := strconv.ParseUint(s, 16, 32)
			return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
		}
		ca, va, da = h(f[1]), h(f[3]), h(f[5])
	}
	name := func(a netip.Addr, port uint16) string {
		if o.Numeric {
			return addrPortNumeric(af, a, port)
		}
		return joinHostPort(af, names.host(af, a), names.port(port, proto))
	}
	cname, vname, dname := name(ca, cport), name(va, vport), name(da, dport)
	expire := fmt.Sprintf("%02d:%02d", e/60, e%60)
	if o.Persistent && len(f) >= 11 {
		fmt.Fprintf(b, "%-3s %-6s %-11s %-18s %-18s %-16s %-18s %s\n",
			protocol, expire, state, cname, vname, dname, f[9], f[10])
		return
	}
	fmt.Fprintf(b, "%-3s %-6s %-11s %-18s %-18s %s\n",
		protocol, expire, state, cname, vname, dname)
}

func parse6(s string) netip.Addr {
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is6() {
		return netip.IPv6Unspecified()
	}
	return a
}

// WriteTimeout writes the kernel's timeouts as `ipvsadm -L --timeout`
// prints them (ipvsadm.c: list_timeout).
func WriteTimeout(w io.Writer, c ipvs.Config) error {
	_, err := fmt.Fprintf(w, "Timeout (tcp tcpfin udp): %d %d %d\n", int32(c.TCPTimeout), int32(c.TCPFinTimeout), int32(c.UDPTimeout))
	return err
}

// SyncDaemon is one running sync daemon, as `ipvsadm -L --daemon`
// shows it.
type SyncDaemon struct {
	Backup    bool // false: master
	Interface string
	SyncID    uint32
	MaxLen    uint16
	Group     netip.Addr // invalid: the kernel sent none
	Port      uint16
	TTL       uint8
}

// WriteDaemons writes the sync daemons as `ipvsadm -L --daemon` prints
// them (ipvsadm.c: list_daemon), in the kernel's order.
func WriteDaemons(w io.Writer, ds []SyncDaemon) error {
	var b bytes.Buffer
	for i, d := range ds {
		if i == 2 { // libipvs keeps two
			break
		}
		typ := "master"
		if d.Backup {
			typ = "backup"
		}
		fmt.Fprintf(&b, "%s sync daemon (mcast=%s, syncid=%d", typ, d.Interface, int32(d.SyncID))
		if d.MaxLen != 0 {
			fmt.Fprintf(&b, ", maxlen=%d", d.MaxLen)
		}
		if d.Group.IsValid() {
			fmt.Fprintf(&b, ", group=%s", addrString(familyOf(d.Group), d.Group))
		}
		if d.Port != 0 {
			fmt.Fprintf(&b, ", port=%d", d.Port)
		}
		if d.TTL != 0 {
			fmt.Fprintf(&b, ", ttl=%d", d.TTL)
		}
		b.WriteString(")\n")
	}
	_, err := w.Write(b.Bytes())
	return err
}

func familyOf(a netip.Addr) ipvs.AddressFamily {
	if a.Is4() {
		return ipvs.INET
	}
	return ipvs.INET6
}
