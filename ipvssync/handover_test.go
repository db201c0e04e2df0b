package ipvssync

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

// connTable is /proc/net/ip_vs_conn as a 6.1 kernel writes it.
const connTable = `Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData
TCP C6336401 D431 C000020A 0050 0A000101 0050 ESTABLISHED     899
TCP C6336402 A001 C000020A 0050 0A000102 0050 SYN_RECV         59
UDP C6336401 0035 C000020A 0035 0A000101 0035 UDP             299
TCP 2001:0db8:0000:0000:0000:0000:0000:0007 C350 2001:0db8:0000:0000:0000:0000:0000:000a 01BB 2001:0db8:0000:0000:0000:0000:0001:0001 01BB FIN_WAIT 119
TCP C6336401 0000 C000020A 0050 0A000101 0050 NONE            299
IP  C6336401 0000 00000000 0000 0A000101 0000 NONE            299
TCP C6336403 B000 C000020A 0050 0A000101 0050 WEIRD           10
TCP C6336401 D432 C000020A 0050 2001:0db8:0000:0000:0000:0000:0001:0001 0050 ESTABLISHED 10
SCTP C6336404 0B59 C000020A 0B59 0A000101 0B59 ESTABLISHED   899
UDP C6336405 1389 C000020A 13C4 0A000103 13C4 UDP              60 sip 6162
`

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func TestReadConns(t *testing.T) {
	var got []Conn
	skipped := 0
	cut, err := readConns(strings.NewReader(connTable), time.Now().Add(time.Hour), func(c Conn) { got = append(got, c) }, func() { skipped++ })
	if err != nil || cut {
		t.Fatalf("readConns: cut %v, %v", cut, err)
	}
	want := []Conn{
		{6, ap("198.51.100.1:54321"), ap("192.0.2.10:80"), ap("10.0.1.1:80"), 1},
		{6, ap("198.51.100.2:40961"), ap("192.0.2.10:80"), ap("10.0.1.2:80"), 3},
		{17, ap("198.51.100.1:53"), ap("192.0.2.10:53"), ap("10.0.1.1:53"), 0},
		{6, ap("[2001:db8::7]:50000"), ap("[2001:db8::a]:443"), ap("[2001:db8::1:1]:443"), 4},
		{132, ap("198.51.100.4:2905"), ap("192.0.2.10:2905"), ap("10.0.1.1:2905"), 8},
		{17, ap("198.51.100.5:5001"), ap("192.0.2.10:5060"), ap("10.0.1.3:5060"), 0},
	}
	if !slices.Equal(got, want) {
		t.Errorf("connections:\n got %v\nwant %v", got, want)
	}
	// The template (client port 0), the fwmark template (IP), the unknown
	// state and the IPv4 connection to an IPv6 destination.
	if skipped != 4 {
		t.Errorf("skipped %d lines, want 4", skipped)
	}
}

func TestReadConnsStopsAtDeadline(t *testing.T) {
	line := "TCP C6336401 D431 C000020A 0050 0A000101 0050 ESTABLISHED     899\n"
	n := 0
	cut, err := readConns(strings.NewReader(strings.Repeat(line, 1000)), time.Now(), func(Conn) { n++ }, func() {})
	if err != nil || !cut {
		t.Fatalf("cut %v, err %v; want cut", cut, err)
	}
	if n == 0 || n >= 1000 {
		t.Errorf("read %d of 1000 connections before the deadline that had passed; want some, not all", n)
	}
}

// syncEntry is one connection as the kernel's backup daemon would read it.
type syncEntry struct {
	conn   Conn
	flags  uint32
	fwmark uint32
}

