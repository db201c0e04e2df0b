package vip

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
	"github.com/vishvananda/netlink"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// vipLogBuffer is a log sink that goroutines may share.
type vipLogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *vipLogBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *vipLogBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func testLogger() (*slog.Logger, *vipLogBuffer) {
	var buf vipLogBuffer
	return slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), &buf
}

// vipCalls is the order in which fakes were called, shared among them.
type vipCalls struct {
	mu  sync.Mutex
	got []string
}

func (e *vipCalls) add(format string, args ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.got = append(e.got, fmt.Sprintf(format, args...))
}

func (e *vipCalls) list() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.got)
}

// fakeAddrTable is an address table behaving like the kernel's where VIPs
// cares: replace is idempotent, deleting an absent address fails with
// EADDRNOTAVAIL, unknown links are ENODEV.
type fakeAddrTable struct {
	ev     *vipCalls
	mu     sync.Mutex
	addrs  map[string][]netlink.Addr // by interface
	delErr error
}

func newFakeAddrTable(ev *vipCalls, ifNames ...string) *fakeAddrTable {
	t := &fakeAddrTable{ev: ev, addrs: map[string][]netlink.Addr{}}
	for _, n := range ifNames {
		t.addrs[n] = nil
	}
	return t
}

func (t *fakeAddrTable) LinkByName(name string) (netlink.Link, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.addrs[name]; !ok {
		return nil, fmt.Errorf("link %s: %w", name, unix.ENODEV)
	}
	return &netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: name}}, nil
}

func (t *fakeAddrTable) AddrReplace(l netlink.Link, a *netlink.Addr) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	name := l.Attrs().Name
	t.ev.add("add %s %s", a.IPNet, name)
	list := t.addrs[name]
	for i, old := range list {
		if old.IP.Equal(a.IP) && old.Mask.String() == a.Mask.String() {
			list[i] = *a
			return nil
		}
	}
	t.addrs[name] = append(list, *a)
	return nil
}

func (t *fakeAddrTable) AddrDel(l netlink.Link, a *netlink.Addr) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	name := l.Attrs().Name
	t.ev.add("del %s %s", a.IPNet, name)
	if t.delErr != nil {
		return t.delErr
	}
	list := t.addrs[name]
	for i, old := range list {
		if old.IP.Equal(a.IP) && old.Mask.String() == a.Mask.String() {
			t.addrs[name] = slices.Delete(list, i, i+1)
			return nil
		}
	}
	return unix.EADDRNOTAVAIL
}

func (t *fakeAddrTable) AddrList(l netlink.Link, fam int) ([]netlink.Addr, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []netlink.Addr
	for _, a := range t.addrs[l.Attrs().Name] {
		if (a.IP.To4() != nil) == (fam == netlink.FAMILY_V4) {
			out = append(out, a)
		}
	}
	return out, nil
}

// put adds an address as an operator would, outside VIPs.
func (t *fakeAddrTable) put(ifName, cidr string) {
	a, err := netlink.ParseAddr(cidr)
	if err != nil {
		panic(err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.addrs[ifName] = append(t.addrs[ifName], *a)
}

// on lists the addresses on an interface as CIDRs with their flags.
func (t *fakeAddrTable) on(ifName string) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []string
	for _, a := range t.addrs[ifName] {
		out = append(out, fmt.Sprintf("%s flags=%#x preferred=%d valid=%d", a.IPNet, a.Flags, a.PreferedLft, a.ValidLft))
	}
	return out
}

// fakeAnnouncer counts the announcements of each VIP.
type fakeAnnouncer struct {
	ev      *vipCalls
	mu      sync.Mutex
	sent    map[VIP]int
	closed  map[VIP]chan struct{} // of the latest announcement opened
	openErr map[VIP]error
	sendErr map[int]error // by announcement
	// trace is every open, send and close, by announcement: "open 1",
	// "send 1", ...
	trace []string
	n     int
}

func newFakeAnnouncer(ev *vipCalls) *fakeAnnouncer {
	return &fakeAnnouncer{ev: ev, sent: map[VIP]int{}, closed: map[VIP]chan struct{}{}, openErr: map[VIP]error{}, sendErr: map[int]error{}}
}

func (f *fakeAnnouncer) Open(v VIP) (Announcement, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.openErr[v]; err != nil {
		return nil, err
	}
	c := make(chan struct{})
	f.closed[v] = c
	f.n++
	f.trace = append(f.trace, fmt.Sprintf("open %d", f.n))
	return &fakeAnnouncement{f: f, v: v, closed: c, id: f.n}, nil
}

func (f *fakeAnnouncer) sends(v VIP) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sent[v]
}

