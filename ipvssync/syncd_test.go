package ipvssync

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"strings"
	"syscall"
	"testing"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"
)

// nla builds one netlink attribute by hand (header, data, padding to 4
// bytes), so the expected bytes do not come from the encoder under test.
func syncAttr(typ uint16, data ...[]byte) []byte {
	body := bytes.Join(data, nil)
	b := binary.NativeEndian.AppendUint16(nil, uint16(4+len(body)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, body...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func syncU32(v uint32) []byte  { return binary.NativeEndian.AppendUint32(nil, v) }
func syncU16(v uint16) []byte  { return binary.NativeEndian.AppendUint16(nil, v) }
func syncCStr(s string) []byte { return append([]byte(s), 0) }

const syncNested = 0x8000 // NLA_F_NESTED

// syncKernelDaemon is a daemon message the way ip_vs_genl_fill_daemon
// writes it on a current kernel.
func syncKernelDaemon(state uint32, ifn string, syncid uint32) []byte {
	return syncAttr(ipvsCmdAttrDaemon|syncNested,
		syncAttr(ipvsDaemonAttrState, syncU32(state)),
		syncAttr(ipvsDaemonAttrMcastIfn, syncCStr(ifn)),
		syncAttr(ipvsDaemonAttrSyncID, syncU32(syncid)),
		syncAttr(ipvsDaemonAttrSyncMaxLen, syncU16(1472)),
		syncAttr(ipvsDaemonAttrMcastPort, syncU16(8848)),
		syncAttr(ipvsDaemonAttrMcastTTL, []byte{1}),
		syncAttr(ipvsDaemonAttrMcastGroup, []byte{224, 0, 0, 81}),
	)
}

func TestSyncStateString(t *testing.T) {
	for s, want := range map[SyncState]string{SyncMaster: "master", SyncBackup: "backup", 0: "state(0)", 7: "state(7)"} {
		if got := s.String(); got != want {
			t.Errorf("SyncState(%d).String() = %q, want %q", uint32(s), got, want)
		}
	}
}

func TestEncodeSyncDaemonRequiredOnly(t *testing.T) {
	got, err := encodeSyncDaemon(SyncDaemon{State: SyncMaster, Interface: "eth1", SyncID: 10})
	if err != nil {
		t.Fatal(err)
	}
	want := syncAttr(ipvsCmdAttrDaemon|syncNested,
		syncAttr(ipvsDaemonAttrState, syncU32(1)),
		syncAttr(ipvsDaemonAttrMcastIfn, syncCStr("eth1")),
		syncAttr(ipvsDaemonAttrSyncID, syncU32(10)),
	)
	if !bytes.Equal(got, want) {
		t.Fatalf("encoded\n% x\nwant\n% x", got, want)
	}
}

func TestEncodeSyncDaemonOptional(t *testing.T) {
	got, err := encodeSyncDaemon(SyncDaemon{
		State: SyncBackup, Interface: "bond0", SyncID: 255,
		MaxLen: 1400, Group: netip.MustParseAddr("239.1.2.3"), Port: 9000, TTL: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	want := syncAttr(ipvsCmdAttrDaemon|syncNested,
		syncAttr(ipvsDaemonAttrState, syncU32(2)),
		syncAttr(ipvsDaemonAttrMcastIfn, syncCStr("bond0")),
		syncAttr(ipvsDaemonAttrSyncID, syncU32(255)),
		syncAttr(ipvsDaemonAttrSyncMaxLen, syncU16(1400)),
		syncAttr(ipvsDaemonAttrMcastGroup, []byte{239, 1, 2, 3}),
		syncAttr(ipvsDaemonAttrMcastPort, syncU16(9000)),
		syncAttr(ipvsDaemonAttrMcastTTL, []byte{2}),
	)
	if !bytes.Equal(got, want) {
		t.Fatalf("encoded\n% x\nwant\n% x", got, want)
	}
}

func TestEncodeSyncDaemonGroup6(t *testing.T) {
	g := netip.MustParseAddr("ff02::51")
	got, err := encodeSyncDaemon(SyncDaemon{State: SyncMaster, Interface: "eth0", Group: g})
	if err != nil {
		t.Fatal(err)
	}
	a := g.As16()
	want := syncAttr(ipvsCmdAttrDaemon|syncNested,
		syncAttr(ipvsDaemonAttrState, syncU32(1)),
		syncAttr(ipvsDaemonAttrMcastIfn, syncCStr("eth0")),
		syncAttr(ipvsDaemonAttrSyncID, syncU32(0)),
		syncAttr(ipvsDaemonAttrMcastGroup6, a[:]),
	)
	if !bytes.Equal(got, want) {
		t.Fatalf("encoded\n% x\nwant\n% x", got, want)
	}
}

// An IPv4 group written as IPv4-mapped IPv6 is sent as IPv4: the kernel
// would take the mapped form for an IPv6 group and refuse it.
func TestEncodeSyncDaemonMappedGroup(t *testing.T) {
	got, err := encodeSyncDaemon(SyncDaemon{State: SyncMaster, Interface: "eth0", Group: netip.MustParseAddr("::ffff:224.0.0.81")})
	if err != nil {
		t.Fatal(err)
	}
	d, err := decodeSyncDaemon(got)
	if err != nil {
		t.Fatal(err)
	}
	if want := netip.MustParseAddr("224.0.0.81"); d.Group != want {
		t.Fatalf("group went out as %v, want %v", d.Group, want)
	}
}

func TestEncodeSyncDaemonRefuses(t *testing.T) {
	ok := SyncDaemon{State: SyncMaster, Interface: "eth1", SyncID: 10}
	for name, mod := range map[string]func(*SyncDaemon){
		"no state":          func(d *SyncDaemon) { d.State = 0 },
		"unknown state":     func(d *SyncDaemon) { d.State = 3 },
		"empty interface":   func(d *SyncDaemon) { d.Interface = "" },
		"16-byte interface": func(d *SyncDaemon) { d.Interface = "abcdefghijklmnop" },
		"NUL in interface":  func(d *SyncDaemon) { d.Interface = "eth\x001" },
		"sync id 256":       func(d *SyncDaemon) { d.SyncID = 256 },
		"unicast group":     func(d *SyncDaemon) { d.Group = netip.MustParseAddr("10.0.0.1") },
		"unicast group6":    func(d *SyncDaemon) { d.Group = netip.MustParseAddr("2001:db8::1") },
	} {
		d := ok
		mod(&d)
		if b, err := encodeSyncDaemon(d); err == nil {
			t.Errorf("%s: encoded % x, want an error", name, b)
		}
	}
	d := ok
	d.Interface = "abcdefghijklmno" // 15 bytes: the kernel's limit, allowed
	if _, err := encodeSyncDaemon(d); err != nil {
		t.Errorf("15-byte interface: %v", err)
	}
}

func TestEncodeSyncState(t *testing.T) {
	for _, s := range []SyncState{SyncMaster, SyncBackup} {
		got, err := encodeSyncState(s)
		if err != nil {
			t.Fatal(err)
		}
		if want := syncAttr(ipvsCmdAttrDaemon|syncNested, syncAttr(ipvsDaemonAttrState, syncU32(uint32(s)))); !bytes.Equal(got, want) {
			t.Errorf("%s: encoded % x, want % x", s, got, want)
		}
	}
	if _, err := encodeSyncState(0); err == nil {
		t.Error("state 0 encoded, want an error")
	}
}

func TestDecodeSyncDaemonKernelReply(t *testing.T) {
	got, err := decodeSyncDaemon(syncKernelDaemon(2, "eth0", 42))
	if err != nil {
		t.Fatal(err)
	}
	want := SyncDaemon{State: SyncBackup, Interface: "eth0", SyncID: 42, MaxLen: 1472,
		Group: netip.MustParseAddr("224.0.0.81"), Port: 8848, TTL: 1}
	if got != want {
		t.Fatalf("decoded %+v, want %+v", got, want)
	}
}

// An older kernel reports only state, interface and sync id.
func TestDecodeSyncDaemonOldKernel(t *testing.T) {
	b := syncAttr(ipvsCmdAttrDaemon,
		syncAttr(ipvsDaemonAttrState, syncU32(1)),
		syncAttr(ipvsDaemonAttrMcastIfn, syncCStr("eth1")),
		syncAttr(ipvsDaemonAttrSyncID, syncU32(7)))
	got, err := decodeSyncDaemon(b)
	if err != nil {
		t.Fatal(err)
	}
	if want := (SyncDaemon{State: SyncMaster, Interface: "eth1", SyncID: 7}); got != want {
		t.Fatalf("decoded %+v, want %+v", got, want)
	}
}

func TestDecodeSyncDaemonSkipsUnknown(t *testing.T) {
	b := append(syncAttr(99, syncU32(5)), syncAttr(ipvsCmdAttrDaemon|syncNested,
		syncAttr(ipvsDaemonAttrState, syncU32(1)),
		syncAttr(77, []byte("future")),
		syncAttr(ipvsDaemonAttrMcastIfn, syncCStr("eth1")),
		syncAttr(ipvsDaemonAttrSyncID, syncU32(3)),
	)...)
	b = append(b, syncAttr(100)...)
	got, err := decodeSyncDaemon(b)
	if err != nil {
		t.Fatal(err)
	}
	if want := (SyncDaemon{State: SyncMaster, Interface: "eth1", SyncID: 3}); got != want {
		t.Fatalf("decoded %+v, want %+v", got, want)
	}
}

func TestDecodeSyncDaemonGroup6(t *testing.T) {
	g := netip.MustParseAddr("ff02::51")
	a := g.As16()
	b := syncAttr(ipvsCmdAttrDaemon|syncNested,
		syncAttr(ipvsDaemonAttrState, syncU32(1)),
		syncAttr(ipvsDaemonAttrMcastIfn, syncCStr("eth1")),
		syncAttr(ipvsDaemonAttrSyncID, syncU32(3)),
		syncAttr(ipvsDaemonAttrMcastGroup6, a[:]))
	got, err := decodeSyncDaemon(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Group != g {
		t.Fatalf("group %v, want %v", got.Group, g)
	}
}

func TestDecodeSyncDaemonMalformed(t *testing.T) {
	good := syncKernelDaemon(1, "eth1", 10)
	cases := map[string][]byte{
		"empty":            nil,
		"short header":     {8, 0},
		"truncated":        good[:len(good)-3],
		"length past end":  append(binary.NativeEndian.AppendUint16(nil, 200), 3, 0x80, 0, 0),
		"length below hdr": {2, 0, 3, 0x80},
		"no daemon":        syncAttr(ipvsCmdAttrDaemon+1, syncU32(1)),
		"two daemons":      append(append([]byte{}, good...), good...),
		"nested garbage":   syncAttr(ipvsCmdAttrDaemon|syncNested, []byte{0xff, 0xff, 1, 0}),
		"no state": syncAttr(ipvsCmdAttrDaemon|syncNested,
			syncAttr(ipvsDaemonAttrMcastIfn, syncCStr("eth1")), syncAttr(ipvsDaemonAttrSyncID, syncU32(1))),
		"no interface": syncAttr(ipvsCmdAttrDaemon|syncNested,
			syncAttr(ipvsDaemonAttrState, syncU32(1)), syncAttr(ipvsDaemonAttrSyncID, syncU32(1))),
		"no sync id": syncAttr(ipvsCmdAttrDaemon|syncNested,
			syncAttr(ipvsDaemonAttrState, syncU32(1)), syncAttr(ipvsDaemonAttrMcastIfn, syncCStr("eth1"))),
		"empty interface": syncAttr(ipvsCmdAttrDaemon|syncNested,
			syncAttr(ipvsDaemonAttrState, syncU32(1)), syncAttr(ipvsDaemonAttrMcastIfn, syncCStr("")), syncAttr(ipvsDaemonAttrSyncID, syncU32(1))),
		"state 3": syncAttr(ipvsCmdAttrDaemon|syncNested,
			syncAttr(ipvsDaemonAttrState, syncU32(3)), syncAttr(ipvsDaemonAttrMcastIfn, syncCStr("eth1")), syncAttr(ipvsDaemonAttrSyncID, syncU32(1))),
		"short state": syncAttr(ipvsCmdAttrDaemon|syncNested,
			syncAttr(ipvsDaemonAttrState, syncU16(1)), syncAttr(ipvsDaemonAttrMcastIfn, syncCStr("eth1")), syncAttr(ipvsDaemonAttrSyncID, syncU32(1))),
		"long sync id": syncAttr(ipvsCmdAttrDaemon|syncNested,
			syncAttr(ipvsDaemonAttrState, syncU32(1)), syncAttr(ipvsDaemonAttrMcastIfn, syncCStr("eth1")), syncAttr(ipvsDaemonAttrSyncID, syncU32(1), syncU32(0))),
		"3-byte group": syncAttr(ipvsCmdAttrDaemon|syncNested,
			syncAttr(ipvsDaemonAttrState, syncU32(1)), syncAttr(ipvsDaemonAttrMcastIfn, syncCStr("eth1")), syncAttr(ipvsDaemonAttrSyncID, syncU32(1)),
			syncAttr(ipvsDaemonAttrMcastGroup, []byte{224, 0, 0})),
		"4-byte group6": syncAttr(ipvsCmdAttrDaemon|syncNested,
			syncAttr(ipvsDaemonAttrState, syncU32(1)), syncAttr(ipvsDaemonAttrMcastIfn, syncCStr("eth1")), syncAttr(ipvsDaemonAttrSyncID, syncU32(1)),
			syncAttr(ipvsDaemonAttrMcastGroup6, []byte{224, 0, 0, 81})),
		"2-byte ttl": syncAttr(ipvsCmdAttrDaemon|syncNested,
			syncAttr(ipvsDaemonAttrState, syncU32(1)), syncAttr(ipvsDaemonAttrMcastIfn, syncCStr("eth1")), syncAttr(ipvsDaemonAttrSyncID, syncU32(1)),
			syncAttr(ipvsDaemonAttrMcastTTL, syncU16(1))),
		"4-byte port": syncAttr(ipvsCmdAttrDaemon|syncNested,
			syncAttr(ipvsDaemonAttrState, syncU32(1)), syncAttr(ipvsDaemonAttrMcastIfn, syncCStr("eth1")), syncAttr(ipvsDaemonAttrSyncID, syncU32(1)),
			syncAttr(ipvsDaemonAttrMcastPort, syncU32(8848))),
	}
	for name, b := range cases {
		d, err := decodeSyncDaemon(b)
		if err == nil {
			t.Errorf("%s: decoded %+v, want an error", name, d)
			continue
		}
		if !errors.Is(err, errMalformedDaemon) {
			t.Errorf("%s: error %v does not match errMalformedDaemon", name, err)
		}
	}
}

func FuzzDecodeSyncDaemon(f *testing.F) {
	f.Add(syncKernelDaemon(1, "eth1", 10))
	f.Add(syncKernelDaemon(2, "abcdefghijklmno", 255))
	f.Add([]byte{})
	f.Add([]byte{8, 0, 3, 0x80, 4, 0, 1, 0})
	if b, err := encodeSyncDaemon(SyncDaemon{State: SyncBackup, Interface: "eth0", Group: netip.MustParseAddr("ff02::51")}); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := decodeSyncDaemon(b)
		if err != nil {
			if !errors.Is(err, errMalformedDaemon) {
				t.Fatalf("error %v does not match errMalformedDaemon", err)
			}
			return
		}
		if d.State != SyncMaster && d.State != SyncBackup || d.Interface == "" {
			t.Fatalf("accepted an impossible daemon %+v", d)
		}
		// Whatever decodes and is a valid request survives a round trip.
		if d.validate() != nil {
			return
		}
		again, err := encodeSyncDaemon(d)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", d, err)
		}
		d2, err := decodeSyncDaemon(again)
		if err != nil {
			t.Fatalf("decode re-encoded %+v: %v", d, err)
		}
		d.Group = d.Group.Unmap()
		if d2 != d {
			t.Fatalf("round trip: %+v became %+v", d, d2)
		}
	})
}

// fakeSyncNetlink answers requests the way a kernel with the given daemons
// would, or with a fixed error per command.
type fakeSyncNetlink struct {
	running []SyncDaemon
	errs    map[uint8]error
	replies []genetlink.Message // returned for a dump instead of running, when set
	sent    []fakeSyncRequest
	closed  bool
}

type fakeSyncRequest struct {
	msg    genetlink.Message
	family uint16
	flags  netlink.HeaderFlags
}

func (f *fakeSyncNetlink) Execute(m genetlink.Message, family uint16, flags netlink.HeaderFlags) ([]genetlink.Message, error) {
	f.sent = append(f.sent, fakeSyncRequest{m, family, flags})
	if err := f.errs[m.Header.Command]; err != nil {
		return nil, err
	}
	if m.Header.Command != ipvsCmdGetDaemon {
		return nil, nil
	}
	if f.replies != nil {
		return f.replies, nil
	}
	var out []genetlink.Message
	for _, d := range f.running {
		b, err := encodeSyncDaemon(d)
		if err != nil {
			return nil, err
		}
		out = append(out, genetlink.Message{Header: genetlink.Header{Command: ipvsCmdNewDaemon, Version: 1}, Data: b})
	}
	return out, nil
}

func (f *fakeSyncNetlink) Close() error { f.closed = true; return nil }

// syncKernelErr is an error as mdlayher/netlink returns a kernel's errno.
func syncKernelErr(errno syscall.Errno) error { return &netlink.OpError{Op: "receive", Err: errno} }

func TestSyncConnStartSends(t *testing.T) {
	f := &fakeSyncNetlink{}
	c := &SyncConn{nl: f, family: 33}
	d := SyncDaemon{State: SyncMaster, Interface: "eth1", SyncID: 10}
	if err := c.Start(d); err != nil {
		t.Fatal(err)
	}
	if len(f.sent) != 1 {
		t.Fatalf("sent %d requests, want 1", len(f.sent))
	}
	r := f.sent[0]
	want, _ := encodeSyncDaemon(d)
	if r.family != 33 || r.msg.Header.Command != ipvsCmdNewDaemon || r.msg.Header.Version != ipvsGenlVersion ||
		r.flags != netlink.Request|netlink.Acknowledge || !bytes.Equal(r.msg.Data, want) {
		t.Fatalf("sent %+v, want IPVS_CMD_NEW_DAEMON v1 to family 33, acknowledged, with % x", r, want)
	}
}

func TestSyncConnStartAlreadyRunning(t *testing.T) {
	d := SyncDaemon{State: SyncMaster, Interface: "eth1", SyncID: 10, Port: 8848}
	running := SyncDaemon{State: SyncMaster, Interface: "eth1", SyncID: 10, MaxLen: 1472,
		Group: netip.MustParseAddr("224.0.0.81"), Port: 8848, TTL: 1}
	f := &fakeSyncNetlink{running: []SyncDaemon{running}, errs: map[uint8]error{ipvsCmdNewDaemon: syncKernelErr(syscall.EEXIST)}}
	if err := (&SyncConn{nl: f}).Start(d); err != nil {
		t.Fatalf("start of a daemon that runs alike: %v, want nil", err)
	}
}

func TestSyncConnStartConflicts(t *testing.T) {
	d := SyncDaemon{State: SyncMaster, Interface: "eth1", SyncID: 10}
	for name, running := range map[string]SyncDaemon{
		"other sync id":   {State: SyncMaster, Interface: "eth1", SyncID: 11},
		"other interface": {State: SyncMaster, Interface: "eth2", SyncID: 10},
	} {
		f := &fakeSyncNetlink{
			running: []SyncDaemon{{State: SyncBackup, Interface: "eth1", SyncID: 10}, running},
			errs:    map[uint8]error{ipvsCmdNewDaemon: syncKernelErr(syscall.EEXIST)},
		}
		err := (&SyncConn{nl: f}).Start(d)
		if !errors.Is(err, syscall.EEXIST) {
			t.Errorf("%s: start gave %v, want an error matching EEXIST", name, err)
			continue
		}
		if !strings.Contains(err.Error(), "start IPVS sync daemon (master on eth1, syncid 10)") ||
			!strings.Contains(err.Error(), "already runs on "+running.Interface) {
			t.Errorf("%s: error %q does not name both daemons", name, err)
		}
	}
	// Optional values differ only when both sides state them.
	if sameSyncConfig(SyncDaemon{Interface: "e", Port: 1}, SyncDaemon{Interface: "e", Port: 2}) ||
		sameSyncConfig(SyncDaemon{Interface: "e", TTL: 1}, SyncDaemon{Interface: "e", TTL: 2}) ||
		sameSyncConfig(SyncDaemon{Interface: "e", Group: netip.MustParseAddr("224.0.0.81")}, SyncDaemon{Interface: "e", Group: netip.MustParseAddr("224.0.0.82")}) {
		t.Error("differing port, ttl or group counted as the same configuration")
	}
	if !sameSyncConfig(SyncDaemon{Interface: "e"}, SyncDaemon{Interface: "e", Port: 8848, TTL: 1, Group: netip.MustParseAddr("224.0.0.81")}) {
		t.Error("kernel defaults counted as a different configuration")
	}
}

func TestSyncConnStartErrors(t *testing.T) {
	d := SyncDaemon{State: SyncMaster, Interface: "eth1", SyncID: 10}
	f := &fakeSyncNetlink{errs: map[uint8]error{ipvsCmdNewDaemon: syncKernelErr(syscall.ENODEV)}}
	err := (&SyncConn{nl: f}).Start(d)
	if !errors.Is(err, syscall.ENODEV) || !strings.HasPrefix(err.Error(), "start IPVS sync daemon (master on eth1, syncid 10): ") {
		t.Fatalf("start gave %v, want ENODEV with the daemon named", err)
	}

	// EEXIST, but the daemon is gone by the time it is listed.
	f = &fakeSyncNetlink{errs: map[uint8]error{ipvsCmdNewDaemon: syncKernelErr(syscall.EEXIST)}}
	if err := (&SyncConn{nl: f}).Start(d); !errors.Is(err, syscall.EEXIST) {
		t.Fatalf("start gave %v, want EEXIST", err)
	}

	// EEXIST, and the list fails: both causes are kept.
	f = &fakeSyncNetlink{errs: map[uint8]error{ipvsCmdNewDaemon: syncKernelErr(syscall.EEXIST), ipvsCmdGetDaemon: syncKernelErr(syscall.EPERM)}}
	if err := (&SyncConn{nl: f}).Start(d); !errors.Is(err, syscall.EEXIST) || !errors.Is(err, syscall.EPERM) {
		t.Fatalf("start gave %v, want EEXIST and EPERM", err)
	}

	f = &fakeSyncNetlink{}
	if err := (&SyncConn{nl: f}).Start(SyncDaemon{State: SyncMaster, SyncID: 10}); err == nil || len(f.sent) != 0 {
		t.Fatalf("start without an interface gave %v after %d requests, want an error and none sent", err, len(f.sent))
	}
}

func TestSyncConnStop(t *testing.T) {
	f := &fakeSyncNetlink{}
	if err := (&SyncConn{nl: f, family: 5}).Stop(SyncBackup); err != nil {
		t.Fatal(err)
	}
	want, _ := encodeSyncState(SyncBackup)
	if r := f.sent[0]; r.msg.Header.Command != ipvsCmdDelDaemon || r.family != 5 || !bytes.Equal(r.msg.Data, want) {
		t.Fatalf("sent %+v, want IPVS_CMD_DEL_DAEMON with % x", r, want)
	}

	f = &fakeSyncNetlink{errs: map[uint8]error{ipvsCmdDelDaemon: syncKernelErr(syscall.ESRCH)}}
	if err := (&SyncConn{nl: f}).Stop(SyncMaster); err != nil {
		t.Fatalf("stop of a stopped daemon: %v, want nil", err)
	}

	f = &fakeSyncNetlink{errs: map[uint8]error{ipvsCmdDelDaemon: syncKernelErr(syscall.EPERM)}}
	err := (&SyncConn{nl: f}).Stop(SyncMaster)
	if !errors.Is(err, syscall.EPERM) || !strings.HasPrefix(err.Error(), "stop IPVS sync daemon (master): ") {
		t.Fatalf("stop gave %v, want EPERM with the state named", err)
	}

	if err := (&SyncConn{nl: &fakeSyncNetlink{}}).Stop(0); err == nil {
		t.Fatal("stop of state 0 succeeded")
	}
}

func TestSyncConnDaemons(t *testing.T) {
	f := &fakeSyncNetlink{}
	c := &SyncConn{nl: f}
	ds, err := c.Daemons()
	if err != nil || ds == nil || len(ds) != 0 {
		t.Fatalf("no daemons: got %#v, %v; want an empty slice", ds, err)
	}
	if r := f.sent[0]; r.msg.Header.Command != ipvsCmdGetDaemon || r.flags != netlink.Request|netlink.Dump {
		t.Fatalf("sent %+v, want an IPVS_CMD_GET_DAEMON dump", r)
	}

	f.running = []SyncDaemon{
		{State: SyncMaster, Interface: "eth1", SyncID: 10},
		{State: SyncBackup, Interface: "eth2", SyncID: 20},
	}
	ds, err = c.Daemons()
	if err != nil || len(ds) != 2 || ds[0] != f.running[0] || ds[1] != f.running[1] {
		t.Fatalf("got %+v, %v; want %+v", ds, err, f.running)
	}

	f.replies = []genetlink.Message{
		{Header: genetlink.Header{Command: syncTestCmdNewService}, Data: []byte{1, 2, 3}},
		{Header: genetlink.Header{Command: ipvsCmdNewDaemon}, Data: syncKernelDaemon(2, "eth0", 9)},
	}
	ds, err = c.Daemons()
	if err != nil || len(ds) != 1 || ds[0].Interface != "eth0" {
		t.Fatalf("got %+v, %v; want only the daemon message decoded", ds, err)
	}

	f.replies = []genetlink.Message{{Header: genetlink.Header{Command: ipvsCmdNewDaemon}, Data: []byte{1, 2, 3}}}
	if _, err := c.Daemons(); !errors.Is(err, errMalformedDaemon) {
		t.Fatalf("malformed reply gave %v, want errMalformedDaemon", err)
	}

	f.errs = map[uint8]error{ipvsCmdGetDaemon: syncKernelErr(syscall.EPERM)}
	if _, err := c.Daemons(); !errors.Is(err, syscall.EPERM) || !strings.HasPrefix(err.Error(), "list IPVS sync daemons: ") {
		t.Fatalf("dump error gave %v, want EPERM with context", err)
	}

	if err := c.Close(); err != nil || !f.closed {
		t.Fatalf("close: %v, closed %v", err, f.closed)
	}
}

// syncTestCmdNewService stands for a message that is not a daemon.
const syncTestCmdNewService = 1
