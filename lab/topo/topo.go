// Package topo builds network topologies inside the lab guest (or any
// Linux machine where the caller is root): network namespaces as named
// hosts, bridges as switches, veth links, addresses, routes and sysctls,
// and processes or Go code running inside a host.
//
// Scenarios read the way an admin would describe them:
//
//	n := topo.New(t)
//	client, dir, rs1 := n.Host("client"), n.Host("dir"), n.Host("rs1")
//	n.Link(client, "10.0.1.2/24", dir, "10.0.1.1/24")
//	...
//	got := client.Fetch("http://10.0.1.10/", 4) // [rs1 rs2 rs1 rs2]
package topo

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// TB is the part of testing.TB topo uses, so that programs other than
// tests (the demo) can build topologies too.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
	Cleanup(func())
}

// Net is one topology. Everything it creates is removed by the TB's
// cleanup.
type Net struct {
	tb       TB
	mu       sync.Mutex
	hosts    map[string]*Host
	switches map[string]*Switch
	root     *netlink.Handle
}

// New starts an empty topology.
func New(tb TB) *Net {
	tb.Helper()
	n := &Net{tb: tb, hosts: map[string]*Host{}, switches: map[string]*Switch{}}
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		tb.Fatalf("topo: netlink: %v", err)
	}
	n.root = h
	tb.Cleanup(n.close)
	return n
}

func (n *Net) close() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, h := range n.hosts {
		h.close()
	}
	for _, s := range n.switches {
		s.host.close()
	}
	n.root.Close()
}

// Host is a network namespace with a name.
type Host struct {
	Name string
	net  *Net
	ns   netns.NsHandle
	nl   *netlink.Handle

	mu     sync.Mutex
	nextIf int
	procs  []*Proc
	tasks  []*Task

	// idle hands work to a thread already in the namespace (inside);
	// quit ends those threads.
	idle chan nsJob
	quit chan struct{}
}

type nsJob struct {
	fn   func() error
	done chan error
}

// Host creates (or returns) the host called name, with its loopback up.
func (n *Net) Host(name string) *Host {
	n.tb.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if h, ok := n.hosts[name]; ok {
		return h
	}
	h, err := newHost(n, name)
	if err != nil {
		n.tb.Fatalf("topo: host %s: %v", name, err)
	}
	n.hosts[name] = h
	return h
}

func newHost(n *Net, name string) (*Host, error) {
	ns, err := newNetns()
	if err != nil {
		return nil, err
	}
	nl, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		ns.Close()
		return nil, err
	}
	h := &Host{Name: name, net: n, ns: ns, nl: nl, idle: make(chan nsJob), quit: make(chan struct{})}
	lo, err := nl.LinkByName("lo")
	if err == nil {
		err = nl.LinkSetUp(lo)
	}
	if err != nil {
		h.close()
		return nil, fmt.Errorf("loopback: %w", err)
	}
	return h, nil
}

// newNetns creates a namespace on a thread of its own, which is thrown
// away afterwards, so the caller's thread never changes namespace.
func newNetns() (netns.NsHandle, error) {
	type result struct {
		ns  netns.NsHandle
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		ns, err := netns.New()
		ch <- result{ns, err}
	}()
	r := <-ch
	return r.ns, r.err
}

func (h *Host) close() {
	h.mu.Lock()
	procs, tasks := h.procs, h.tasks
	h.procs, h.tasks = nil, nil
	h.mu.Unlock()
	for _, p := range procs {
		p.Kill()
	}
	for _, t := range tasks {
		t.Stop()
	}
	close(h.quit)
	h.nl.Close()
	h.ns.Close()
}

// NS is the host's namespace handle, for libraries that need one.
func (h *Host) NS() netns.NsHandle { return h.ns }

// Netlink is a netlink handle bound to the host's namespace.
func (h *Host) Netlink() *netlink.Handle { return h.nl }