func (f *fakeAnnouncer) closedChan(v VIP) chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.closed[v]
}

type fakeAnnouncement struct {
	f      *fakeAnnouncer
	v      VIP
	closed chan struct{}
	id     int
}

func (a *fakeAnnouncement) Send() error {
	select {
	case <-a.closed:
		return errors.New("send after close")
	default:
	}
	a.f.mu.Lock()
	a.f.trace = append(a.f.trace, fmt.Sprintf("send %d", a.id))
	if err := a.f.sendErr[a.id]; err != nil {
		a.f.mu.Unlock()
		return err
	}
	a.f.sent[a.v]++
	a.f.mu.Unlock()
	a.f.ev.add("announce %s", a.v)
	return nil
}

func (a *fakeAnnouncement) Close() error {
	a.f.mu.Lock()
	a.f.trace = append(a.f.trace, fmt.Sprintf("close %d", a.id))
	a.f.mu.Unlock()
	close(a.closed)
	return nil
}

func (f *fakeAnnouncer) takeTrace() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.trace
	f.trace = nil
	return t
}

// fakeHoldTracker records what it is told.
type fakeHoldTracker struct {
	ev      *vipCalls
	holdErr error
}

func (g *fakeHoldTracker) Hold(v VIP) error {
	g.ev.add("hold %s", v)
	return g.holdErr
}

func (g *fakeHoldTracker) Drop(v VIP) error {
	g.ev.add("drop %s", v)
	return nil
}

var (
	testVIP4 = VIP{netip.MustParsePrefix("192.0.2.10/24"), "eth0"}
	testVIP6 = VIP{netip.MustParsePrefix("2001:db8::10/64"), "eth1"}
)

// vipRig is VIPs over fakes. Repeats are an hour apart unless a test says
// otherwise, so only the first announcement happens during the test.
type vipRig struct {
	ev    *vipCalls
	table *fakeAddrTable
	ann   *fakeAnnouncer
	guard *fakeHoldTracker
	log   *vipLogBuffer
	vips  *VIPs
}

func newVIPRig(vips []VIP, opts ...VIPOption) *vipRig {
	ev := &vipCalls{}
	r := &vipRig{ev: ev, table: newFakeAddrTable(ev, "eth0", "eth1"), ann: newFakeAnnouncer(ev), guard: &fakeHoldTracker{ev: ev}}
	log, buf := testLogger()
	r.log = buf
	all := append([]VIPOption{
		WithAddrTable(r.table), WithAnnouncer(r.ann), WithGuard(r.guard),
		WithAnnounceSchedule(3, time.Hour),
	}, opts...)
	r.vips = NewVIPs(vips, log, all...)
	return r
}

func TestAcquireAddsThenAnnouncesEach(t *testing.T) {
	r := newVIPRig([]VIP{testVIP4, testVIP6})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := r.vips.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := r.table.on("eth0"), []string{"192.0.2.10/24 flags=0x0 preferred=0 valid=0"}; !slices.Equal(got, want) {
		t.Errorf("eth0 holds %v, want %v", got, want)
	}
	// IPv6 without duplicate address detection, usable at once, and
	// deprecated, so never the source of the director's own packets.
	if got, want := r.table.on("eth1"), []string{fmt.Sprintf("2001:db8::10/64 flags=%#x preferred=0 valid=%d", unix.IFA_F_NODAD, uint32(math.MaxUint32))}; !slices.Equal(got, want) {
		t.Errorf("eth1 holds %v, want %v", got, want)
	}
	want := []string{
		"hold " + testVIP4.String(), "add 192.0.2.10/24 eth0",
		"hold " + testVIP6.String(), "add 2001:db8::10/64 eth1",
		"announce " + testVIP4.String(), "announce " + testVIP6.String(),
	}
	if got := r.ev.list(); !slices.Equal(got, want) {
		t.Errorf("calls\n got %q\nwant %q", got, want)
	}
	held, err := r.vips.Held()
	if err != nil || !slices.Equal(held, []VIP{testVIP4, testVIP6}) {
		t.Errorf("Held() = %v, %v; want both", held, err)
	}
	r.vips.stopRepeats()
}

