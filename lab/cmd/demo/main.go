// Command demo runs inside the lab VM (make demo): it builds a small farm
// in network namespaces, runs directord on it from a YAML file, and shows
// what an admin would see: the client's traffic spread by weight, the
// table through directorctl, a reload, a repair of someone's ipvsadm -C,
// and a stop that leaves traffic flowing. Then the whole product: a
// director pair in direct routing, real servers prepared by realserver, a
// health failure and recovery, and a crash of the active director that an
// established connection survives. Last, a group: three directors behind
// a BIRD router announcing the VIP over BGP, where killing one and
// draining another leaves long-lived connections going.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

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

const configTemplate = `control:
  socket: %s
metrics:
  listen: ""
defaults:
  check: {type: none}
ipvs:
  reconcile_interval: 1s
services:
  - name: web
    vip: 192.0.2.10
    port: 80
    scheduler: wrr
    real_servers:
      - {address: 10.0.1.11, weight: 3}
      - {address: 10.0.2.12, weight: 2}
      - {address: 10.0.3.13, weight: %d}
`

func section(title string) { fmt.Printf("\n== %s\n", title) }

func run(tb *demoTB) {
	section("act 1: a client, a director and three real servers, in network namespaces (NAT)")
	n := topo.New(tb)
	client, dir := n.Host("client"), n.Host("director")
	n.Link(client, "198.51.100.2/24", dir, "198.51.100.1/24")
	client.Route("default", "198.51.100.1")
	dir.Addr("lo", "192.0.2.10/32")
	dir.Sysctl("net.ipv4.ip_forward", "1")
	for i, name := range []string{"rs1", "rs2", "rs3"} {
		h := n.Host(name)
		gw := fmt.Sprintf("10.0.%d.1", i+1)
		n.Link(dir, gw+"/24", h, fmt.Sprintf("10.0.%d.1%d/24", i+1, i+1))
		h.Route("default", gw)
		h.ServeHTTP(":80")
	}
	fmt.Println("client 198.51.100.2 -> director (VIP 192.0.2.10) -> rs1 10.0.1.11, rs2 10.0.2.12, rs3 10.0.3.13 (NAT)")

	tmp, err := os.MkdirTemp("", "demo-")
	if err != nil {
		tb.Fatalf("%v", err)
	}
	tb.Cleanup(func() { os.RemoveAll(tmp) })
	socket := filepath.Join(tmp, "director.sock")
	cfg := filepath.Join(tmp, "director.yaml")
	writeConfig(tb, cfg, socket, 1)

	section("the config, checked")
	b, _ := os.ReadFile(cfg)
	fmt.Print(indent(string(b)))
	show(tb, dir, "/bin/directorctl", "check-config", "-config", cfg)

	section("directord starts and programs the kernel")
	log := topo.NewLogWatch(os.Stdout, "  [directord] ")
	cmd := exec.Command("/bin/directord", "-config", cfg)
	cmd.Stdout, cmd.Stderr = log, log
	d, err := dir.StartCmd(cmd)
	if err != nil {
		tb.Fatalf("start directord: %v", err)
	}
	if _, err := log.Wait(0, "directord ready", 15*time.Second); err != nil {
		tb.Fatalf("%v", err)
	}
	show(tb, dir, "/bin/directorctl", "list", "-n")

	section("the client sends requests, each on a new connection")
	spread(tb, client, map[string]int{"rs1": 3, "rs2": 2, "rs3": 1})

	section("rs3's weight goes from 1 to 3 in the file; directorctl reload applies only that")
	writeConfig(tb, cfg, socket, 3)
	show(tb, dir, "/bin/directorctl", "reload", "-socket", socket)
	spread(tb, client, map[string]int{"rs1": 3, "rs2": 2, "rs3": 3})

	section("someone runs ipvsadm -C behind directord's back")
	mark := log.Mark()
	show(tb, dir, "/bin/ipvsadm", "-C")
	if _, err := log.Wait(mark, "ipvs changed", 5*time.Second); err != nil {
		tb.Fatalf("no repair: %v", err)
	}
	show(tb, dir, "/bin/directorctl", "list", "-n")

	section("directord stops (SIGTERM): the table stays, traffic keeps flowing")
	if err := d.Stop(10 * time.Second); err != nil {
		tb.Fatalf("stop: %v", err)
	}
	got := client.Fetch("http://192.0.2.10/", 8)
	fmt.Printf("  with directord stopped, the client still gets: %s\n", strings.Join(got, " "))

	runPair(tb, tmp)
	runGroup(tb, tmp)
	fmt.Println("\ndemo: done")
}

func writeConfig(tb *demoTB, path, socket string, rs3 int) {
	if err := os.WriteFile(path, []byte(fmt.Sprintf(configTemplate, socket, rs3)), 0o644); err != nil {
		tb.Fatalf("%v", err)
	}
}

// show runs a command inside h and prints it with its output, as typed.
func show(tb *demoTB, h *topo.Host, argv ...string) {
	var out strings.Builder
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = &out, &out
	p, err := h.StartCmd(cmd)
	if err != nil {
		tb.Fatalf("%v", err)
	}
	err = p.Wait()
	fmt.Printf("  %s# %s\n%s", h.Name, strings.Join(append([]string{filepath.Base(argv[0])}, argv[1:]...), " "), indent(out.String()))
	if err != nil {
		tb.Fatalf("%s: %v", argv[0], err)
	}
}

func indent(s string) string {
	if s == "" {
		return ""
	}
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ") + "\n"
}

// spread fetches whole wrr cycles and prints how the answers split, checking
// that wrr honoured the weights exactly.
func spread(tb *demoTB, client *topo.Host, weights map[string]int) {
	total := 0
	for _, w := range weights {
		total += w
	}
	// Whole wrr cycles, so the split must be exact.
	requests := 10 * total
	got := client.Fetch("http://192.0.2.10/", requests)
	count := map[string]int{}
	for _, g := range got {
		count[g]++
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "  server\tweight\tanswers\tshare")
	for _, name := range []string{"rs1", "rs2", "rs3"} {
		fmt.Fprintf(w, "  %s\t%d\t%d\t%.0f%%\n", name, weights[name], count[name], 100*float64(count[name])/float64(requests))
	}
	w.Flush()
	for name, wt := range weights {
		if want := requests * wt / total; count[name] != want {
			tb.Fatalf("%s answered %d times, wrr with these weights gives %d", name, count[name], want)
		}
	}
}