// decodeSync reads a message the way ip_vs_process_message does, and
// fails where the kernel would drop it.
func decodeSync(b []byte, syncID uint8) ([]syncEntry, error) {
	if len(b) < syncHeaderLen {
		return nil, errors.New("short header")
	}
	if int(binary.BigEndian.Uint16(b[2:])) != len(b) {
		return nil, errors.New("bogus message size")
	}
	if b[1] != syncID {
		return nil, fmt.Errorf("syncid %d", b[1])
	}
	if b[0] != 0 || b[5] != syncVersion || b[6] != 0 || b[7] != 0 {
		return nil, errors.New("not a version 1 message")
	}
	var out []syncEntry
	p := syncHeaderLen
	for i := 0; i < int(b[4]); i++ {
		if p+syncEntryLen4 > len(b) {
			return nil, errors.New("too small")
		}
		vs := binary.BigEndian.Uint16(b[p+2:])
		size := int(vs & 0x0fff)
		if vs>>12 != 0 || p+size > len(b) {
			return nil, errors.New("bad entry size or version")
		}
		e := b[p : p+size]
		alen := 4
		if e[0]&syncTypeInet6 != 0 {
			alen = 16
		}
		if size != 24+3*alen {
			return nil, fmt.Errorf("entry of %d bytes for %d-byte addresses", size, alen)
		}
		addr := func(i int) netip.Addr {
			a, _ := netip.AddrFromSlice(e[24+i*alen : 24+(i+1)*alen])
			return a
		}
		out = append(out, syncEntry{
			conn: Conn{
				Protocol: e[1],
				State:    binary.BigEndian.Uint16(e[8:]),
				Client:   netip.AddrPortFrom(addr(0), binary.BigEndian.Uint16(e[10:])),
				Virtual:  netip.AddrPortFrom(addr(1), binary.BigEndian.Uint16(e[12:])),
				Dest:     netip.AddrPortFrom(addr(2), binary.BigEndian.Uint16(e[14:])),
			},
			flags:  binary.BigEndian.Uint32(e[4:]),
			fwmark: binary.BigEndian.Uint32(e[16:]),
		})
		if binary.BigEndian.Uint32(e[20:]) != 0 {
			return nil, errors.New("a timeout was sent")
		}
		p += (size + 3) &^ 3
	}
	if p != len(b) {
		return nil, fmt.Errorf("%d bytes after the last entry", len(b)-p)
	}
	return out, nil
}

type fakeSyncSender struct {
	msgs [][]byte
	err  error
}

func (f *fakeSyncSender) Send(b []byte) error {
	if f.err != nil {
		return f.err
	}
	f.msgs = append(f.msgs, slices.Clone(b))
	return nil
}
func (f *fakeSyncSender) Close() error { return nil }

func (f *fakeSyncSender) entries(t *testing.T, syncID uint8) []syncEntry {
	t.Helper()
	var out []syncEntry
	for _, m := range f.msgs {
		es, err := decodeSync(m, syncID)
		if err != nil {
			t.Fatalf("the kernel would drop message %x: %v", m, err)
		}
		out = append(out, es...)
	}
	return out
}

// The flags tell the peer's kernel how to forward a connection it cannot
// bind to a destination of its own, and whether it counts as active.
func TestSyncWriterEntries(t *testing.T) {
	var f fakeSyncSender
	w := syncWriter{syncID: 7, maxLen: 1472, send: f.Send}
	c := []Conn{
		{6, ap("198.51.100.1:54321"), ap("192.0.2.10:80"), ap("10.0.1.1:80"), tcpEstablished},
		{6, ap("198.51.100.2:40961"), ap("192.0.2.10:80"), ap("10.0.1.2:80"), 3},
		{17, ap("[2001:db8::7]:53"), ap("[2001:db8::a]:53"), ap("[2001:db8::1:1]:53"), 0},
		{132, ap("198.51.100.4:2905"), ap("192.0.2.10:2905"), ap("10.0.1.1:2905"), sctpEstablished},
	}
	w.add(c[0], 0, ForwardRoute)
	w.add(c[1], 0, ForwardMasq)
	w.add(c[2], 5, ForwardTunnel)
	w.add(c[3], 0, ForwardMasq)
	w.flush()
	if w.err != nil || w.messages != 1 || len(f.msgs) != 1 {
		t.Fatalf("err %v, %d messages sent, %d counted; want 1", w.err, len(f.msgs), w.messages)
	}
	want := []syncEntry{
		{c[0], 0x0003 | connFlagNoOutput, 0},
		{c[1], connFlagInactive, 0},
		{c[2], 0x0002 | connFlagNoOutput | connFlagInactive, 5},
		{c[3], 0, 0},
	}
	if got := f.entries(t, 7); !slices.Equal(got, want) {
		t.Errorf("entries:\n got %+v\nwant %+v", got, want)
	}
}