func TestAcquireWithTheVIPAlreadyThere(t *testing.T) {
	r := newVIPRig([]VIP{testVIP4})
	r.table.put("eth0", "192.0.2.10/24")
	if err := r.vips.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer r.vips.stopRepeats()
	if got := r.table.on("eth0"); len(got) != 1 {
		t.Errorf("eth0 holds %v, want the VIP once", got)
	}
	// Present or not, the neighbours must hear of it: they may still
	// point at the peer.
	if n := r.ann.sends(testVIP4); n != 1 {
		t.Errorf("announced %d times, want 1", n)
	}
}

func TestAcquireGoesOnPastAMissingInterface(t *testing.T) {
	lost := VIP{netip.MustParsePrefix("198.51.100.10/24"), "eth9"}
	r := newVIPRig([]VIP{lost, testVIP4})
	err := r.vips.Acquire(context.Background())
	defer r.vips.stopRepeats()
	if !errors.Is(err, unix.ENODEV) {
		t.Fatalf("Acquire = %v, want a missing link", err)
	}
	if got := r.table.on("eth0"); len(got) != 1 {
		t.Errorf("eth0 holds %v, want the VIP despite the other's failure", got)
	}
	if r.ann.sends(testVIP4) != 1 || r.ann.sends(lost) != 0 {
		t.Errorf("announced %d/%d times, want only the added VIP once", r.ann.sends(testVIP4), r.ann.sends(lost))
	}
}

func TestAcquireRefusesBadVIPs(t *testing.T) {
	for _, tc := range []struct {
		vip  VIP
		want error
	}{
		{VIP{netip.Prefix{}, "eth0"}, errBadPrefix},
		{VIP{netip.MustParsePrefix("::ffff:192.0.2.1/120"), "eth0"}, errBadPrefix},
		{VIP{testVIP4.Prefix, ""}, errBadInterface},
		{VIP{testVIP4.Prefix, "eth 0"}, errBadInterface},
		{VIP{testVIP4.Prefix, "eth0:1"}, errBadInterface},
		{VIP{testVIP4.Prefix, "a-name-far-too-long"}, errBadInterface},
	} {
		r := newVIPRig([]VIP{tc.vip})
		if err := r.vips.Acquire(context.Background()); !errors.Is(err, tc.want) {
			t.Errorf("Acquire(%q %q) = %v, want %v", tc.vip.Prefix, tc.vip.Interface, err, tc.want)
		}
		if got := r.ev.list(); len(got) != 0 {
			t.Errorf("Acquire(%q %q) went on to %q", tc.vip.Prefix, tc.vip.Interface, got)
		}
	}
}

func TestAnnouncementsRepeat(t *testing.T) {
	r := newVIPRig([]VIP{testVIP4, testVIP6}, WithAnnounceSchedule(3, time.Millisecond))
	if err := r.vips.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, v := range []VIP{testVIP4, testVIP6} {
		<-r.ann.closedChan(v) // the round is over
		if n := r.ann.sends(v); n != 4 {
			t.Errorf("%s announced %d times, want 1 + 3 repeats", v, n)
		}
	}
}

func TestNoRepeats(t *testing.T) {
	r := newVIPRig([]VIP{testVIP4}, WithAnnounceSchedule(0, time.Millisecond))
	if err := r.vips.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-r.ann.closedChan(testVIP4):
	default:
		t.Error("with no repeats, the announcement should be closed when Acquire returns")
	}
	if n := r.ann.sends(testVIP4); n != 1 {
		t.Errorf("announced %d times, want 1", n)
	}
}

