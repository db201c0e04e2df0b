//go:build lab

package e2e

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cloudflare/ipvs"
	"github.com/directorlb/director/lab/topo"
)

// weightWatch reads one service's destinations from the kernel over
// netlink, back to back, and keeps the lowest weight each destination
// ever had: a dip to 0 between two ipvsadm runs cannot hide from it.
type weightWatch struct {
	mu     sync.Mutex
	min    map[netip.AddrPort]int
	absent map[netip.AddrPort]int // reads that did not list a destination
	reads  int
	err    error
	stop   chan struct{}
	done   chan struct{}
}

func watchWeights(t *testing.T, h *topo.Host, svc ipvs.Service, dests ...netip.AddrPort) *weightWatch {
	t.Helper()
	c := ipvsIn(t, h)
	w := &weightWatch{min: map[netip.AddrPort]int{}, absent: map[netip.AddrPort]int{},
		stop: make(chan struct{}), done: make(chan struct{})}
	for _, d := range dests {
		w.min[d] = 1 << 30
	}
	go func() {
		defer close(w.done)
		for {
			select {
			case <-w.stop:
				return
			default:
			}
			got, err := c.Destinations(svc)
			w.mu.Lock()
			if err != nil {
				w.err = err
				w.mu.Unlock()
				return
			}
			w.reads++
			seen := map[netip.AddrPort]bool{}
			for _, d := range got {
				ap := netip.AddrPortFrom(d.Address, d.Port)
				seen[ap] = true
				if m, ok := w.min[ap]; ok && int(d.Weight) < m {
					w.min[ap] = int(d.Weight)
				}
			}
			for _, d := range dests {
				if !seen[d] {
					w.absent[d]++
				}
			}
			w.mu.Unlock()
		}
	}()
	t.Cleanup(w.end)
	return w
}

func (w *weightWatch) end() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

// hits counts the requests each real server got on one path.
type hits struct{ n [2]atomic.Int64 }

// awaitHits waits until every real server got at least n requests on the
// counted path: the new check has run that many times against each.
func (c *hits) await(t *testing.T, n int64, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for c.n[0].Load() < n || c.n[1].Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("the real servers got %d and %d checks within %v, want %d each", c.n[0].Load(), c.n[1].Load(), within, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestCheckEditKeepsServers: a reload that changes only how a service is
// checked (the http check's path) never drops a healthy server's weight,
// not even for a moment; the new check is in force from that reload, and
// a second edit to a path that answers 404 takes the servers out after
// fall failures.
func TestCheckEditKeepsServers(t *testing.T) {
	t.Parallel()
	_, _, dir, rs1, rs2 := natFarm(t)
	var onB hits
	for i, rs := range []*topo.Host{rs1, rs2} {
		rs.ServeHandler(":8080", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/b":
				onB.n[i].Add(1)
			case "/a":
			default:
				http.NotFound(w, r)
				return
			}
			fmt.Fprintln(w, rs.Name)
		}))
	}
	// fall 3 and a timeout close to the interval: a guest slowed by the
	// host must not fail a server by chance, which would read as the
	// very dip this test looks for.
	const services = `
services:
  - name: web
    vip: 192.0.2.10
    port: 8080
    check: {type: http, path: /a, interval: 300ms, timeout: 250ms, rise: 3, fall: 3}
    real_servers:
      - {address: 10.0.1.11}
      - {address: 10.0.2.12}
`
	d := runDirectord(t, dir, services)
	waitKernel(t, dir, "-r 10.0.1.11:8080 -m -w 1", 5*time.Second)
	waitKernel(t, dir, "-r 10.0.2.12:8080 -m -w 1", 5*time.Second)
	before := ipvsadmSave(t, dir)

	reload := func(path string) {
		t.Helper()
		d.rewrite(strings.Replace(services, "path: /a", "path: "+path, 1))
		mark := d.log.Mark()
		if err := d.proc.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		line, err := d.log.Wait(mark, `msg=reloaded|reload refused`, 10*time.Second)
		if err != nil || !strings.Contains(line, "msg=reloaded") {
			t.Fatalf("reload to path %s: %q %v", path, line, err)
		}
		if !strings.Contains(line, "changes=0") {
			// Not fatal: the kernel's own account below says more.
			t.Errorf("reload to path %s: %q (want no change to the kernel)", path, line)
		}
	}

	// Edit the path to another that answers 200, watching the kernel
	// from before the reload until the new check has run more often than
	// rise and fall: long enough for the outage this guards against (every
	// server at weight 0 for rise x interval) to show, and for the new
	// check to be what decides.
	rs1ap, rs2ap := netip.MustParseAddrPort("10.0.1.11:8080"), netip.MustParseAddrPort("10.0.2.12:8080")
	w := watchWeights(t, dir, tcpService("192.0.2.10", 8080, "wlc"), rs1ap, rs2ap)
	mark := d.log.Mark()
	reload("/b")
	onB.await(t, 5, 10*time.Second)
	w.end()
	t.Logf("%d reads of the kernel's weights across the reload", w.reads)
	if w.err != nil {
		t.Fatalf("reading the kernel's weights: %v", w.err)
	}
	if w.reads < 20 {
		t.Fatalf("only %d reads of the kernel's weights: the watch saw too little to prove anything", w.reads)
	}
	for _, ap := range []netip.AddrPort{rs1ap, rs2ap} {
		if w.min[ap] < 1 || w.absent[ap] > 0 {
			t.Errorf("%v: lowest weight %d, missing from %d reads across the reload; want always at weight 1", ap, w.min[ap], w.absent[ap])
		}
	}
	for _, l := range d.log.Lines()[mark:] {
		if strings.Contains(l, "real server unhealthy") || strings.Contains(l, "ipvs changed") {
			t.Errorf("directord changed a server across the check edit: %s", l)
		}
	}
	if _, err := d.log.Wait(mark, `health checks changed.*probes=2`, time.Second); err != nil {
		t.Errorf("directord did not say it carried the servers' health over to the edited check: %v", err)
	}
	if after := ipvsadmSave(t, dir); after != before {
		t.Fatalf("the table changed across the check edit:\nbefore\n%s\nafter\n%s", before, after)
	}

	// Edit it to a path that answers 404: the new check is in force, and
	// fall 3 failures take each server out, within fall x interval plus
	// the first run's jitter, a timeout and 2s for a busy guest.
	start := time.Now()
	reload("/missing")
	waitKernel(t, dir, "-r 10.0.1.11:8080 -m -w 0", 5*time.Second)
	waitKernel(t, dir, "-r 10.0.2.12:8080 -m -w 0", 5*time.Second)
	t.Logf("both servers out %v after the check was edited to a failing path", time.Since(start).Round(time.Millisecond))
	for _, rs := range []string{"10.0.1.11", "10.0.2.12"} {
		if _, err := d.log.Wait(mark, `real server unhealthy.*server=`+rs+`:8080.*404`, time.Second); err != nil {
			t.Errorf("no log of %s going down on the new check: %v", rs, err)
		}
	}
}
