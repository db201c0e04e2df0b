// Command demo runs inside the lab VM (make demo): it builds a small farm
// in network namespaces, puts a load-balanced service in front of it, and
// shows a client's traffic being spread over the real servers.
package main

import (
	"fmt"
	"net/netip"
	"os"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/cloudflare/ipvs"
	"github.com/cloudflare/ipvs/netmask"
	"github.com/directorlb/director/lab/topo"
)

// demoTB lets the topology helpers run outside a test: failures end the
// demo with a message, and cleanups run at exit.
type demoTB struct{ cleanups []func() }

func (d *demoTB) Helper()                         {}
func (d *demoTB) Logf(format string, args ...any) { fmt.Printf(format+"\n", args...) }
func (d *demoTB) Cleanup(f func())                { d.cleanups = append(d.cleanups, f) }
func (d *demoTB) Fatalf(format string, args ...any) {
	d.close()
	fmt.Printf("demo failed: "+format+"\n", args...)
	os.Exit(1)
}
func (d *demoTB) close() {
	for i := len(d.cleanups) - 1; i >= 0; i-- {
		d.cleanups[i]()
	}
	d.cleanups = nil
}

func main() {
	tb := &demoTB{}
	defer tb.close()
	run(tb)
}

type realServer struct {
	name   string
	addr   string
	weight uint32
}

func run(tb *demoTB) {
	fmt.Println("== director demo: a NAT virtual service in front of three real servers")
	n := topo.New(tb)
	client, dir := n.Host("client"), n.Host("director")
	n.Link(client, "198.51.100.2/24", dir, "198.51.100.1/24,198.51.100.10/24")
	dir.Sysctl("net.ipv4.ip_forward", "1")
	reals := []realServer{{"rs1", "10.0.1.11", 3}, {"rs2", "10.0.2.12", 2}, {"rs3", "10.0.3.13", 1}}
	for i, r := range reals {
		h := n.Host(r.name)
		gw := fmt.Sprintf("10.0.%d.1", i+1)
		n.Link(dir, gw+"/24", h, r.addr+"/24")
		h.Route("default", gw)
		h.ServeHTTP(":80")
	}

	var c ipvs.Client
	if err := dir.Do(func() (err error) { c, err = ipvs.New(); return err }); err != nil {
		tb.Fatalf("ipvs: %v", err)
	}
	svc := ipvs.Service{Address: netip.MustParseAddr("198.51.100.10"), Port: 80, Protocol: ipvs.TCP,
		Family: ipvs.INET, Scheduler: "wrr", Netmask: netmask.MaskFrom(32, 32)}
	if err := c.CreateService(svc); err != nil {
		tb.Fatalf("create service: %v", err)
	}
	for _, r := range reals {
		d := ipvs.Destination{Address: netip.MustParseAddr(r.addr), Port: 80, Family: ipvs.INET, FwdMethod: ipvs.Masquerade, Weight: r.weight}
		if err := c.CreateDestination(svc, d); err != nil {
			tb.Fatalf("add %s: %v", r.name, err)
		}
	}
	fmt.Println("\nvirtual service 198.51.100.10:80 (wrr), real servers:")
	for _, r := range reals {
		fmt.Printf("  %s  %s:80  weight %d\n", r.name, r.addr, r.weight)
	}

	const requests = 60
	fmt.Printf("\nclient 198.51.100.2 fetches http://198.51.100.10/ %d times, each on a new connection:\n", requests)
	got := client.Fetch("http://198.51.100.10/", requests)
	fmt.Printf("  first 12 answers: %s\n", strings.Join(got[:12], " "))
	count := map[string]int{}
	for _, g := range got {
		count[g]++
	}
	names := make([]string, 0, len(count))
	for k := range count {
		names = append(names, k)
	}
	sort.Strings(names)
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "  server\tweight\tanswers\tshare")
	for _, r := range reals {
		fmt.Fprintf(w, "  %s\t%d\t%d\t%.0f%%\n", r.name, r.weight, count[r.name], 100*float64(count[r.name])/requests)
	}
	w.Flush()

	dests, err := c.Destinations(svc)
	if err != nil {
		tb.Fatalf("read back: %v", err)
	}
	fmt.Println("\nthe kernel's IPVS table, as read back over netlink:")
	fmt.Println("  TCP  198.51.100.10:80 wrr")
	for _, d := range dests {
		fmt.Printf("    -> %s:%d  Masq  weight %d\n", d.Address, d.Port, d.Weight)
	}
	for _, r := range reals {
		if want := requests * int(r.weight) / 6; count[r.name] != want {
			tb.Fatalf("%s answered %d times, wrr with weights 3:2:1 gives %d", r.name, count[r.name], want)
		}
	}
	fmt.Println("\ndemo: traffic balanced 3:2:1 by kernel IPVS, as configured")
}
