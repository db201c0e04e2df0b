// Package vip holds the VIPs on this director: it adds and removes them
// (VIPs), tells the neighbours where they now live (gratuitous ARP and
// unsolicited neighbour advertisements), asks the network whether
// anything else still answers for them (ProbeVIPs), and runs the guard
// child that removes them if this process dies (Guard), telling the peer
// at once through a heartbeat farewell. It knows nothing of roles: the
// caller decides when to hold them.
package vip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// VIP is an address the active director holds, on an interface.
type VIP struct {
	Prefix    netip.Prefix
	Interface string
}

func (v VIP) String() string { return v.Prefix.String() + " on " + v.Interface }

// check refuses what the kernel would refuse, or misread, so that the
// error names the VIP instead of being a bare EINVAL.
func (v VIP) check() error {
	a := v.Prefix.Addr()
	switch {
	case !v.Prefix.IsValid():
		return fmt.Errorf("vip %q: %w", v.Prefix, errBadPrefix)
	case a.Zone() != "" || a.Is4In6():
		return fmt.Errorf("vip %s: %w: zoned and IPv4-mapped addresses cannot be VIPs", v.Prefix, errBadPrefix)
	case !validIfName(v.Interface):
		return fmt.Errorf("vip %s: %w %q", v.Prefix, errBadInterface, v.Interface)
	}
	return nil
}

var (
	errBadPrefix    = errors.New("invalid prefix")
	errBadInterface = errors.New("invalid interface name")
)

