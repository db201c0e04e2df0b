//go:build lab

package e2e

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// kernelWeight reads a real server's weight from the kernel of d's host
// (ipvsadm's own save), -1 if it is not there.
func (d *pairDir) kernelWeight(server string) int {
	d.lab.t.Helper()
	re := regexp.MustCompile(`-r ` + regexp.QuoteMeta(server) + ` \S+ -w (\d+)`)
	m := re.FindStringSubmatch(ipvsadmSave(d.lab.t, d.h))
	if m == nil {
		return -1
	}
	var w int
	fmt.Sscan(m[1], &w)
	return w
}

// awaitWeight waits until d's kernel gives server the weight.
func (d *pairDir) awaitWeight(server string, want int, within time.Duration) {
	d.lab.t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := d.kernelWeight(server)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			d.lab.t.Fatalf("%s: %s has weight %d in the kernel after %v, want %d", d.name, server, got, within, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// drained says whether d's directorctl status shows server drained.
func (d *pairDir) drained(server string) bool {
	d.lab.t.Helper()
	out := must(d.lab.t, d.h, "/bin/directorctl", "-socket", d.d.socket, "status", "--json")
	var st struct {
		Services []struct {
			RealServers []struct {
				Address string `json:"address"`
				Drained bool   `json:"drained"`
			} `json:"real_servers"`
		} `json:"services"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		d.lab.t.Fatalf("status --json: %v\n%s", err, out)
	}
	for _, s := range st.Services {
		for _, r := range s.RealServers {
			if r.Address == server {
				return r.Drained
			}
		}
	}
	d.lab.t.Fatalf("%s: status does not list %s:\n%s", d.name, server, out)
	return false
}

// TestFailoverDrainHolds: a drain made on either director of the pair
// holds on both, through a kill of the active one, its restart, and an
// enable made on the other director.
func TestFailoverDrainHolds(t *testing.T) {
	p := newPairLab(t)
	p.startPair()
	d1, d2 := p.dirs[0], p.dirs[1]
	const server = "192.0.2.11:7"
	for _, d := range p.dirs {
		d.awaitWeight(server, 1, 10*time.Second)
	}

	// Drained on the active: the standby's kernel follows.
	must(t, d1.h, "/bin/directorctl", "-socket", d1.d.socket, "drain", "echo", "192.0.2.11")
	d1.awaitWeight(server, 0, 5*time.Second)
	start := time.Now()
	d2.awaitWeight(server, 0, 5*time.Second)
	t.Logf("the standby drained %s %v after the active", server, time.Since(start).Round(time.Millisecond))
	if !d2.drained(server) {
		t.Fatal("the standby's status does not show the drain")
	}

	// The active dies; the new active keeps the server out.
	mark := d2.mark()
	d1.kill()
	d2.waitRole(mark, "active", 10*time.Second)
	p.waitReachable(serving)
	if w := d2.kernelWeight(server); w != 0 {
		t.Fatalf("after the failover %s has weight %d on the new active, want 0", server, w)
	}
	for i := range 10 {
		conn, who := echoConn(t, p.client)
		conn.Close()
		if who != "rs2" {
			t.Fatalf("connection %d went to %s, a drained server", i, who)
		}
	}

	// The dead director comes back (a restart, or a reboot: its state
	// directory is kept) with the drain still in force.
	d1.start()
	d1.waitRole(0, "standby", 10*time.Second)
	if w := d1.kernelWeight(server); w != 0 || !d1.drained(server) {
		t.Fatalf("after its restart %s has weight %d on %s, drained %v", server, w, d1.name, d1.drained(server))
	}

	// Enabled on the standby: the active follows.
	must(t, d1.h, "/bin/directorctl", "-socket", d1.d.socket, "enable", "echo", "192.0.2.11")
	d1.awaitWeight(server, 1, 5*time.Second)
	d2.awaitWeight(server, 1, 5*time.Second)
	if d2.drained(server) {
		t.Fatal("the active still shows the server drained after the enable")
	}
}

// TestReloadRefusesEmpty: a truncated config (no service) is refused
// by a reload, by SIGHUP and at start, with the kernel untouched; a dry
// run prints what a reload would change and changes nothing; with
// allow_no_services the admin empties the table on purpose.
func TestReloadRefusesEmpty(t *testing.T) {
	t.Parallel()
	_, _, dir, _, _ := natFarm(t)
	d := runDirectord(t, dir, natServices)
	before := ipvsadmSave(t, dir)

	d.rewrite("services:\n")
	out, code := d.ctl("-socket", d.socket, "reload")
	if code != 1 || !strings.Contains(out, "services: no service configured") || !strings.Contains(out, "allow_no_services: true") {
		t.Fatalf("reload of a truncated file: exit %d\n%s", code, out)
	}
	mark := d.log.Mark()
	if err := d.proc.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if _, err := d.log.Wait(mark, `reload refused`, 10*time.Second); err != nil {
		t.Fatalf("SIGHUP with a truncated file: %v", err)
	}
	out, code = d.ctl("check-config", "-config", d.config)
	if code != 1 || !strings.Contains(out, "no service configured") {
		t.Fatalf("check-config of a truncated file: exit %d\n%s", code, out)
	}
	if after := ipvsadmSave(t, dir); after != before {
		t.Fatalf("a refused reload changed the kernel:\n%s", lineDiff(before, after))
	}

	// A dry run of a real edit: printed, not made.
	d.rewrite(strings.Replace(natServices, "weight: 3", "weight: 5", 1))
	out, code = d.ctl("-socket", d.socket, "reload", "--dry-run")
	want := "edit real server 10.0.1.11:80 of web (192.0.2.10:80/tcp): weight 3 -> 5"
	if code != 0 || !strings.Contains(out, "1 change(s)") || !strings.Contains(out, want) {
		t.Fatalf("reload --dry-run: exit %d, want %q in\n%s", code, want, out)
	}
	if after := ipvsadmSave(t, dir); after != before {
		t.Fatalf("a dry run changed the kernel:\n%s", lineDiff(before, after))
	}
	must(t, dir, "/bin/directorctl", "-socket", d.socket, "reload")
	if diff := lineDiff(before, ipvsadmSave(t, dir)); diff != "-a -t 192.0.2.10:80 -r 10.0.1.11:80 -m -w 3 => -a -t 192.0.2.10:80 -r 10.0.1.11:80 -m -w 5" {
		t.Fatalf("the reload after the dry run changed:\n%s", diff)
	}

	// Emptied on purpose.
	d.rewrite("services: []\nallow_no_services: true\n")
	out, code = d.ctl("-socket", d.socket, "reload", "--dry-run")
	if code != 0 || !strings.Contains(out, "remove service web (192.0.2.10:80/tcp)") {
		t.Fatalf("dry run of emptying: exit %d\n%s", code, out)
	}
	must(t, dir, "/bin/directorctl", "-socket", d.socket, "reload")
	if after := ipvsadmSave(t, dir); strings.Contains(after, "-A") {
		t.Fatalf("allow_no_services: the services stayed:\n%s", after)
	}

	// A start on a truncated file is refused before the kernel.
	d.rewrite("services:\n")
	out, code = run(t, dir, "", "/bin/directord", "-config", d.config)
	if code == 0 || !strings.Contains(out, "no service configured") {
		t.Fatalf("start on a truncated file: exit %d\n%s", code, out)
	}
}
