package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/directorlb/director/lab/topo"
)

// The second act: the whole product. Two directors in direct routing on
// one LAN, real servers prepared by realserver, health checks that take a
// failed server out and put it back, and a crash of the active director
// that the standby covers without dropping an established connection.

const pairVIP = "192.0.2.10"

const pairConfig = `node: %[1]s
state_dir: %[8]s
control:
  socket: %[2]s
metrics:
  listen: ""
defaults:
  check: {type: tcp, interval: 300ms, timeout: 250ms, rise: 1, fall: 2}
services:
  - name: web
    vip: 192.0.2.10
    port: 80
    scheduler: rr
    forward: dr
    real_servers: [{address: 192.0.2.11}, {address: 192.0.2.12}]
  - name: echo
    vip: 192.0.2.10
    port: 7
    scheduler: rr
    forward: dr
    real_servers: [{address: 192.0.2.11}, {address: 192.0.2.12}]
failover:
  priority: %[3]d
  keepalive: 100ms
  deadtime: 500ms
  initdead: 1s
  auth_key_file: %[4]s
  links:
    - {interface: %[5]s, peer: %[6]s}
    - {interface: %[7]s, multicast: 239.192.0.18}
  vips:
    - {address: 192.0.2.10/24, interface: %[7]s}
  ping_nodes: [192.0.2.1]
  sync: {interface: %[5]s, sync_id: 10}
`

// director is one of the pair.
type director struct {
	name  string
	h     *topo.Host
	lanIf string
	sock  string
	cfg   string
	log   *topo.LogWatch
	proc  *topo.Proc
}

func runPair(tb *demoTB, tmp string) {
	section("act 2: a director pair in direct routing, two real servers, one LAN")
	n := topo.New(tb)
	lan, hb := n.Switch("lan"), n.Switch("hb")
	client, gw := n.Host("client"), n.Host("gw")
	lan.Plug(client, "192.0.2.100/24")
	lan.Plug(gw, "192.0.2.1/24")
	fmt.Println("client 192.0.2.100, router 192.0.2.1 (the ping node), d1 192.0.2.2 and d2 192.0.2.3 (VIP 192.0.2.10),")
	fmt.Println("rs1 192.0.2.11 and rs2 192.0.2.12 on the LAN; heartbeats and connection sync also on a back link")

	section("each real server is prepared with realserver up")
	var stopWeb []func()
	for i, name := range []string{"rs1", "rs2"} {
		h := n.Host(name)
		lan.Plug(h, fmt.Sprintf("192.0.2.1%d/24", i+1))
		state := "--state=" + filepath.Join(tmp, name+".json")
		show(tb, h, "/bin/realserver", "up", "--mode", "dr", "--vip", pairVIP, state)
		show(tb, h, "/bin/realserver", "status", state)
		stopWeb = append(stopWeb, h.ServeHTTP(":80"))
		h.ServeEcho(":7")
	}

	section("d1 (priority 200) and d2 (priority 100) start; d1 takes the VIP")
	var dirs []*director
	for i, prio := range []int{200, 100} {
		d := &director{name: fmt.Sprintf("d%d", i+1), h: n.Host(fmt.Sprintf("d%d", i+1))}
		d.lanIf = lan.Plug(d.h, fmt.Sprintf("192.0.2.%d/24", i+2))
		hbIf := hb.Plug(d.h, fmt.Sprintf("10.9.0.%d/24", i+1))
		key := filepath.Join(tmp, d.name+".key")
		if err := os.WriteFile(key, []byte("demo pair shared secret, 32 bytes\n"), 0o600); err != nil {
			tb.Fatalf("%v", err)
		}
		d.sock = filepath.Join(tmp, d.name+".sock")
		d.cfg = filepath.Join(tmp, d.name+".yaml")
		body := fmt.Sprintf(pairConfig, d.name, d.sock, prio, key, hbIf, fmt.Sprintf("10.9.0.%d", 2-i), d.lanIf,
			filepath.Join(filepath.Dir(d.sock), "state"))
		if err := os.WriteFile(d.cfg, []byte(body), 0o644); err != nil {
			tb.Fatalf("%v", err)
		}
		dirs = append(dirs, d)
	}
	for _, d := range dirs {
		d.start(tb)
	}
	d1, d2 := dirs[0], dirs[1]
	if _, err := d1.log.Wait(0, `failover: role changed.*to=active`, 10*time.Second); err != nil {
		tb.Fatalf("d1 never became active: %v", err)
	}
	show(tb, d1.h, "/bin/directorctl", "list", "-n")

	section("the client's requests, each on a new connection")
	fmt.Printf("  %s\n", strings.Join(client.Fetch("http://"+pairVIP+"/", 6), " "))
	fmt.Printf("  the client resolved the VIP to %s (d1's %s): the real servers stay silent\n", neighbor(tb, client), d1.h.MAC(d1.lanIf))

	section("rs2's web server stops: its check fails, d1 takes it out")
	mark := d1.log.Mark()
	stopWeb[1]()
	if _, err := d1.log.Wait(mark, `real server unhealthy.*service=web server=192.0.2.12`, 10*time.Second); err != nil {
		tb.Fatalf("%v", err)
	}
	if _, err := d1.log.Wait(mark, `ipvs changed.*service=web.*destination=192.0.2.12:80 weight=0`, 5*time.Second); err != nil {
		tb.Fatalf("%v", err)
	}
	fmt.Printf("  %s\n", strings.Join(client.Fetch("http://"+pairVIP+"/", 6), " "))

	section("rs2's web server is back: its check passes, d1 puts it back")
	mark = d1.log.Mark()
	stopWeb[1] = n.Host("rs2").ServeHTTP(":80")
	if _, err := d1.log.Wait(mark, `ipvs changed.*service=web.*destination=192.0.2.12:80 weight=1`, 10*time.Second); err != nil {
		tb.Fatalf("%v", err)
	}
	fmt.Printf("  %s\n", strings.Join(client.Fetch("http://"+pairVIP+"/", 6), " "))

	section("an established connection, then d1 crashes (kill -9)")
	conn, err := client.DialLines(pairVIP + ":7")
	if err != nil {
		tb.Fatalf("%v", err)
	}
	ans, err := conn.Exchange("before the crash", 2*time.Second)
	if err != nil {
		tb.Fatalf("%v", err)
	}
	fmt.Printf("  client> before the crash\n  %s\n", ans)
	port := conn.LocalAddr().String()
	port = port[strings.LastIndex(port, ":")+1:]
	// The master sync daemon sends at least every 2s; the connection is
	// safe once d2's kernel holds it.
	waitSynced(tb, d2, port)
	fmt.Printf("  d2's kernel already holds the connection from client port %s (IPVS connection sync)\n", port)
	mark = d2.log.Mark()
	killed := time.Now()
	if err := syscall.Kill(d1.proc.Pid(), syscall.SIGKILL); err != nil {
		tb.Fatalf("kill d1: %v", err)
	}
	if _, err := d2.log.Wait(mark, `failover: role changed.*to=active`, 10*time.Second); err != nil {
		tb.Fatalf("d2 never became active: %v", err)
	}
	fmt.Printf("  d2 active %v after the crash; the client now resolves the VIP to %s (d2's %s)\n",
		time.Since(killed).Round(time.Millisecond), neighborWithin(tb, client, d2.h.MAC(d2.lanIf).String()), d2.h.MAC(d2.lanIf))
	ans, err = conn.Exchange("after the crash", 10*time.Second)
	if err != nil {
		tb.Fatalf("the established connection did not survive: %v", err)
	}
	fmt.Printf("  client> after the crash\n  %s   (same connection, same real server)\n", ans)
	fmt.Printf("  new connections: %s\n", strings.Join(client.Fetch("http://"+pairVIP+"/", 4), " "))
	show(tb, d2.h, "/bin/directorctl", "status", "-socket", d2.sock)
}