// Do runs fn on a thread inside the host's namespace. Sockets fn creates
// stay in that namespace for their whole life, whichever goroutine later
// uses them. Goroutines fn starts do not inherit the namespace.
func (h *Host) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: a goroutine that exits locked takes its thread
		// with it, so no thread in the wrong namespace returns to the pool.
		runtime.LockOSThread()
		if err := netns.Set(h.ns); err != nil {
			errc <- fmt.Errorf("enter %s: %w", h.Name, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// inside runs fn on one of the host's threads that stay in its namespace,
// starting one only when none is free. It is Do for work that repeats
// often (a client's connections): a new thread for each, entering the
// namespace, costs the emulated guest more than the work. fn must leave
// the thread as it found it (no nice value, no other namespace).
func (h *Host) inside(fn func() error) error {
	j := nsJob{fn: fn, done: make(chan error, 1)}
	select {
	case h.idle <- j:
	default:
		go h.nsThread(j)
	}
	return <-j.done
}

func (h *Host) nsThread(j nsJob) {
	// Never unlocked, as in Do.
	runtime.LockOSThread()
	if err := netns.Set(h.ns); err != nil {
		j.done <- fmt.Errorf("enter %s: %w", h.Name, err)
		return
	}
	for {
		j.done <- j.fn()
		select {
		case j = <-h.idle:
		case <-h.quit:
			return
		}
	}
}

// must fails the test with the host's name and what was being done.
func (h *Host) must(err error, what string, args ...any) {
	if err != nil {
		h.net.tb.Helper()
		h.net.tb.Fatalf("topo: %s: %s: %v", h.Name, fmt.Sprintf(what, args...), err)
	}
}

func (h *Host) newIfName() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	name := fmt.Sprintf("eth%d", h.nextIf)
	h.nextIf++
	return name
}

// Link joins two hosts with a veth pair and gives each end its addresses
// (comma-separated CIDRs, "" for none). It returns the interface names.
func (n *Net) Link(a *Host, aAddrs string, b *Host, bAddrs string) (aIf, bIf string) {
	n.tb.Helper()
	aIf, bIf = a.newIfName(), b.newIfName()
	n.veth(a, aIf, b, bIf)
	a.up(aIf, aAddrs)
	b.up(bIf, bAddrs)
	return aIf, bIf
}

func (n *Net) veth(a *Host, aIf string, b *Host, bIf string) {
	n.tb.Helper()
	v := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: aIf, Namespace: netlink.NsFd(a.ns)},
		PeerName:      bIf,
		PeerNamespace: netlink.NsFd(b.ns),
	}
	if err := n.root.LinkAdd(v); err != nil {
		n.tb.Fatalf("topo: veth %s:%s - %s:%s: %v", a.Name, aIf, b.Name, bIf, err)
	}
}

// up sets an interface up with its addresses.
func (h *Host) up(ifName, addrs string) {
	h.net.tb.Helper()
	l, err := h.nl.LinkByName(ifName)
	h.must(err, "find %s", ifName)
	for _, a := range splitAddrs(addrs) {
		h.Addr(ifName, a)
	}
	h.must(h.nl.LinkSetUp(l), "set %s up", ifName)
}

