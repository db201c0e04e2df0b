// Command statuspage-guest runs inside the lab VM for the status page's
// browser test (statuspage/browser_test.go, on the host): it builds a
// small NAT farm in network namespaces (a client, a director, two real
// servers with HTTP checks), moves the guest's NIC (qemu's user network,
// 10.0.2.15) into the director's namespace, and starts directord there
// with its metrics listener, and so the status page, on 10.0.2.15:9100.
// It answers the host on 10.0.2.15:8080:
//
//	GET  /ready          200 once directord is ready
//	POST /stop?rs=NAME   stops real server NAME's HTTP server (a check fails)
//	POST /poweroff       stops directord and exits; labinit powers off
//
// It is a program of its own rather than a lab test, because the browser
// runs on the host, where the test is: the guest only has to hold a
// running directord and do what the test asks.
package main

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/directorlb/director/lab/topo"
	"github.com/vishvananda/netlink"
)

// The guest's address on qemu's user network, and the ports the host
// forwards to it.
const (
	guestAddr   = "10.0.2.15"
	metricsPort = 9100
	controlPort = 8080
)

// guestTB lets topo run outside a test: a failure ends the program, and
// cleanups run at exit.
type guestTB struct{ cleanups []func() }

func (g *guestTB) Helper()                         {}
func (g *guestTB) Logf(format string, args ...any) { fmt.Printf(format+"\n", args...) }
func (g *guestTB) Cleanup(f func())                { g.cleanups = append(g.cleanups, f) }
func (g *guestTB) Fatalf(format string, args ...any) {
	fmt.Printf("statuspage-guest: "+format+"\n", args...)
	g.close()
	os.Exit(1)
}
func (g *guestTB) close() {
	for i := len(g.cleanups) - 1; i >= 0; i-- {
		g.cleanups[i]()
	}
	g.cleanups = nil
}

const config = `state_dir: %[1]s/state
control:
  socket: %[1]s/ctl.sock
metrics:
  listen: "%[2]s:%[3]d"
ipvs:
  reconcile_interval: 1s
services:
  - name: web
    vip: 192.0.2.10
    port: 80
    scheduler: rr
    check: {type: http, path: /, interval: 500ms, timeout: 300ms, rise: 1, fall: 2}
    real_servers:
      - {address: 10.0.11.11}
      - {address: 10.0.12.12}
`

func main() {
	tb := &guestTB{}
	defer tb.close()
	n := topo.New(tb)
	client, dir := n.Host("client"), n.Host("director")
	// First: topo makes its veths in the root namespace under the names
	// they take in the hosts (eth0, eth1, ...), which the NIC's name
	// would clash with.
	if err := moveNIC(dir); err != nil {
		tb.Fatalf("%v", err)
	}
	n.Link(client, "198.51.100.2/24", dir, "198.51.100.1/24")
	client.Route("default", "198.51.100.1")
	dir.Addr("lo", "192.0.2.10/32")
	dir.Sysctl("net.ipv4.ip_forward", "1")
	stops := map[string]func(){}
	for i, name := range []string{"rs1", "rs2"} {
		h := n.Host(name)
		// Not 10.0.2.0/24: that is qemu's user network, on the NIC.
		gw := fmt.Sprintf("10.0.1%d.1", i+1)
		n.Link(dir, gw+"/24", h, fmt.Sprintf("10.0.1%d.1%d/24", i+1, i+1))
		h.Route("default", gw)
		stops[name] = h.ServeHTTP(":80")
	}

	tmp, err := os.MkdirTemp("", "statuspage-")
	if err != nil {
		tb.Fatalf("%v", err)
	}
	tb.Cleanup(func() { os.RemoveAll(tmp) })
	cfg := filepath.Join(tmp, "director.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, config, tmp, guestAddr, metricsPort), 0o644); err != nil {
		tb.Fatalf("%v", err)
	}
	log := topo.NewLogWatch(os.Stdout, "[directord] ")
	cmd := exec.Command("/bin/directord", "-config", cfg)
	cmd.Stdout, cmd.Stderr = log, log
	d, err := dir.StartCmd(cmd)
	if err != nil {
		tb.Fatalf("start directord: %v", err)
	}
	if _, err := log.Wait(0, "directord ready", 60*time.Second); err != nil {
		tb.Fatalf("%v", err)
	}
	// Some traffic, so that the page has connections to show, until
	// both servers answered (they enter at their first check). The test
	// itself does not depend on it.
	var got []string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && len(got) < 40 &&
		!(slices.Contains(got, "rs1") && slices.Contains(got, "rs2")); {
		if body, err := client.Get("http://192.0.2.10/"); err == nil {
			got = append(got, body)
		} else {
			time.Sleep(100 * time.Millisecond)
		}
	}
	fmt.Printf("statuspage-guest: the client got %s\n", strings.Join(got, " "))

	var mu sync.Mutex
	poweroff := make(chan struct{})
	var once sync.Once
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ready") })
	mux.HandleFunc("POST /stop", func(w http.ResponseWriter, r *http.Request) {
		name := r.URL.Query().Get("rs")
		mu.Lock()
		stop := stops[name]
		mu.Unlock()
		if stop == nil {
			http.Error(w, "no real server "+name, http.StatusNotFound)
			return
		}
		stop()
		fmt.Printf("statuspage-guest: %s's HTTP server stopped\n", name)
		fmt.Fprintf(w, "stopped %s\n", name)
	})
	mux.HandleFunc("POST /poweroff", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "powering off")
		once.Do(func() { close(poweroff) })
	})
	dir.ServeHandler(fmt.Sprintf("%s:%d", guestAddr, controlPort), mux)
	fmt.Printf("statuspage-guest: ready: the status page is on %s:%d, control on :%d\n", guestAddr, metricsPort, controlPort)

	select {
	case <-poweroff:
	case <-d.Done():
		tb.Fatalf("directord stopped: %v", d.Wait())
	}
	if err := d.Stop(10 * time.Second); err != nil {
		tb.Fatalf("stop directord: %v", err)
	}
	fmt.Println("statuspage-guest: done")
}

// nic is the NIC's name in the director's namespace, apart from topo's.
const nic = "uplink"

// moveNIC moves the guest's NIC into the director's namespace, as nic,
// and gives it qemu's user-network address. virtio_net probes the device as it
// loads, which labinit did before running us; the wait covers a slow
// emulated probe.
func moveNIC(dir *topo.Host) error {
	var link netlink.Link
	deadline := time.Now().Add(10 * time.Second)
	for {
		l, err := netlink.LinkByName("eth0")
		if err == nil {
			link = l
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no eth0 in the guest (is virtio_net loaded, and the VM started with HostForward?): %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := netlink.LinkSetName(link, nic); err != nil {
		return fmt.Errorf("rename eth0: %w", err)
	}
	if err := netlink.LinkSetNsFd(link, int(dir.NS())); err != nil {
		return fmt.Errorf("move the NIC into the director's namespace: %w", err)
	}
	nl := dir.Netlink()
	l, err := nl.LinkByName(nic)
	if err != nil {
		return err
	}
	addr, err := netlink.ParseAddr(guestAddr + "/24")
	if err != nil {
		return err
	}
	if err := nl.AddrAdd(l, addr); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("address %s: %w", nic, err)
	}
	return nl.LinkSetUp(l)
}