func TestReleaseStopsRepeatsAndRemoves(t *testing.T) {
	r := newVIPRig([]VIP{testVIP4, testVIP6})
	if err := r.vips.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := r.vips.Release(func() { r.ev.add("gone") }); err != nil {
		t.Fatal(err)
	}
	for _, v := range []VIP{testVIP4, testVIP6} {
		select {
		case <-r.ann.closedChan(v):
		default:
			t.Errorf("%s: repeats still pending after Release", v)
		}
	}
	if got := append(r.table.on("eth0"), r.table.on("eth1")...); len(got) != 0 {
		t.Errorf("still held after Release: %v", got)
	}
	held, err := r.vips.Held()
	if err != nil || len(held) != 0 {
		t.Errorf("Held() = %v, %v after Release", held, err)
	}
	// The guard hears of a release only once the address is gone, and
	// after the caller (who tells the peer) heard that every one is.
	ev := r.ev.list()
	tail := ev[len(ev)-5:]
	want := []string{
		"del 192.0.2.10/24 eth0", "del 2001:db8::10/64 eth1", "gone",
		"drop " + testVIP4.String(), "drop " + testVIP6.String(),
	}
	if !slices.Equal(tail, want) {
		t.Errorf("release calls %q, want %q", tail, want)
	}
}

func TestContextEndStopsRepeats(t *testing.T) {
	r := newVIPRig([]VIP{testVIP4})
	ctx, cancel := context.WithCancel(context.Background())
	if err := r.vips.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	<-r.ann.closedChan(testVIP4)
	if n := r.ann.sends(testVIP4); n != 1 {
		t.Errorf("announced %d times, want only the first", n)
	}
	if got := r.table.on("eth0"); len(got) != 1 {
		t.Errorf("the end of the announcements removed the VIP: eth0 holds %v", got)
	}
}

func TestAnnounceAgainReplacesTheRound(t *testing.T) {
	r := newVIPRig([]VIP{testVIP4})
	if err := r.vips.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	first := r.ann.closedChan(testVIP4)
	if err := r.vips.Announce(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-first:
	default:
		t.Error("the first round is still pending after Announce started another")
	}
	if n := r.ann.sends(testVIP4); n != 2 {
		t.Errorf("announced %d times, want 2", n)
	}
	r.vips.stopRepeats()
}

func TestNotAnnounceableIsNoError(t *testing.T) {
	r := newVIPRig([]VIP{testVIP4, testVIP6})
	r.ann.openErr[testVIP4] = fmt.Errorf("lo: %w", ErrNotAnnounceable)
	if err := r.vips.Acquire(context.Background()); err != nil {
		t.Fatalf("Acquire = %v; an interface without neighbours to tell is fine", err)
	}
	defer r.vips.stopRepeats()
	if r.ann.sends(testVIP6) != 1 {
		t.Error("the other VIP was not announced")
	}
	r.ann.openErr[testVIP6] = unix.EPERM
	if err := r.vips.Announce(context.Background()); !errors.Is(err, unix.EPERM) {
		t.Errorf("Announce = %v, want EPERM", err)
	}
}

func TestReleaseRemovesWhateverIsThere(t *testing.T) {
	r := newVIPRig([]VIP{testVIP4, testVIP6})
	// Left from an earlier life, at other prefix lengths.
	r.table.put("eth0", "192.0.2.10/32")
	r.table.put("eth0", "192.0.2.1/24") // not a VIP
	r.table.put("eth1", "2001:db8::10/128")
	held, err := r.vips.Held()
	if err != nil || !slices.Equal(held, []VIP{testVIP4, testVIP6}) {
		t.Fatalf("Held() = %v, %v; want both, whatever their prefix length", held, err)
	}
	if err := r.vips.Release(nil); err != nil {
		t.Fatal(err)
	}
	if got, want := r.table.on("eth0"), []string{"192.0.2.1/24 flags=0x0 preferred=0 valid=0"}; !slices.Equal(got, want) {
		t.Errorf("eth0 holds %v, want %v", got, want)
	}
	if got := r.table.on("eth1"); len(got) != 0 {
		t.Errorf("eth1 holds %v", got)
	}
	// Nothing held: fine.
	if err := r.vips.Release(nil); err != nil {
		t.Errorf("second Release = %v", err)
	}
}

