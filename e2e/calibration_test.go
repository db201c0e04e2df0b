package e2e

import (
	"runtime"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// These benchmarks carry no build tag: they run on the host (go test
// -bench Netlink ./e2e, as root) and in the lab guest (make bench), and
// the ratio of the two calibrates the lab's figures. The lab's kernel runs
// under software emulation, so a netlink round trip there costs many
// times what it costs on hardware; IPVS's netlink is not on the host,
// rtnetlink is. Both run in a fresh namespace, so both kernels answer the
// same question.

func freshNetlink(b *testing.B) *netlink.Handle {
	b.Helper()
	type res struct {
		ns  netns.NsHandle
		err error
	}
	ch := make(chan res, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		ns, err := netns.New()
		ch <- res{ns, err}
	}()
	r := <-ch
	if r.err != nil {
		b.Skipf("needs root for a network namespace: %v", r.err)
	}
	b.Cleanup(func() { r.ns.Close() })
	h, err := netlink.NewHandleAt(r.ns, unix.NETLINK_ROUTE)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(h.Close)
	return h
}

// BenchmarkNetlinkRequest is one request and its answer.
func BenchmarkNetlinkRequest(b *testing.B) {
	h := freshNetlink(b)
	for i := 0; i < b.N; i++ {
		if _, err := h.LinkByName("lo"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNetlinkDump is one (empty) dump, the shape of IPVS's
// per-service destination dump.
func BenchmarkNetlinkDump(b *testing.B) {
	h := freshNetlink(b)
	for i := 0; i < b.N; i++ {
		if _, err := h.RouteList(nil, netlink.FAMILY_V4); err != nil {
			b.Fatal(err)
		}
	}
}