// Messages never exceed the peer's buffer nor the 255 entries the header
// can count, and none is sent empty.
func TestSyncWriterSplits(t *testing.T) {
	for _, tc := range []struct {
		maxLen, n, v6, wantMsgs int
	}{
		{maxLen: 1472, n: 0, wantMsgs: 0},
		{maxLen: syncHeaderLen + 2*syncEntryLen4, n: 5, wantMsgs: 3},
		{maxLen: syncHeaderLen + syncEntryLen6, n: 2, v6: 2, wantMsgs: 2},
		{maxLen: 65000, n: 600, wantMsgs: 3},
		{maxLen: 1472, n: 100, v6: 50, wantMsgs: 4},
	} {
		t.Run(fmt.Sprintf("max%d/n%d/v6%d", tc.maxLen, tc.n, tc.v6), func(t *testing.T) {
			var f fakeSyncSender
			w := syncWriter{syncID: 1, maxLen: tc.maxLen, send: f.Send}
			var want []Conn
			for i := range tc.n {
				c := Conn{6, netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)}), 1024), ap("192.0.2.10:80"), ap("10.0.1.1:80"), tcpEstablished}
				if i < tc.v6 {
					c.Client = netip.AddrPortFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: byte(i >> 8), 15: byte(i)}), 1024)
					c.Virtual, c.Dest = ap("[2001:db8::a]:80"), ap("[2001:db8::1:1]:80")
				}
				if !w.add(c, 0, ForwardRoute) {
					t.Fatalf("connection %d refused", i)
				}
				want = append(want, c)
			}
			w.flush()
			if len(f.msgs) != tc.wantMsgs || w.messages != tc.wantMsgs {
				t.Errorf("%d messages sent, %d counted; want %d", len(f.msgs), w.messages, tc.wantMsgs)
			}
			var got []Conn
			for _, m := range f.msgs {
				if len(m) > tc.maxLen || m[4] == 0 {
					t.Errorf("a message of %d bytes with %d entries; the most is %d bytes", len(m), m[4], tc.maxLen)
				}
			}
			for _, e := range f.entries(t, 1) {
				got = append(got, e.conn)
			}
			if !slices.Equal(got, want) {
				t.Errorf("sent %d connections, want %d, in order", len(got), len(want))
			}
		})
	}
}

// handTest is a Handover over a table the test rewrites and a fake sender.
type handTest struct {
	h      *Handover
	table  string
	sender fakeSyncSender
	routed map[netip.Addr]bool // routed destinations; others have no service
}

func newHandTest() *handTest {
	ht := &handTest{routed: map[netip.Addr]bool{}}
	ht.h = &Handover{
		table:  func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(ht.table)), nil },
		open:   func() (syncSender, int, error) { return &ht.sender, 1472, nil },
		syncID: 3,
		routes: func() ConnRoute {
			return func(c Conn) (uint32, ForwardMethod, bool) { return 0, ForwardRoute, ht.routed[c.Dest.Addr()] }
		},
	}
	return ht
}