func TestReleaseWithTheInterfaceGone(t *testing.T) {
	r := newVIPRig([]VIP{{testVIP4.Prefix, "eth7"}})
	if err := r.vips.Release(nil); err != nil {
		t.Errorf("Release = %v; a missing interface holds nothing", err)
	}
	held, err := r.vips.Held()
	if err != nil || len(held) != 0 {
		t.Errorf("Held() = %v, %v", held, err)
	}
}

func TestReleaseFailureKeepsTheGuardHolding(t *testing.T) {
	r := newVIPRig([]VIP{testVIP4})
	if err := r.vips.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.table.delErr = unix.EPERM
	if err := r.vips.Release(nil); !errors.Is(err, unix.EPERM) {
		t.Fatalf("Release = %v, want EPERM", err)
	}
	if slices.Contains(r.ev.list(), "drop "+testVIP4.String()) {
		t.Error("the guard was told of a release that failed: it would leave the VIP behind")
	}
}

func TestGuardFailureDoesNotStopAcquire(t *testing.T) {
	r := newVIPRig([]VIP{testVIP4})
	r.guard.holdErr = ErrGuardClosed
	if err := r.vips.Acquire(context.Background()); err != nil {
		t.Fatalf("Acquire = %v; holding the VIP matters more than guarding it", err)
	}
	defer r.vips.stopRepeats()
	if got := r.table.on("eth0"); len(got) != 1 {
		t.Errorf("eth0 holds %v", got)
	}
	if !bytes.Contains([]byte(r.log.String()), []byte("vip guard not told of a hold")) {
		t.Errorf("the unguarded VIP was not logged:\n%s", r.log.String())
	}
}

// frameRecorder keeps the frames an announcement writes.
type frameRecorder struct {
	frames [][]byte
	closed bool
}

func (f *frameRecorder) WriteFrame(b []byte) error {
	f.frames = append(f.frames, slices.Clone(b))
	return nil
}

func (f *frameRecorder) Close() error {
	f.closed = true
	return nil
}