func splitAddrs(s string) []string {
	var out []string
	for _, a := range strings.Split(s, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// Addr adds an address (CIDR) to an interface. IPv6 addresses skip
// duplicate address detection, which would leave them unusable for a
// second or more.
func (h *Host) Addr(ifName, cidr string) {
	h.net.tb.Helper()
	l, err := h.nl.LinkByName(ifName)
	h.must(err, "find %s", ifName)
	a, err := netlink.ParseAddr(cidr)
	h.must(err, "parse %s", cidr)
	if a.IP.To4() == nil {
		a.Flags |= unix.IFA_F_NODAD
	}
	h.must(h.nl.AddrAdd(l, a), "add %s to %s", cidr, ifName)
}

// WaitIPv6 waits until IPv6 runs on an interface: the kernel starts it
// (link-local address, multicast route) only once the link has carrier,
// which it learns asynchronously, up to a second after the link is set
// up. Until then, sending IPv6 multicast there fails with "network is
// unreachable".
func (h *Host) WaitIPv6(ifName string, within time.Duration) {
	h.net.tb.Helper()
	l, err := h.nl.LinkByName(ifName)
	h.must(err, "find %s", ifName)
	deadline := time.Now().Add(within)
	for {
		addrs, err := h.nl.AddrList(l, netlink.FAMILY_V6)
		h.must(err, "list the addresses of %s", ifName)
		for _, a := range addrs {
			if a.IP.IsLinkLocalUnicast() {
				return
			}
		}
		if time.Now().After(deadline) {
			h.must(fmt.Errorf("no IPv6 link-local address after %s", within), "wait for IPv6 on %s", ifName)
		}
		time.Sleep(10 * time.Millisecond) // no event to await short of a netlink subscription
	}
}

// DelAddr removes an address from an interface.
func (h *Host) DelAddr(ifName, cidr string) {
	h.net.tb.Helper()
	l, err := h.nl.LinkByName(ifName)
	h.must(err, "find %s", ifName)
	a, err := netlink.ParseAddr(cidr)
	h.must(err, "parse %s", cidr)
	h.must(h.nl.AddrDel(l, a), "remove %s from %s", cidr, ifName)
}

// Route adds a route: dst is a CIDR or "default"; via is the gateway.
// The family follows the gateway.
func (h *Host) Route(dst, via string) {
	h.net.tb.Helper()
	gw := net.ParseIP(via)
	if gw == nil {
		h.must(fmt.Errorf("bad gateway %q", via), "route %s", dst)
	}
	r := &netlink.Route{Gw: gw}
	if dst != "default" {
		_, ipnet, err := net.ParseCIDR(dst)
		h.must(err, "route %s", dst)
		r.Dst = ipnet
	} else if gw.To4() != nil {
		r.Dst = &net.IPNet{IP: net.IPv4zero, Mask: net.CIDRMask(0, 32)}
	} else {
		r.Dst = &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
	}
	h.must(h.nl.RouteAdd(r), "route %s via %s", dst, via)
}

// Sysctl sets a sysctl in the host's namespace, e.g.
// Sysctl("net.ipv4.conf.all.arp_ignore", "1"). Keys naming interfaces
// with dots can be given with slashes instead.
func (h *Host) Sysctl(key, value string) {
	h.net.tb.Helper()
	h.must(h.WriteSysctl(key, value), "sysctl %s=%s", key, value)
}

// WriteSysctl is Sysctl returning the error instead of failing.
func (h *Host) WriteSysctl(key, value string) error {
	return h.Do(func() error {
		return os.WriteFile(sysctlPath(key), []byte(value), 0o644)
	})
}

// ReadSysctl reads a sysctl in the host's namespace.
func (h *Host) ReadSysctl(key string) string {
	h.net.tb.Helper()
	var v []byte
	h.must(h.Do(func() (err error) {
		v, err = os.ReadFile(sysctlPath(key))
		return err
	}), "read sysctl %s", key)
	return strings.TrimSpace(string(v))
}

func sysctlPath(key string) string {
	if !strings.Contains(key, "/") {
		key = strings.ReplaceAll(key, ".", "/")
	}
	return filepath.Join("/proc/sys", key)
}

// MAC returns an interface's hardware address.
func (h *Host) MAC(ifName string) net.HardwareAddr {
	h.net.tb.Helper()
	l, err := h.nl.LinkByName(ifName)
	h.must(err, "find %s", ifName)
	return l.Attrs().HardwareAddr
}

// Neighbor returns the host's neighbour-table entry for ip, or nil.
func (h *Host) Neighbor(ip string) net.HardwareAddr {
	h.net.tb.Helper()
	want := net.ParseIP(ip)
	fam := netlink.FAMILY_V4
	if want.To4() == nil {
		fam = netlink.FAMILY_V6
	}
	neighs, err := h.nl.NeighList(0, fam)
	h.must(err, "list neighbours")
	for _, nb := range neighs {
		if nb.IP.Equal(want) && nb.HardwareAddr != nil && nb.State&(netlink.NUD_FAILED|netlink.NUD_INCOMPLETE) == 0 {
			return nb.HardwareAddr
		}
	}
	return nil
}

// Switch is a bridge, in a namespace of its own, that hosts plug into.
type Switch struct {
	Name   string
	host   *Host
	br     netlink.Link
	ports  int
	cables map[string]string // host/ifname -> port
	mu     sync.Mutex
}

// Switch creates (or returns) a layer-2 switch. Multicast snooping is
// off, so multicast (heartbeats, neighbour discovery) reaches every port
// as it would on a dumb switch.
func (n *Net) Switch(name string) *Switch {
	n.tb.Helper()
	n.mu.Lock()
	if s, ok := n.switches[name]; ok {
		n.mu.Unlock()
		return s
	}
	n.mu.Unlock()
	h, err := newHost(n, "switch-"+name)
	if err != nil {
		n.tb.Fatalf("topo: switch %s: %v", name, err)
	}
	off := false
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br0"}, MulticastSnooping: &off}
	h.must(h.nl.LinkAdd(br), "create bridge")
	h.must(h.nl.LinkSetUp(br), "set bridge up")
	s := &Switch{Name: name, host: h, br: br, cables: map[string]string{}}
	n.mu.Lock()
	n.switches[name] = s
	n.mu.Unlock()
	return s
}

// Plug connects host to the switch with a new interface carrying addrs
// (comma-separated CIDRs) and returns the interface's name.
func (s *Switch) Plug(h *Host, addrs string) string {
	n := h.net
	n.tb.Helper()
	s.mu.Lock()
	port := fmt.Sprintf("p%d", s.ports)
	s.ports++
	ifName := h.newIfName()
	s.cables[h.Name+"/"+ifName] = port
	s.mu.Unlock()
	n.veth(h, ifName, s.host, port)
	p, err := s.host.nl.LinkByName(port)
	s.host.must(err, "find %s", port)
	s.host.must(s.host.nl.LinkSetMaster(p, s.br), "attach %s", port)
	s.host.must(s.host.nl.LinkSetUp(p), "set %s up", port)
	h.up(ifName, addrs)
	return ifName
}

// SetCable cuts (up false) or restores the cable between h's ifName and
// the switch, by setting the switch's port down or up. The host's own
// interface stays up, as when a cable is pulled at the switch.
func (s *Switch) SetCable(h *Host, ifName string, up bool) {
	h.net.tb.Helper()
	s.mu.Lock()
	port, ok := s.cables[h.Name+"/"+ifName]
	s.mu.Unlock()
	if !ok {
		h.net.tb.Fatalf("topo: %s:%s is not plugged into switch %s", h.Name, ifName, s.Name)
	}
	pl, err := s.host.nl.LinkByName(port)
	s.host.must(err, "find %s", port)
	if up {
		s.host.must(s.host.nl.LinkSetUp(pl), "set %s up", port)
	} else {
		s.host.must(s.host.nl.LinkSetDown(pl), "set %s down", port)
	}
}
