//go:build lab

package e2e

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// vipWatch follows both directors' hold of the pair's VIP through the
// kernel's own address notifications. One netlink socket listens to both
// directors' namespaces (NETLINK_LISTEN_ALL_NSID), so it receives their
// changes in the order the kernel made them: any moment both held the VIP
// is seen, however short. It costs the guest nothing between changes; the
// sampler it replaces read both directors' addresses back to back, kept
// a CPU of the emulated guest busy, and slowed every failover it watched.
type vipWatch struct {
	f       *os.File
	done    chan struct{}
	once    sync.Once
	changed chan struct{} // a change was taken (waitChanges)
	closing atomic.Bool

	mu         sync.Mutex
	dirs       map[int32]int // nsid -> index in held
	names      []string
	held       []bool
	changes    int
	violations []string
	err        error
}

// watchVIPs starts watching; finish stops it.
func (p *pairLab) watchVIPs() *vipWatch {
	t := p.t
	t.Helper()
	vip := netip.MustParseAddr(pairVIP).As4()
	w := &vipWatch{done: make(chan struct{}), changed: make(chan struct{}, 1), dirs: map[int32]int{}}
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatalf("vip watch: socket: %v", err)
	}
	w.f = os.NewFile(uintptr(fd), "vip-watch")
	t.Cleanup(func() { w.finish() })
	if err := unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_LISTEN_ALL_NSID, 1); err != nil {
		t.Fatalf("vip watch: listen to all namespaces: %v", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 1<<20); err != nil {
		t.Fatalf("vip watch: receive buffer: %v", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: 1 << (unix.RTNLGRP_IPV4_IFADDR - 1)}); err != nil {
		t.Fatalf("vip watch: bind: %v", err)
	}
	// Notifications from another namespace reach this socket only if that
	// namespace has an id here; the id then tells the directors apart.
	for i, d := range p.dirs {
		ns := int(d.h.NS())
		id, err := netlink.GetNetNsIdByFd(ns)
		if err == nil && id < 0 {
			if err = netlink.SetNetNsIdByFd(ns, -1); err == nil {
				id, err = netlink.GetNetNsIdByFd(ns)
			}
		}
		if err != nil || id < 0 {
			t.Fatalf("vip watch: namespace id of %s: %d, %v", d.name, id, err)
		}
		w.dirs[int32(id)] = i
		w.names = append(w.names, d.name)
	}
	// Subscribed first, read second: a change in between is seen again.
	for _, d := range p.dirs {
		w.held = append(w.held, d.holdsVIP())
	}
	rc, err := w.f.SyscallConn()
	if err != nil {
		t.Fatalf("vip watch: %v", err)
	}
	go func() {
		defer close(w.done)
		buf := make([]byte, 1<<16)
		oob := make([]byte, unix.CmsgSpace(4))
		for {
			var n, oobn int
			var rerr error
			err := rc.Read(func(fd uintptr) bool {
				n, oobn, _, _, rerr = unix.Recvmsg(int(fd), buf, oob, 0)
				return rerr != unix.EAGAIN
			})
			if w.closing.Load() {
				return
			}
			if rerr == unix.EAGAIN {
				rerr = nil
			}
			if err = errors.Join(err, rerr); err != nil {
				w.fail(fmt.Errorf("vip watch: %w", err)) // ENOBUFS: changes were lost
				return
			}
			w.take(buf[:n], oob[:oobn], vip)
		}
	}()
	return w
}

// take applies one notification: an address added or removed in the
// namespace named by its control message.
func (w *vipWatch) take(b, oob []byte, vip [4]byte) {
	nsid, ok := int32(0), false
	cmsgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		w.fail(fmt.Errorf("vip watch: control message: %w", err))
		return
	}
	for _, c := range cmsgs {
		if c.Header.Level == unix.SOL_NETLINK && c.Header.Type == unix.NETLINK_LISTEN_ALL_NSID && len(c.Data) >= 4 {
			nsid, ok = int32(binary.NativeEndian.Uint32(c.Data)), true
		}
	}
	msgs, err := syscall.ParseNetlinkMessage(b)
	if err != nil {
		w.fail(fmt.Errorf("vip watch: %w", err))
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	i, mine := w.dirs[nsid]
	if !ok || !mine {
		return // this namespace's own, or another host's
	}
	for _, m := range msgs {
		if m.Header.Type != unix.RTM_NEWADDR && m.Header.Type != unix.RTM_DELADDR {
			continue
		}
		attrs, err := syscall.ParseNetlinkRouteAttr(&m)
		if err != nil {
			continue
		}
		for _, a := range attrs {
			if a.Attr.Type != unix.IFA_LOCAL || len(a.Value) != 4 || [4]byte(a.Value) != vip {
				continue
			}
			w.changes++
			select {
			case w.changed <- struct{}{}:
			default:
			}
			w.held[i] = m.Header.Type == unix.RTM_NEWADDR
			if w.held[0] && w.held[1] {
				w.violations = append(w.violations, fmt.Sprintf("%s both directors held %s (%s added it)",
					time.Now().Format("15:04:05.000"), pairVIP, w.names[i]))
			}
		}
	}
}

// waitChanges waits until the watch has taken n changes, at most within.
func (w *vipWatch) waitChanges(n int, within time.Duration) int {
	timeout := time.After(within)
	for {
		w.mu.Lock()
		got := w.changes
		w.mu.Unlock()
		if got >= n {
			return got
		}
		select {
		case <-w.changed:
		case <-timeout:
			return got
		}
	}
}

func (w *vipWatch) fail(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.err = err
}

// finish stops the watch and returns how many changes it saw and every
// moment both directors held the VIP. A watch that lost changes cannot
// vouch for anything: that is a violation too.
func (w *vipWatch) finish() (changes int, violations []string) {
	w.once.Do(func() {
		w.closing.Store(true)
		w.f.Close()
		<-w.done
	})
	w.mu.Lock()
	defer w.mu.Unlock()
	violations = w.violations
	if w.err != nil {
		violations = append(violations, w.err.Error())
	}
	return w.changes, violations
}

// TestVIPWatchSeesOverlap: the watch the failover tests rely on sees a
// moment both directors hold the VIP, and none when they hand it over in
// turn.
func TestVIPWatchSeesOverlap(t *testing.T) {
	p := newPairLab(t)
	d1, d2 := p.dirs[0], p.dirs[1]
	w := p.watchVIPs()
	cidr := pairVIP + "/24"
	d1.h.Addr(d1.lanIf, cidr)
	d1.h.DelAddr(d1.lanIf, cidr)
	d2.h.Addr(d2.lanIf, cidr)
	d2.h.DelAddr(d2.lanIf, cidr)
	d1.h.Addr(d1.lanIf, cidr)
	d2.h.Addr(d2.lanIf, cidr) // both now
	d1.h.DelAddr(d1.lanIf, cidr)
	if got := w.waitChanges(7, 5*time.Second); got != 7 {
		t.Fatalf("the watch saw %d of 7 changes", got)
	}
	changes, violations := w.finish()
	if changes != 7 || len(violations) != 1 {
		t.Fatalf("%d changes, violations %q; want 7 changes and one violation", changes, violations)
	}
	if !strings.Contains(violations[0], "both directors held") || !strings.Contains(violations[0], d2.name+" added it") {
		t.Errorf("violation %q", violations[0])
	}
}