func TestGratuitousARP(t *testing.T) {
	mac := net.HardwareAddr{0x02, 0, 0, 0, 0xd1, 0x01}
	vip := netip.MustParseAddr("192.0.2.10")
	w := &frameRecorder{}
	a, err := newARPAnnouncement(w, mac, vip)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Send(); err != nil {
		t.Fatal(err)
	}
	if len(w.frames) != 2 {
		t.Fatalf("sent %d frames, want a request and a reply", len(w.frames))
	}
	zero := net.HardwareAddr{0, 0, 0, 0, 0, 0}
	for i, want := range []struct {
		op  uint16
		tha net.HardwareAddr
	}{{1, zero}, {2, ethernet.Broadcast}} {
		var f ethernet.Frame
		if err := f.UnmarshalBinary(w.frames[i]); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if !bytes.Equal(f.Destination, ethernet.Broadcast) || !bytes.Equal(f.Source, mac) || f.EtherType != ethernet.EtherTypeARP {
			t.Errorf("frame %d: %s -> %s type %#x, want %s -> broadcast, ARP", i, f.Source, f.Destination, uint16(f.EtherType), mac)
		}
		// RFC 826, Ethernet and IPv4.
		p := f.Payload
		if len(p) < 28 {
			t.Fatalf("frame %d: ARP payload of %d bytes", i, len(p))
		}
		be := binary.BigEndian
		if be.Uint16(p[0:]) != 1 || be.Uint16(p[2:]) != 0x0800 || p[4] != 6 || p[5] != 4 {
			t.Errorf("frame %d: header % x, want Ethernet/IPv4 6/4", i, p[:6])
		}
		if op := be.Uint16(p[6:]); op != want.op {
			t.Errorf("frame %d: op %d, want %d", i, op, want.op)
		}
		sha, spa, tha, tpa := net.HardwareAddr(p[8:14]), p[14:18], net.HardwareAddr(p[18:24]), p[24:28]
		if !bytes.Equal(sha, mac) || !bytes.Equal(tha, want.tha) {
			t.Errorf("frame %d: sender hw %s target hw %s, want %s and %s", i, sha, tha, mac, want.tha)
		}
		if !bytes.Equal(spa, vip.AsSlice()) || !bytes.Equal(tpa, vip.AsSlice()) {
			t.Errorf("frame %d: sender ip %v target ip %v, want both %s", i, net.IP(spa), net.IP(tpa), vip)
		}
	}
	// Built with mdlayher/arp, the frames are byte for byte those the
	// announcement sent when it laid the packet out by hand (RFC 826 on
	// Ethernet, padded to the 60-byte minimum), and mdlayher/arp reads
	// them back as gratuitous: sender and target IP both the VIP.
	pad := strings.Repeat("00", 18)
	for i, want := range []struct {
		wire string
		op   arp.Operation
		tha  net.HardwareAddr
	}{
		{"ffffffffffff" + "02000000d101" + "0806" + "0001" + "0800" + "06" + "04" + "0001" +
			"02000000d101" + "c000020a" + "000000000000" + "c000020a" + pad, arp.OperationRequest, net.HardwareAddr{0, 0, 0, 0, 0, 0}},
		{"ffffffffffff" + "02000000d101" + "0806" + "0001" + "0800" + "06" + "04" + "0002" +
			"02000000d101" + "c000020a" + "ffffffffffff" + "c000020a" + pad, arp.OperationReply, ethernet.Broadcast},
	} {
		if got := hex.EncodeToString(w.frames[i]); got != want.wire {
			t.Errorf("frame %d on the wire:\n got %s\nwant %s", i, got, want.wire)
		}
		// Read as the VIP probe reads an answer (sendARP in probe.go).
		var p arp.Packet
		if err := p.UnmarshalBinary(w.frames[i][14:]); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if p.Operation != want.op || !bytes.Equal(p.SenderHardwareAddr, mac) || p.SenderIP != vip ||
			!bytes.Equal(p.TargetHardwareAddr, want.tha) || p.TargetIP != vip {
			t.Errorf("frame %d: %v from %s (%s) for %s (%s); want %v from %s (%s) for %s (%s)", i,
				p.Operation, p.SenderIP, p.SenderHardwareAddr, p.TargetIP, p.TargetHardwareAddr,
				want.op, vip, mac, vip, want.tha)
		}
	}
	if err := a.Close(); err != nil || !w.closed {
		t.Errorf("Close = %v, socket closed %v", err, w.closed)
	}
}

func TestGratuitousARPRefusesIPv6(t *testing.T) {
	w := &frameRecorder{}
	_, err := newARPAnnouncement(w, net.HardwareAddr{2, 0, 0, 0, 0, 1}, netip.MustParseAddr("2001:db8::10"))
	if !errors.Is(err, ErrNotAnnounceable) || !w.closed {
		t.Errorf("err %v, socket closed %v; want ErrNotAnnounceable and the socket closed", err, w.closed)
	}
}

// ndpRecorder keeps what an announcement writes.
type ndpRecorder struct {
	msgs []ndp.Message
	cms  []*ipv6.ControlMessage
	dsts []netip.Addr
}

func (r *ndpRecorder) WriteTo(m ndp.Message, cm *ipv6.ControlMessage, dst netip.Addr) error {
	r.msgs, r.cms, r.dsts = append(r.msgs, m), append(r.cms, cm), append(r.dsts, dst)
	return nil
}

func (r *ndpRecorder) Close() error { return nil }

