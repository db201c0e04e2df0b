//go:build lab

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/directorlb/director/lab/topo"
)

// daemon is a directord running inside a host.
type daemon struct {
	t      testing.TB
	h      *topo.Host
	proc   *topo.Proc
	log    *topo.LogWatch
	config string
	socket string
}

// writeConfig writes a config whose control socket is private to the
// test, and returns its path.
func writeConfig(t testing.TB, dir, body string) string {
	t.Helper()
	path := filepath.Join(dir, "director.yaml")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// configHeader gives each daemon its own socket and state (drains) and a short reconcile
// interval, so drift tests wait one short period. These scenarios are
// about reconciling, not health: checks are off unless a test says
// otherwise (TestDirectordHealthChecks). The ipvs block comes last, for
// tests that add to it.
func configHeader(dir string) string {
	return fmt.Sprintf("state_dir: %s\ncontrol:\n  socket: %s\nmetrics:\n  listen: \"\"\ndefaults:\n  check: {type: none}\nipvs:\n  reconcile_interval: 1s\n",
		filepath.Join(dir, "state"), filepath.Join(dir, "ctl.sock"))
}

// startDirectord starts directord in h and waits for it to say it is
// ready (first reconcile done).
func startDirectord(t testing.TB, h *topo.Host, config string) *daemon {
	t.Helper()
	lw := topo.NewLogWatch(os.Stdout, fmt.Sprintf("[%s directord] ", h.Name))
	cmd := exec.Command("/bin/directord", "-config", config)
	cmd.Stdout, cmd.Stderr = lw, lw
	p, err := h.StartCmd(cmd)
	if err != nil {
		t.Fatal(err)
	}
	d := &daemon{t: t, h: h, proc: p, log: lw, config: config, socket: filepath.Join(filepath.Dir(config), "ctl.sock")}
	if _, err := lw.Wait(0, "directord ready", 15*time.Second); err != nil {
		t.Fatalf("directord did not become ready: %v", err)
	}
	return d
}

// runDirectord starts directord in h on services (YAML of the services
// key and anything after it) under configHeader, in a fresh directory.
func runDirectord(t *testing.T, h *topo.Host, services string) *daemon {
	t.Helper()
	tmp := t.TempDir()
	return startDirectord(t, h, writeConfig(t, tmp, configHeader(tmp)+services))
}

// rewrite replaces the daemon's config file (it is not reloaded here).
func (d *daemon) rewrite(services string) {
	d.t.Helper()
	dir := filepath.Dir(d.config)
	writeConfig(d.t, dir, configHeader(dir)+services)
}

// echoConn opens a long-lived connection to the echo service and returns
// it with the name of the real server that answered.
func echoConn(t *testing.T, client *topo.Host) (*topo.Conn, string) {
	t.Helper()
	conn, err := client.DialLines("192.0.2.10:7")
	if err != nil {
		t.Fatal(err)
	}
	first, err := conn.Exchange("hello", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return conn, strings.Fields(first)[0]
}

// run runs a program inside h and returns its combined output and exit
// status.
func run(t testing.TB, h *topo.Host, stdin string, argv ...string) (string, int) {
	t.Helper()
	var out strings.Builder
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	p, err := h.StartCmd(cmd)
	if err != nil {
		t.Fatal(err)
	}
	err = p.Wait()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%v: %v", argv, err)
	}
	return out.String(), code
}

// must runs a program that must succeed.
func must(t testing.TB, h *topo.Host, argv ...string) string {
	t.Helper()
	out, code := run(t, h, "", argv...)
	if code != 0 {
		t.Fatalf("%s exited %d:\n%s", strings.Join(argv, " "), code, out)
	}
	return out
}

func ipvsadmSave(t testing.TB, h *topo.Host) string {
	t.Helper()
	return settled(t, h, "/bin/ipvsadm", "-S", "-n")
}

// settled runs a command that reads the kernel's IPVS table until two
// runs in a row print the same. The kernel resumes a service dump by an
// index that counts every namespace's services
// (ip_vs_genl_dump_services), so while parallel tests add services in
// their own namespaces, real ipvsadm can print one of ours twice.
func settled(t testing.TB, h *topo.Host, argv ...string) string {
	t.Helper()
	prev := must(t, h, argv...)
	for range 20 {
		out := must(t, h, argv...)
		if out == prev {
			return out
		}
		prev = out
	}
	t.Fatalf("%s never printed the same twice in a row; last:\n%s", strings.Join(argv, " "), prev)
	return ""
}

func (d *daemon) ctl(args ...string) (string, int) {
	d.t.Helper()
	return run(d.t, d.h, "", append([]string{"/bin/directorctl"}, args...)...)
}

// share counts the answers by server.
func share(got []string) map[string]int {
	m := map[string]int{}
	for _, g := range got {
		m[g]++
	}
	return m
}

// natFarm is a client routed to a director, which routes to two real
// servers on their own links, dual-stack.
func natFarm(t *testing.T) (n *topo.Net, client, dir, rs1, rs2 *topo.Host) {
	n = topo.New(t)
	client, dir = n.Host("client"), n.Host("dir")
	rs1, rs2 = n.Host("rs1"), n.Host("rs2")
	n.Link(client, "198.51.100.2/24,2001:db8:1::2/64", dir, "198.51.100.1/24,2001:db8:1::1/64")
	n.Link(dir, "10.0.1.1/24,2001:db8:2::1/64", rs1, "10.0.1.11/24,2001:db8:2::11/64")
	n.Link(dir, "10.0.2.1/24,2001:db8:3::1/64", rs2, "10.0.2.12/24,2001:db8:3::12/64")
	dir.Sysctl("net.ipv4.ip_forward", "1")
	dir.Sysctl("net.ipv6.conf.all.forwarding", "1")
	client.Route("default", "198.51.100.1")
	client.Route("default", "2001:db8:1::1")
	for i, rs := range []*topo.Host{rs1, rs2} {
		rs.Route("default", fmt.Sprintf("10.0.%d.1", i+1))
		rs.Route("default", fmt.Sprintf("2001:db8:%d::1", i+2))
		rs.ServeHTTP(":80")
		rs.ServeEcho(":7")
	}
	// The VIPs live on the director's loopback: IPVS intercepts them at
	// input, and the client reaches them through its default route.
	dir.Addr("lo", "192.0.2.10/32")
	dir.Addr("lo", "2001:db8:10::10/128")
	return n, client, dir, rs1, rs2
}

const natServices = `
services:
  - name: web
    vip: 192.0.2.10
    port: 80
    real_servers:
      - address: 10.0.1.11
        weight: 3
      - address: 10.0.2.12
        weight: 1
  - name: echo
    vip: 192.0.2.10
    port: 7
    scheduler: rr
    real_servers:
      - {address: 10.0.1.11}
      - {address: 10.0.2.12}
  - name: web6
    vip: 2001:db8:10::10
    port: 80
    scheduler: rr
    real_servers:
      - address: "[2001:db8:2::11]:80"
      - address: 2001:db8:3::12
`

// TestDirectordNAT: a NAT service from YAML carries traffic, weights 3:1
// give about 3:1, and IPv6 works beside it.
func TestDirectordNAT(t *testing.T) {
	t.Parallel()
	_, client, dir, _, _ := natFarm(t)
	runDirectord(t, dir, natServices)

	got := share(client.Fetch("http://192.0.2.10/", 80))
	t.Logf("web (3:1, wlc): %v", got)
	if ratio := float64(got["rs1"]) / float64(max(got["rs2"], 1)); got["rs1"]+got["rs2"] != 80 || ratio < 2.3 || ratio > 3.9 {
		t.Fatalf("weights 3:1 gave %v", got)
	}
	got6 := client.Fetch("http://[2001:db8:10::10]/", 4)
	roundRobin(t, got6, "rs1", "rs2")
}

// TestDirectordReloadTouchesOnlyWhatChanged: after an edit and SIGHUP,
// only the changed objects change in the kernel, and a long-lived
// connection through an untouched service keeps working.
func TestDirectordReloadTouchesOnlyWhatChanged(t *testing.T) {
	t.Parallel()
	_, client, dir, _, _ := natFarm(t)
	d := runDirectord(t, dir, natServices)
	conn, first := echoConn(t, client)
	before := ipvsadmSave(t, dir)

	// Change one weight of web only.
	d.rewrite(strings.Replace(natServices, "weight: 3", "weight: 5", 1))
	mark := d.log.Mark()
	if err := d.proc.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	line, err := d.log.Wait(mark, `msg=reloaded|reload refused`, 10*time.Second)
	if err != nil || !strings.Contains(line, "changes=1") {
		t.Fatalf("reload: %q %v (want exactly one change)", line, err)
	}
	after := ipvsadmSave(t, dir)
	if diff := lineDiff(before, after); diff != "-a -t 192.0.2.10:80 -r 10.0.1.11:80 -m -w 3 => -a -t 192.0.2.10:80 -r 10.0.1.11:80 -m -w 5" {
		t.Fatalf("the table changed in more than that weight:\n%s", diff)
	}
	second, err := conn.Exchange("after", 2*time.Second)
	if err != nil {
		t.Fatalf("the long-lived connection broke across the reload: %v", err)
	}
	if first != strings.Fields(second)[0] {
		t.Fatalf("the connection moved from %q to %q", first, second)
	}
}

// lineDiff summarises the lines that differ between two ipvsadm saves.
func lineDiff(a, b string) string {
	al, bl := strings.Split(strings.TrimSpace(a), "\n"), strings.Split(strings.TrimSpace(b), "\n")
	var gone, came []string
	in := func(s string, l []string) bool {
		for _, x := range l {
			if x == s {
				return true
			}
		}
		return false
	}
	for _, x := range al {
		if !in(x, bl) {
			gone = append(gone, x)
		}
	}
	for _, x := range bl {
		if !in(x, al) {
			came = append(came, x)
		}
	}
	return strings.Join(gone, " | ") + " => " + strings.Join(came, " | ")
}

// TestDirectordBadReloadKeepsEverything: a broken config is refused as a
// whole, by SIGHUP and by directorctl reload, with FILE:LINE:COL errors;
// the daemon keeps running and the kernel table is byte-for-byte the same.
func TestDirectordBadReloadKeepsEverything(t *testing.T) {
	t.Parallel()
	_, client, dir, _, _ := natFarm(t)
	d := runDirectord(t, dir, natServices)
	before := ipvsadmSave(t, dir)

	bad := strings.Replace(natServices, "weight: 3", "weight: 70000", 1)
	d.rewrite(strings.Replace(bad, "scheduler: rr", "scheduler: roundrobin", 1))

	mark := d.log.Mark()
	if err := d.proc.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if _, err := d.log.Wait(mark, `reload refused.*weight`, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := d.log.Wait(mark, `reload refused.*scheduler`, time.Second); err != nil {
		t.Fatalf("not every problem was logged: %v", err)
	}
	out, code := d.ctl("reload", "-socket", d.socket)
	if code != 1 || !strings.Contains(out, d.config+":") || !strings.Contains(out, "weight") || !strings.Contains(out, "scheduler") {
		t.Fatalf("directorctl reload of a bad config: exit %d\n%s", code, out)
	}
	if after := ipvsadmSave(t, dir); after != before {
		t.Fatalf("a refused reload changed the kernel:\nbefore\n%s\nafter\n%s", before, after)
	}
	select {
	case <-d.proc.Done():
		t.Fatal("directord exited after a bad reload")
	default:
	}
	if got := client.Fetch("http://192.0.2.10/", 2); len(got) != 2 {
		t.Fatal("traffic stopped")
	}
	// Fixing the file and reloading through directorctl converges.
	d.rewrite(strings.Replace(natServices, "weight: 3", "weight: 4", 1))
	if out, code := d.ctl("reload", "-socket", d.socket); code != 0 || !strings.Contains(out, "1 change") {
		t.Fatalf("good reload: exit %d: %s", code, out)
	}
}

// TestDirectordRepairsDrift: ipvsadm -C behind directord's back is
// repaired within one reconcile period (1s here), and logged.
func TestDirectordRepairsDrift(t *testing.T) {
	t.Parallel()
	_, client, dir, _, _ := natFarm(t)
	d := runDirectord(t, dir, natServices)
	want := ipvsadmSave(t, dir)

	mark := d.log.Mark()
	must(t, dir, "/bin/ipvsadm", "-C")
	cleared := time.Now()
	// The drift is noticed within one period (the time directord logs
	// it); the repair that follows is as fast as the guest.
	line, err := d.log.Wait(mark, `drift.*disappeared`, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.log.Wait(mark, `ipvs changed`, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if got := ipvsadmSave(t, dir); got != want {
		t.Fatalf("after repair the table is\n%s\nwant\n%s", got, want)
	}
	noticed := logLineTime(line).Sub(cleared)
	t.Logf("ipvsadm -C noticed after %v, repaired after %v (reconcile interval 1s)", noticed.Round(time.Millisecond), time.Since(cleared).Round(time.Millisecond))
	if noticed > 2*time.Second {
		t.Fatalf("drift noticed after %v, more than one reconcile period", noticed)
	}
	if got := client.Fetch("http://192.0.2.10/", 2); len(got) != 2 {
		t.Fatal("no traffic after repair")
	}
}

// TestDirectordRestartChangesNothing: stop directord (SIGTERM) and start
// it again with a connection open: the table stays in the kernel while it
// is down, the connection survives, and the restart changes no object.
func TestDirectordRestartChangesNothing(t *testing.T) {
	t.Parallel()
	_, client, dir, _, _ := natFarm(t)
	d := runDirectord(t, dir, natServices)
	conn, _ := echoConn(t, client)
	before := ipvsadmSave(t, dir)
	if err := d.proc.Stop(10 * time.Second); err != nil {
		t.Fatalf("directord did not stop cleanly: %v", err)
	}
	if got := ipvsadmSave(t, dir); got != before {
		t.Fatalf("stopping directord changed the kernel:\n%s", got)
	}
	if _, err := conn.Exchange("while down", 2*time.Second); err != nil {
		t.Fatalf("connection broke while directord was down: %v", err)
	}
	d2 := startDirectord(t, dir, d.config)
	if lines := d2.log.Lines(); strings.Contains(strings.Join(lines, "\n"), "ipvs changed") {
		t.Fatalf("the restart changed kernel objects:\n%s", strings.Join(lines, "\n"))
	}
	if got := ipvsadmSave(t, dir); got != before {
		t.Fatalf("the restart changed the table:\n%s", got)
	}
	if _, err := conn.Exchange("after restart", 2*time.Second); err != nil {
		t.Fatalf("connection broke across the restart: %v", err)
	}
}

// TestDirectordInvalidConfigAtStart: directord refuses to start on an
// invalid file, exits non-zero with every problem, and touches nothing.
func TestDirectordInvalidConfigAtStart(t *testing.T) {
	t.Parallel()
	n := topo.New(t)
	dir := n.Host("dir")
	tmp := t.TempDir()
	cfg := writeConfig(t, tmp, configHeader(tmp)+`
services:
  - name: web
    vip: 192.0.2.10
    port: 80
    protocl: tcp
    real_servers:
      - address: 2001:db8::1
`)
	out, code := run(t, dir, "", "/bin/directord", "-config", cfg)
	if code == 0 || !strings.Contains(out, cfg+":") || !strings.Contains(out, "protocl") || !strings.Contains(out, "IPv6") {
		t.Fatalf("directord with a bad config: exit %d\n%s", code, out)
	}
	if got := ipvsadmSave(t, dir); got != "" {
		t.Fatalf("an invalid config reached the kernel:\n%s", got)
	}
	out, code = run(t, dir, "", "/bin/directorctl", "check-config", "-config", cfg)
	if code != 1 || strings.Count(out, cfg+":") < 2 {
		t.Fatalf("check-config: exit %d\n%s", code, out)
	}
}

// TestDirectordStatus: directorctl status over the control socket shows
// every service with configured and kernel weights.
func TestDirectordStatus(t *testing.T) {
	t.Parallel()
	_, _, dir, _, _ := natFarm(t)
	d := runDirectord(t, dir, natServices)
	out, code := d.ctl("status", "-socket", d.socket)
	if code != 0 {
		t.Fatalf("status: exit %d\n%s", code, out)
	}
	for _, want := range []string{"service web", "192.0.2.10:80/tcp", "10.0.1.11:80", "service web6", "[2001:db8:2::11]:80"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	out, code = d.ctl("status", "--json", "-socket", d.socket)
	if code != 0 || !strings.Contains(out, `"kernel_weight": 3`) {
		t.Fatalf("status --json: exit %d\n%s", code, out)
	}
}

// drFarm is a client, a director and two real servers on one LAN.
func drFarm(t *testing.T) (client, dir, rs1, rs2 *topo.Host, lanIfs map[string]string) {
	n := topo.New(t)
	lan := n.Switch("lan")
	client, dir = n.Host("client"), n.Host("dir")
	rs1, rs2 = n.Host("rs1"), n.Host("rs2")
	lanIfs = map[string]string{}
	lan.Plug(client, "10.0.0.1/24")
	lanIfs["dir"] = lan.Plug(dir, "10.0.0.2/24,10.0.0.100/24")
	lanIfs["rs1"] = lan.Plug(rs1, "10.0.0.11/24")
	lanIfs["rs2"] = lan.Plug(rs2, "10.0.0.12/24")
	return client, dir, rs1, rs2, lanIfs
}

// TestDirectordDR: a direct-routing service from YAML.
func TestDirectordDR(t *testing.T) {
	t.Parallel()
	client, dir, rs1, rs2, ifs := drFarm(t)
	for _, rs := range []*topo.Host{rs1, rs2} {
		drRealServer(rs, ifs[rs.Name], "lo", "10.0.0.100")
		rs.ServeHTTP(":80")
	}
	runDirectord(t, dir, `
services:
  - name: web
    vip: 10.0.0.100
    port: 80
    scheduler: rr
    forward: dr
    real_servers:
      - address: 10.0.0.11
      - address: 10.0.0.12
`)
	roundRobin(t, client.Fetch("http://10.0.0.100/", 4), "rs1", "rs2")
}

// TestDirectordTUN: an IPIP tunnel service from YAML.
func TestDirectordTUN(t *testing.T) {
	t.Parallel()
	client, dir, rs1, rs2, ifs := drFarm(t)
	for _, rs := range []*topo.Host{rs1, rs2} {
		tunRealServer(t, rs, ifs[rs.Name], "10.0.0.100")
		rs.ServeHTTP(":80")
	}
	runDirectord(t, dir, `
services:
  - name: web
    vip: 10.0.0.100
    port: 80
    scheduler: rr
    forward: tun
    real_servers:
      - address: 10.0.0.11
      - address: 10.0.0.12
`)
	roundRobin(t, client.Fetch("http://10.0.0.100/", 4), "rs1", "rs2")
	save := ipvsadmSave(t, dir)
	if strings.Count(save, " -i") != 2 {
		t.Fatalf("the kernel does not hold two tunnel destinations:\n%s", save)
	}
}

// TestDirectordCleanupOnExit: with ipvs.cleanup_on_exit, SIGTERM removes
// what directord owns and nothing else.
func TestDirectordCleanupOnExit(t *testing.T) {
	t.Parallel()
	n := topo.New(t)
	dir := n.Host("dir")
	must(t, dir, "/bin/ipvsadm", "-A", "-u", "198.51.100.53:53", "-s", "rr")
	foreign := ipvsadmSave(t, dir)
	d := runDirectord(t, dir, "  cleanup_on_exit: true\n"+`
services:
  - name: web
    vip: 192.0.2.10
    port: 80
    real_servers:
      - address: 10.0.1.11
`)
	if got := ipvsadmSave(t, dir); !strings.Contains(got, "192.0.2.10:80") {
		t.Fatalf("not programmed:\n%s", got)
	}
	if out, code := d.ctl("reconcile", "-socket", d.socket); code != 0 || !strings.Contains(out, "0 change(s)") {
		t.Fatalf("reconcile on request: exit %d: %s", code, out)
	}
	if err := d.proc.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if got := ipvsadmSave(t, dir); got != foreign {
		t.Fatalf("after SIGTERM with cleanup_on_exit the table is\n%s\nwant only the foreign service\n%s", got, foreign)
	}
}

// TestDirectordDrainEnable: directorctl drain quiesces a real server
// (weight 0: its established connection goes on, new ones go elsewhere);
// the drain survives a reload and a restart; enable puts it back.
func TestDirectordDrainEnable(t *testing.T) {
	t.Parallel()
	_, client, dir, _, _ := natFarm(t)
	d := runDirectord(t, dir, natServices)
	conn, busy := echoConn(t, client)
	addr, other := map[string]string{"rs1": "10.0.1.11", "rs2": "10.0.2.12"}[busy], map[string]string{"rs1": "rs2", "rs2": "rs1"}[busy]

	if out, code := d.ctl("drain", "echo", addr, "-socket", d.socket); code != 0 || !strings.Contains(out, "drained") {
		t.Fatalf("drain: exit %d: %s", code, out)
	}
	drainedLine := fmt.Sprintf("-a -t 192.0.2.10:7 -r %s:7 -m -w 0", addr)
	if save := ipvsadmSave(t, dir); !strings.Contains(save, drainedLine) {
		t.Fatalf("kernel after drain:\n%s", save)
	}
	if again, err := conn.Exchange("still there?", 2*time.Second); err != nil || !strings.HasPrefix(again, busy+" ") {
		t.Fatalf("the established connection to the drained server: %q %v", again, err)
	}
	for i := 0; i < 4; i++ {
		c, err := client.DialLines("192.0.2.10:7")
		if err != nil {
			t.Fatal(err)
		}
		if got, err := c.Exchange("new", 2*time.Second); err != nil || !strings.HasPrefix(got, other+" ") {
			t.Fatalf("new connection %d went to %q (%v), want %s", i, got, err, other)
		}
		c.Close()
	}
	if out, _ := d.ctl("status", "-socket", d.socket); !strings.Contains(out, addr+":7 (drained)") {
		t.Fatalf("status does not show the drain:\n%s", out)
	}

	// A reload and a restart keep it.
	mark := d.log.Mark()
	if err := d.proc.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if _, err := d.log.Wait(mark, `msg=reloaded`, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := d.proc.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	d = startDirectord(t, dir, d.config)
	if strings.Contains(strings.Join(d.log.Lines(), "\n"), "ipvs changed") {
		t.Fatal("the restart changed the kernel")
	}
	if save := ipvsadmSave(t, dir); !strings.Contains(save, drainedLine) {
		t.Fatalf("the drain did not survive reload and restart:\n%s", save)
	}

	if out, code := d.ctl("enable", "echo", addr, "-socket", d.socket); code != 0 || !strings.Contains(out, "enabled") {
		t.Fatalf("enable: exit %d: %s", code, out)
	}
	if save := ipvsadmSave(t, dir); !strings.Contains(save, fmt.Sprintf("-a -t 192.0.2.10:7 -r %s:7 -m -w 1", addr)) {
		t.Fatalf("kernel after enable:\n%s", save)
	}
}

// TestDirectordSorryServer: the sorry server is in the table only while
// no real server can take traffic (here: all drained), and leaves as soon
// as one can.
func TestDirectordSorryServer(t *testing.T) {
	t.Parallel()
	n, client, dir, _, _ := natFarm(t)
	sorry := n.Host("sorry")
	n.Link(dir, "10.0.9.1/24", sorry, "10.0.9.250/24")
	sorry.Route("default", "10.0.9.1")
	sorry.ServeHTTP(":80")
	d := runDirectord(t, dir, `
services:
  - name: web
    vip: 192.0.2.10
    port: 80
    scheduler: rr
    sorry_server: 10.0.9.250:80
    real_servers:
      - {address: 10.0.1.11}
      - {address: 10.0.2.12}
`)
	if save := ipvsadmSave(t, dir); strings.Contains(save, "10.0.9.250") {
		t.Fatalf("the sorry server is in the table while real servers are up:\n%s", save)
	}
	for _, addr := range []string{"10.0.1.11", "10.0.2.12"} {
		if out, code := d.ctl("drain", "web", addr, "-socket", d.socket); code != 0 {
			t.Fatalf("drain %s: %s", addr, out)
		}
	}
	if got := client.Fetch("http://192.0.2.10/", 3); got[0] != "sorry" || got[1] != "sorry" || got[2] != "sorry" {
		t.Fatalf("with every real server out, the client got %v, want the sorry server", got)
	}
	if out, code := d.ctl("enable", "web", "10.0.2.12", "-socket", d.socket); code != 0 {
		t.Fatalf("enable: %s", out)
	}
	if save := ipvsadmSave(t, dir); strings.Contains(save, "10.0.9.250") {
		t.Fatalf("the sorry server stayed after a real server came back:\n%s", save)
	}
	if got := client.Fetch("http://192.0.2.10/", 3); got[0] != "rs2" || got[1] != "rs2" || got[2] != "rs2" {
		t.Fatalf("after enable the client got %v, want rs2", got)
	}
}

// TestDirectordSecondInstanceRefused: a second directord on the same
// control socket exits before touching the kernel, even with another
// config.
func TestDirectordSecondInstanceRefused(t *testing.T) {
	t.Parallel()
	_, _, dir, _, _ := natFarm(t)
	tmp := t.TempDir()
	startDirectord(t, dir, writeConfig(t, tmp, configHeader(tmp)+natServices))
	before := ipvsadmSave(t, dir)
	other := filepath.Join(t.TempDir(), "other.yaml")
	if err := os.WriteFile(other, []byte(configHeader(tmp)+strings.Replace(natServices, "weight: 3", "weight: 9", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, code := run(t, dir, "", "/bin/directord", "-config", other)
	if code == 0 || !strings.Contains(out, "in use") {
		t.Fatalf("second directord: exit %d\n%s", code, out)
	}
	if after := ipvsadmSave(t, dir); after != before {
		t.Fatalf("the refused second directord changed the kernel:\n%s", after)
	}
}