func (ht *handTest) hand(t *testing.T, fresh bool) (HandoverStats, []Conn) {
	t.Helper()
	ht.sender.msgs = nil
	st, err := ht.h.Hand(fresh, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var got []Conn
	for _, e := range ht.sender.entries(t, 3) {
		got = append(got, e.conn)
	}
	return st, got
}

// The first call sends every routed connection; the one once the VIPs
// are out only what is new or changed; a fresh one everything again.
func TestHandoverSendsWhatChanged(t *testing.T) {
	ht := newHandTest()
	ht.routed[netip.MustParseAddr("10.0.1.1")] = true
	ht.routed[netip.MustParseAddr("10.0.1.2")] = true
	ht.table = connTable
	st, got := ht.hand(t, true)
	all := []Conn{
		{6, ap("198.51.100.1:54321"), ap("192.0.2.10:80"), ap("10.0.1.1:80"), 1},
		{6, ap("198.51.100.2:40961"), ap("192.0.2.10:80"), ap("10.0.1.2:80"), 3},
		{17, ap("198.51.100.1:53"), ap("192.0.2.10:53"), ap("10.0.1.1:53"), 0},
		{132, ap("198.51.100.4:2905"), ap("192.0.2.10:2905"), ap("10.0.1.1:2905"), 8},
	}
	if !slices.Equal(got, all) {
		t.Errorf("first handover sent\n %v\nwant %v", got, all)
	}
	// 10 lines: 6 connections, of which 2 have no service, and 4 skipped.
	if want := (HandoverStats{Read: 6, Sent: 4, Skipped: 6, Messages: 1}); st != want {
		t.Errorf("stats %+v, want %+v", st, want)
	}

	// The half-open connection is now established; a new one came.
	ht.table = strings.Replace(connTable, "0A000102 0050 SYN_RECV", "0A000102 0050 ESTABLISHED", 1) +
		"TCP C6336409 C001 C000020A 0050 0A000101 0050 SYN_RECV         59\n"
	st, got = ht.hand(t, false)
	changed := []Conn{
		{6, ap("198.51.100.2:40961"), ap("192.0.2.10:80"), ap("10.0.1.2:80"), 1},
		{6, ap("198.51.100.9:49153"), ap("192.0.2.10:80"), ap("10.0.1.1:80"), 3},
	}
	if !slices.Equal(got, changed) || st.Sent != 2 {
		t.Errorf("second handover sent %d:\n %v\nwant %v", st.Sent, got, changed)
	}

	st, got = ht.hand(t, false)
	if len(got) != 0 || st.Messages != 0 {
		t.Errorf("nothing changed, yet %d messages with %v", st.Messages, got)
	}
	if st, _ = ht.hand(t, true); st.Sent != 5 {
		t.Errorf("a fresh handover sent %d connections, want all 5", st.Sent)
	}
}

func TestHandoverErrors(t *testing.T) {
	ht := newHandTest()
	ht.routed[netip.MustParseAddr("10.0.1.1")] = true
	ht.table = connTable
	errSend := errors.New("no buffer space")
	ht.sender.err = errSend
	if _, err := ht.h.Hand(true, time.Now().Add(time.Hour)); !errors.Is(err, errSend) {
		t.Errorf("a send failure: %v, want %v", err, errSend)
	}
	errRead := errors.New("no such file")
	ht.h.table = func() (io.ReadCloser, error) { return nil, errRead }
	if _, err := ht.h.Hand(true, time.Now().Add(time.Hour)); !errors.Is(err, errRead) {
		t.Errorf("an unreadable table: %v, want %v", err, errRead)
	}
}

// The table is the kernel's, yet read defensively: whatever it holds,
// every connection read is one the sync protocol can carry.
func FuzzReadConns(f *testing.F) {
	f.Add([]byte(connTable))
	f.Add([]byte("TCP 2001:0db8::1 0001 2001:0db8::2 0002 ::ffff:1.2.3.4 0003 ESTABLISHED 1\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = readConns(strings.NewReader(string(b)), time.Now().Add(time.Hour), func(c Conn) {
			a := c.Client.Addr()
			if c.Client.Port() == 0 || !a.IsValid() || a.Is4In6() || a.Is4() != c.Virtual.Addr().Is4() || a.Is4() != c.Dest.Addr().Is4() {
				t.Fatalf("a connection the sync protocol cannot carry: %+v", c)
			}
			var s fakeSyncSender
			w := syncWriter{maxLen: 1472, send: s.Send}
			w.add(c, 0, ForwardMasq)
			w.flush()
			if es := s.entries(t, 0); len(es) != 1 || es[0].conn != c {
				t.Fatalf("%+v went out as %+v", c, es)
			}
		}, func() {})
	})
}