// validIfName accepts what the kernel's dev_valid_name accepts, which
// also keeps names safe for the guard's space-separated protocol.
func validIfName(name string) bool {
	if name == "" || len(name) >= unix.IFNAMSIZ || name == "." || name == ".." {
		return false
	}
	for _, c := range []byte(name) {
		if c == '/' || c == ':' || c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// AddrTable is the part of the kernel's address table VIPs needs. A
// *netlink.Handle is one (bound to the namespace it was opened in).
type AddrTable interface {
	LinkByName(name string) (netlink.Link, error)
	AddrReplace(link netlink.Link, addr *netlink.Addr) error
	AddrDel(link netlink.Link, addr *netlink.Addr) error
	AddrList(link netlink.Link, family int) ([]netlink.Addr, error)
}

// Announcer tells a link's neighbours that a VIP now lives here.
type Announcer interface {
	// Open prepares the announcement of v. Sockets it opens belong to
	// the calling thread's network namespace, so the announcement can
	// later be sent from any goroutine.
	Open(v VIP) (Announcement, error)
}

// Announcement is one VIP's announcement, ready to be sent again and
// again.
type Announcement interface {
	Send() error
	Close() error
}

// HoldTracker is told which VIPs are about to be held and which are no
// longer held. A *Guard is one.
type HoldTracker interface {
	Hold(VIP) error
	Drop(VIP) error
}

// Default announcement schedule: the first at once, then three more a
// second apart. keepalived and RFC 5227 both repeat their announcements:
// a single frame can be lost, and a switch or neighbour that missed the
// first (a port still coming up, a busy host) gets another chance, while
// a few seconds bound the noise a takeover makes.
const (
	DefaultAnnounceRepeats  = 3
	DefaultAnnounceInterval = time.Second
)

// VIPOption adjusts VIPs, mostly for tests.
type VIPOption func(*VIPs)

// WithAddrTable makes VIPs use table instead of netlink in the current
// network namespace.
func WithAddrTable(table AddrTable) VIPOption { return func(v *VIPs) { v.table = table } }

// WithAnnouncer replaces gratuitous ARP and unsolicited neighbour
// advertisements.
func WithAnnouncer(a Announcer) VIPOption { return func(v *VIPs) { v.announcer = a } }

// WithAnnounceSchedule sets how many announcements follow the first,
// and how far apart (a non-positive interval keeps the default).
func WithAnnounceSchedule(repeats int, interval time.Duration) VIPOption {
	return func(v *VIPs) {
		v.repeats = max(repeats, 0)
		if interval > 0 {
			v.interval = interval
		}
	}
}

// WithGuard tells g of every VIP before it is added and after it is
// removed, so a guard process can remove them if this process dies.
func WithGuard(g HoldTracker) VIPOption { return func(v *VIPs) { v.guard = g } }

// VIPs adds, announces and removes the pair's VIPs in the current network
// namespace. Acquire, Announce and Release are meant to be called by one
// goroutine, the one that decides the role; Held may be called by any.
type VIPs struct {
	vips      []VIP
	log       *slog.Logger
	table     AddrTable
	announcer Announcer
	guard     HoldTracker
	repeats   int
	interval  time.Duration

	// prepared are announcements opened ahead of a takeover (Prepare);
	// the role goroutine's alone.
	prepared map[VIP]Announcement

	mu         sync.Mutex
	stopRepeat context.CancelFunc // nil when no repeats are pending
	repeatDone chan struct{}
}

// NewVIPs manages vips. Nothing touches the kernel until Acquire or
// Release.
func NewVIPs(vips []VIP, log *slog.Logger, opts ...VIPOption) *VIPs {
	v := &VIPs{
		vips:      append([]VIP(nil), vips...),
		log:       log,
		table:     kernelAddrs{},
		announcer: linkAnnouncer{},
		repeats:   DefaultAnnounceRepeats,
		interval:  DefaultAnnounceInterval,
		prepared:  map[VIP]Announcement{},
	}
	for _, o := range opts {
		o(v)
	}
	return v
}

// Acquire adds every VIP (one already present is fine) and announces
// each. It returns once the first announcement of every VIP has been
// sent; the repeats go on in the background until ctx ends, Release is
// called or Acquire or Announce starts a new round. A VIP that cannot be
// added does not keep the others from being added; the error names
// every failure.
func (v *VIPs) Acquire(ctx context.Context) error {
	var errs []error
	added := make([]VIP, 0, len(v.vips))
	for _, vip := range v.vips {
		if err := v.add(vip); err != nil {
			errs = append(errs, err)
			continue
		}
		added = append(added, vip)
	}
	errs = append(errs, v.announce(ctx, added))
	return errors.Join(errs...)
}

// Announce announces every VIP again, on the same schedule as Acquire;
// the caller does this when a moment of two active directors resolves,
// so the neighbours that listened to the other one turn back.
func (v *VIPs) Announce(ctx context.Context) error {
	return v.announce(ctx, v.vips)
}

// Release stops pending announcements and removes every VIP that is
// present; one that is absent is fine. gone, if not nil, runs as soon as
// the addresses are out of the kernel, before the releases are logged
// and the guard is told: a peer waiting to take over hears of it first.
func (v *VIPs) Release(gone func()) error {
	v.stopRepeats()
	var errs []error
	// Each VIP now absent, and whether it was this call that removed it.
	type absent struct {
		vip     VIP
		removed bool
	}
	out := make([]absent, 0, len(v.vips))
	for _, vip := range v.vips {
		if err := vip.check(); err != nil {
			errs = append(errs, err)
			continue
		}
		removed, err := removeVIP(v.table, vip)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, absent{vip, removed})
	}
	if gone != nil {
		gone()
	}
	for _, a := range out {
		vip := a.vip
		if a.removed {
			v.log.Info("vip released", "vip", vip.Prefix, "interface", vip.Interface)
		}
		if v.guard != nil {
			// After the removal: until then the guard must still know.
			if err := v.guard.Drop(vip); err != nil {
				v.log.Warn("vip guard not told of a release", "vip", vip.Prefix, "interface", vip.Interface, "err", err)
			}
		}
	}
	return errors.Join(errs...)
}

// Held reads the kernel and tells which VIPs are on their interfaces now,
// whatever their prefix length there. A missing interface holds nothing.
func (v *VIPs) Held() ([]VIP, error) {
	var held []VIP
	for _, vip := range v.vips {
		if err := vip.check(); err != nil {
			return nil, err
		}
		_, found, err := findVIP(v.table, vip)
		if err != nil {
			return nil, err
		}
		if len(found) > 0 {
			held = append(held, vip)
		}
	}
	return held, nil
}

// add puts one VIP on its interface, telling the guard first, so that
// the guard never misses an address this process holds.
func (v *VIPs) add(vip VIP) error {
	if err := vip.check(); err != nil {
		return err
	}
	if v.guard != nil {
		// A guard that cannot be told leaves the VIP as unguarded as it
		// would be without one; holding it matters more.
		if err := v.guard.Hold(vip); err != nil {
			v.log.Error("vip guard not told of a hold; a crash would leave this vip behind", "vip", vip.Prefix, "interface", vip.Interface, "err", err)
		}
	}
	link, err := v.table.LinkByName(vip.Interface)
	if err != nil {
		return fmt.Errorf("add vip %s: %w", vip, err)
	}
	a := &netlink.Addr{IPNet: ipNet(vip.Prefix)}
	if vip.Prefix.Addr().Is6() {
		// Without it the address stays tentative for a second or more,
		// during which nothing can use it: too long for a takeover.
		a.Flags = unix.IFA_F_NODAD
		// Deprecated (preferred lifetime 0, valid for ever): IPv6 would
		// otherwise pick the newest address, the VIP, as the source of
		// the director's own packets (health checks, IPVS tunnels), and
		// DR/TUN real servers, which hold the VIP, drop those as their
		// own. Traffic to the VIP is served all the same.
		a.PreferedLft, a.ValidLft = 0, math.MaxUint32
	}
	if err := v.table.AddrReplace(link, a); err != nil {
		return fmt.Errorf("add vip %s: %w", vip, err)
	}
	v.log.Info("vip acquired", "vip", vip.Prefix, "interface", vip.Interface)
	return nil
}

// Prepare opens each VIP's announcement ahead of a takeover, so that the
// first one goes out with no interface lookup and no new socket in the
// way. The role goroutine calls it while standby. One that cannot be
// opened now is opened when it is needed.
func (v *VIPs) Prepare() {
	for _, vip := range v.vips {
		if _, ok := v.prepared[vip]; ok {
			continue
		}
		a, err := v.announcer.Open(vip)
		if err != nil {
			v.log.Debug("vip announcement not prepared", "vip", vip.Prefix, "interface", vip.Interface, "why", err)
			continue
		}
		v.prepared[vip] = a
	}
}

// Close closes the prepared announcements.
func (v *VIPs) Close() error {
	var errs []error
	for vip, a := range v.prepared {
		errs = append(errs, a.Close())
		delete(v.prepared, vip)
	}
	return errors.Join(errs...)
}

// pendingAnnouncement is an opened announcement and what it is for.
type pendingAnnouncement struct {
	vip VIP
	Announcement
	prepared bool // opened by Prepare, before this takeover
}

// open returns vip's announcement: the prepared one if there is one.
func (v *VIPs) open(vip VIP) (pendingAnnouncement, error) {
	if a, ok := v.prepared[vip]; ok {
		delete(v.prepared, vip)
		return pendingAnnouncement{vip, a, true}, nil
	}
	a, err := v.announcer.Open(vip)
	return pendingAnnouncement{vip, a, false}, err
}

// announce sends the first announcement of each VIP now and leaves the
// repeats to a goroutine, replacing any earlier round's.
func (v *VIPs) announce(ctx context.Context, vips []VIP) error {
	v.stopRepeats()
	var errs []error
	var open []pendingAnnouncement
	for _, vip := range vips {
		a, err := v.open(vip)
		if errors.Is(err, ErrNotAnnounceable) {
			v.log.Debug("vip not announced", "vip", vip.Prefix, "interface", vip.Interface, "why", err)
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("announce vip %s: %w", vip, err))
			continue
		}
		if err := a.Send(); err != nil && !a.prepared {
			errs = append(errs, fmt.Errorf("announce vip %s: %w", vip, err))
		}
		open = append(open, a)
	}
	// The interface may have changed since an announcement was prepared
	// (a new MAC, the interface made anew): each prepared one is replaced
	// by a fresh one, sent at once, now that the first is out. A
	// neighbour that heard a stale one is corrected a moment later.
	for i, a := range open {
		if !a.prepared {
			continue
		}
		fresh, err := v.announcer.Open(a.vip)
		if err != nil {
			errs = append(errs, fmt.Errorf("announce vip %s: %w", a.vip, err))
			continue
		}
		if err := a.Close(); err != nil {
			v.log.Warn("vip announcement not closed", "vip", a.vip.Prefix, "interface", a.vip.Interface, "err", err)
		}
		open[i] = pendingAnnouncement{a.vip, fresh, false}
		if err := fresh.Send(); err != nil {
			errs = append(errs, fmt.Errorf("announce vip %s: %w", a.vip, err))
		}
	}
	if len(open) == 0 {
		return errors.Join(errs...)
	}
	if v.repeats == 0 {
		v.closeAnnouncements(open)
		return errors.Join(errs...)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	v.mu.Lock()
	v.stopRepeat, v.repeatDone = cancel, done
	v.mu.Unlock()
	go v.repeat(rctx, open, done)
	return errors.Join(errs...)
}

func (v *VIPs) repeat(ctx context.Context, open []pendingAnnouncement, done chan<- struct{}) {
	defer close(done)
	defer v.closeAnnouncements(open)
	t := time.NewTicker(v.interval)
	defer t.Stop()
	for range v.repeats {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, a := range open {
			if err := a.Send(); err != nil {
				v.log.Warn("vip announcement not sent", "vip", a.vip.Prefix, "interface", a.vip.Interface, "err", err)
			}
		}
	}
}

func (v *VIPs) closeAnnouncements(open []pendingAnnouncement) {
	for _, a := range open {
		if err := a.Close(); err != nil {
			v.log.Warn("vip announcement not closed", "vip", a.vip.Prefix, "interface", a.vip.Interface, "err", err)
		}
	}
}

// stopRepeats ends the pending round of announcements, if any, and waits
// for it, so that nothing is announced once it returns.
func (v *VIPs) stopRepeats() {
	v.mu.Lock()
	cancel, done := v.stopRepeat, v.repeatDone
	v.stopRepeat, v.repeatDone = nil, nil
	v.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

// findVIP lists the addresses on vip's interface equal to vip's, at any
// prefix length. A missing interface has none.
func findVIP(table AddrTable, vip VIP) (netlink.Link, []netlink.Addr, error) {
	link, err := table.LinkByName(vip.Interface)
	if linkMissing(err) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("vip %s: %w", vip, err)
	}
	fam := netlink.FAMILY_V4
	if vip.Prefix.Addr().Is6() {
		fam = netlink.FAMILY_V6
	}
	addrs, err := table.AddrList(link, fam)
	if err != nil {
		return nil, nil, fmt.Errorf("vip %s: list addresses: %w", vip, err)
	}
	var found []netlink.Addr
	for _, a := range addrs {
		if a.IPNet == nil {
			continue
		}
		if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == vip.Prefix.Addr() {
			found = append(found, a)
		}
	}
	return link, found, nil
}

// removeVIP removes vip's address from its interface whatever its prefix
// length there, and tells whether there was one. The kernel matches a
// deletion on the prefix length too, hence deleting what was listed.
func removeVIP(table AddrTable, vip VIP) (bool, error) {
	link, found, err := findVIP(table, vip)
	if err != nil {
		return false, err
	}
	for _, a := range found {
		del := &netlink.Addr{IPNet: a.IPNet, Peer: a.Peer}
		err := table.AddrDel(link, del)
		// Gone meanwhile: what was wanted.
		if err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			return false, fmt.Errorf("remove vip %s: %w", vip, err)
		}
	}
	return len(found) > 0, nil
}

// linkMissing tells an interface that is not there from a failure to
// look.
func linkMissing(err error) bool {
	return errors.As(err, new(netlink.LinkNotFoundError)) || errors.Is(err, unix.ENODEV)
}

func ipNet(p netip.Prefix) *net.IPNet {
	a := p.Addr()
	return &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(p.Bits(), a.BitLen())}
}

// kernelAddrs is netlink in the calling thread's network namespace.
type kernelAddrs struct{}

func (kernelAddrs) LinkByName(name string) (netlink.Link, error) { return netlink.LinkByName(name) }
func (kernelAddrs) AddrReplace(l netlink.Link, a *netlink.Addr) error {
	return netlink.AddrReplace(l, a)
}
func (kernelAddrs) AddrDel(l netlink.Link, a *netlink.Addr) error { return netlink.AddrDel(l, a) }
func (kernelAddrs) AddrList(l netlink.Link, fam int) ([]netlink.Addr, error) {
	return netlink.AddrList(l, fam)
}