func TestUnsolicitedNeighbourAdvertisement(t *testing.T) {
	mac := net.HardwareAddr{0x02, 0, 0, 0, 0xd2, 0x01}
	vip := netip.MustParseAddr("2001:db8::10")
	ifi := &net.Interface{Index: 7, Name: "eth1", HardwareAddr: mac}
	for _, router := range []bool{false, true} {
		w := &ndpRecorder{}
		if err := newNDPAnnouncement(w, ifi, vip, router).Send(); err != nil {
			t.Fatal(err)
		}
		if len(w.msgs) != 1 {
			t.Fatalf("sent %d messages, want 1", len(w.msgs))
		}
		// Through the wire format, as a neighbour would read it.
		b, err := ndp.MarshalMessage(w.msgs[0])
		if err != nil {
			t.Fatal(err)
		}
		m, err := ndp.ParseMessage(b)
		if err != nil {
			t.Fatal(err)
		}
		na, ok := m.(*ndp.NeighborAdvertisement)
		if !ok {
			t.Fatalf("sent %T, want a neighbour advertisement", m)
		}
		if !na.Override || na.Solicited || na.Router != router || na.TargetAddress != vip {
			t.Errorf("sent override=%v solicited=%v router=%v target=%s; want override, unsolicited, router=%v, %s",
				na.Override, na.Solicited, na.Router, na.TargetAddress, router, vip)
		}
		var lla *ndp.LinkLayerAddress
		for _, o := range na.Options {
			if l, ok := o.(*ndp.LinkLayerAddress); ok && l.Direction == ndp.Target {
				lla = l
			}
		}
		if lla == nil || !bytes.Equal(lla.Addr, mac) {
			t.Errorf("target link-layer address option %v, want %s", lla, mac)
		}
		if w.dsts[0] != netip.MustParseAddr("ff02::1") {
			t.Errorf("sent to %s, want all nodes", w.dsts[0])
		}
		cm := w.cms[0]
		if cm == nil || cm.HopLimit != 255 || !net.IP(cm.Src).Equal(vip.AsSlice()) || cm.IfIndex != 7 {
			t.Errorf("control message %+v, want hop limit 255, source %s, interface 7", cm, vip)
		}
	}
}

func TestAnnounceScheduleRefusesNonsense(t *testing.T) {
	log, _ := testLogger()
	v := NewVIPs(nil, log, WithAnnounceSchedule(-2, 0))
	if v.repeats != 0 || v.interval != DefaultAnnounceInterval {
		t.Errorf("schedule %d every %v, want none and the default interval", v.repeats, v.interval)
	}
	v = NewVIPs(nil, log, WithAnnounceSchedule(5, -time.Second))
	if v.repeats != 5 || v.interval != DefaultAnnounceInterval {
		t.Errorf("schedule %d every %v, want 5 at the default interval", v.repeats, v.interval)
	}
}

// A prepared announcement goes out first, before any interface lookup;
// a fresh one replaces it at once, in case the interface changed since.
func TestPreparedAnnouncementGoesFirst(t *testing.T) {
	r := newVIPRig([]VIP{testVIP4})
	r.vips.Prepare()
	r.vips.Prepare() // prepared already: nothing more opened
	if got, want := r.ann.takeTrace(), []string{"open 1"}; !slices.Equal(got, want) {
		t.Fatalf("prepare: %q, want %q", got, want)
	}
	if err := r.vips.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, want := r.ann.takeTrace(), []string{"send 1", "open 2", "close 1", "send 2"}; !slices.Equal(got, want) {
		t.Errorf("takeover: %q, want %q", got, want)
	}
	if err := r.vips.Release(nil); err != nil {
		t.Fatal(err)
	}
	// Released: the repeats' announcement is closed. Prepared again,
	// then closed unused.
	r.vips.Prepare()
	if err := r.vips.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := r.ann.takeTrace(), []string{"close 2", "open 3", "close 3"}; !slices.Equal(got, want) {
		t.Errorf("release, prepare, close: %q, want %q", got, want)
	}
}

// A prepared announcement that can no longer be sent (its interface was
// made anew) is no error: the fresh one that replaces it is sent.
func TestStalePreparedAnnouncementIsReplaced(t *testing.T) {
	r := newVIPRig([]VIP{testVIP4})
	r.vips.Prepare()
	r.ann.sendErr[1] = errors.New("send on interface 7: no such device")
	if err := r.vips.Acquire(context.Background()); err != nil {
		t.Fatalf("acquire with a stale prepared announcement: %v", err)
	}
	if got, want := r.ann.takeTrace(), []string{"open 1", "send 1", "open 2", "close 1", "send 2"}; !slices.Equal(got, want) {
		t.Errorf("takeover: %q, want %q", got, want)
	}
	if n := r.ann.sends(testVIP4); n != 1 {
		t.Errorf("%d announcements went out, want the fresh one", n)
	}
}