func (d *director) start(tb *demoTB) {
	// Only the lines an admin watches for: roles, VIPs, health.
	d.log = topo.NewLogWatch(&grep{w: os.Stdout, re: regexp.MustCompile(`role changed|vip acquired|unhealthy|healthy|became`)}, "  ["+d.name+"] ")
	cmd := exec.Command("/bin/directord", "-config", d.cfg)
	cmd.Stdout, cmd.Stderr = d.log, d.log
	p, err := d.h.StartCmd(cmd)
	if err != nil {
		tb.Fatalf("start %s: %v", d.name, err)
	}
	d.proc = p
	if _, err := d.log.Wait(0, "directord ready", 15*time.Second); err != nil {
		tb.Fatalf("%s: %v", d.name, err)
	}
}

// grep forwards only the lines that match.
type grep struct {
	w  io.Writer
	re *regexp.Regexp
}

func (g *grep) Write(b []byte) (int, error) {
	for line := range strings.Lines(string(b)) {
		if g.re.MatchString(line) {
			if _, err := io.WriteString(g.w, line); err != nil {
				return 0, err
			}
		}
	}
	return len(b), nil
}

func neighbor(tb *demoTB, client *topo.Host) string {
	if mac := client.Neighbor(pairVIP); mac != nil {
		return mac.String()
	}
	tb.Fatalf("the client has no neighbour entry for the VIP")
	return ""
}

// neighborWithin waits for the client's entry for the VIP to become want:
// the new active director's gratuitous ARP updates it.
func neighborWithin(tb *demoTB, client *topo.Host, want string) string {
	deadline := time.Now().Add(5 * time.Second)
	for {
		if mac := client.Neighbor(pairVIP); mac != nil && mac.String() == want {
			return want
		}
		if time.Now().After(deadline) {
			tb.Fatalf("the client's entry for the VIP is %v, want %s", client.Neighbor(pairVIP), want)
		}
		time.Sleep(20 * time.Millisecond) // the neighbour table has no event to await here
	}
}

// waitSynced waits until d's kernel holds the established connection
// from the client's port to the VIP.
func waitSynced(tb *demoTB, d *director, port string) {
	want := fmt.Sprintf("%04X", mustAtoi(tb, port))
	deadline := time.Now().Add(10 * time.Second)
	for {
		var b []byte
		if err := d.h.Do(func() (err error) {
			b, err = os.ReadFile("/proc/thread-self/net/ip_vs_conn")
			return err
		}); err != nil {
			tb.Fatalf("%v", err)
		}
		for line := range strings.Lines(string(b)) {
			f := strings.Fields(line)
			if len(f) >= 8 && f[0] == "TCP" && f[2] == want && f[7] == "ESTABLISHED" {
				return
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("the connection never reached %s's table", d.name)
		}
		time.Sleep(50 * time.Millisecond) // the sync daemon's arrival has no event to await
	}
}

func mustAtoi(tb *demoTB, s string) int {
	var v int
	if _, err := fmt.Sscanf(s, "%d", &v); err != nil {
		tb.Fatalf("port %q: %v", s, err)
	}
	return v
}
