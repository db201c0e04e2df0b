//go:build lab

package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/directorlb/director/lab/topo"
)

// waitKernel waits until ipvsadm -S -n in h contains want: the kernel's
// own account of a change directord makes on its own schedule.
func waitKernel(t *testing.T, h *topo.Host, want string, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		save := ipvsadmSave(t, h)
		if strings.Contains(save, want) {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("the kernel did not reach %q within %v:\n%s", want, within, save)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDirectordHealthChecks: HTTP checks drive the kernel's weights.
func TestDirectordHealthChecks(t *testing.T) {
	t.Parallel()
	_, client, dir, rs1, rs2 := natFarm(t)
	stop1 := rs1.ServeHTTP(":8080")
	rs2.ServeHTTP(":8080")
	d := runDirectord(t, dir, `
services:
  - name: web
    vip: 192.0.2.10
    port: 8080
    scheduler: rr
    check: {type: http, path: /, interval: 200ms, timeout: 100ms, rise: 2, fall: 2}
    real_servers:
      - {address: 10.0.1.11}
      - {address: 10.0.2.12}
`)
	// New servers start unhealthy and enter after rise successes.
	waitKernel(t, dir, "-r 10.0.1.11:8080 -m -w 1", 3*time.Second)
	waitKernel(t, dir, "-r 10.0.2.12:8080 -m -w 1", 3*time.Second)
	roundRobin(t, client.Fetch("http://192.0.2.10:8080/", 4), "rs1", "rs2")

	// rs1's server dies: quiesced within fall x interval + timeout, plus
	// 2s for a guest slowed by a busy host (it measures 0.5-1.5s).
	stop1()
	took := waitKernel(t, dir, "-r 10.0.1.11:8080 -m -w 0", 5*time.Second)
	t.Logf("dead real server at weight 0 after %v (bound 2.5s: fall 2 x 200ms + 100ms + 2s)", took.Round(time.Millisecond))
	if took > 2500*time.Millisecond {
		t.Fatalf("detection took %v", took)
	}
	for _, g := range client.Fetch("http://192.0.2.10:8080/", 6) {
		if g != "rs2" {
			t.Fatalf("a request reached the dead server's host: %s", g)
		}
	}
	if out, _ := d.ctl("status", "-socket", d.socket); !strings.Contains(out, "down (http)") || !strings.Contains(out, "up (http)") {
		t.Fatalf("status does not show health:\n%s", out)
	}

	// It comes back after rise successes.
	rs1.ServeHTTP(":8080")
	waitKernel(t, dir, "-r 10.0.1.11:8080 -m -w 1", 3*time.Second)
	roundRobin(t, client.Fetch("http://192.0.2.10:8080/", 4), "rs1", "rs2")

	// A restart adopts the serving servers as healthy: nothing changes.
	before := ipvsadmSave(t, dir)
	if err := d.proc.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	d = startDirectord(t, dir, d.config)
	if got := ipvsadmSave(t, dir); got != before {
		t.Fatalf("the restart changed the table:\n%s", got)
	}
	if strings.Contains(strings.Join(d.log.Lines(), "\n"), "ipvs changed") {
		t.Fatal("the restart changed kernel objects")
	}
}

// hang accepts connections on addr inside h and never answers them.
func hang(t *testing.T, h *topo.Host, addr string) {
	t.Helper()
	l, err := h.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
}

// TestDirectordHungServerDelaysNobody: a real server that accepts and
// never answers stays out, and the other server's checks run on time.
func TestDirectordHungServerDelaysNobody(t *testing.T) {
	t.Parallel()
	_, client, dir, rs1, rs2 := natFarm(t)
	hang(t, rs1, ":8080")
	rs2.ServeHTTP(":8080")
	tmp := t.TempDir()
	start := time.Now()
	startDirectord(t, dir, writeConfig(t, tmp, configHeader(tmp)+`
services:
  - name: web
    vip: 192.0.2.10
    port: 8080
    check: {type: http, path: /, interval: 300ms, timeout: 250ms, rise: 2, fall: 3}
    real_servers:
      - {address: 10.0.1.11}
      - {address: 10.0.2.12}
`))
	// rise 2 x 300ms, plus up to 300ms of start jitter, plus slack. The
	// timeout leaves room for a guest busy with parallel tests: under
	// emulation a healthy answer has taken over 100ms.
	waitKernel(t, dir, "-r 10.0.2.12:8080 -m -w 1", 3*time.Second)
	t.Logf("the healthy server entered %v after directord started, beside a hung one", time.Since(start).Round(time.Millisecond))
	if save := ipvsadmSave(t, dir); !strings.Contains(save, "-r 10.0.1.11:8080 -m -w 0") {
		t.Fatalf("the hung server is not at weight 0:\n%s", save)
	}
	for _, g := range client.Fetch("http://192.0.2.10:8080/", 4) {
		if g != "rs2" {
			t.Fatalf("got %s", g)
		}
	}
}

// TestDirectordSorryServerOnHealth: when every real server fails its
// checks the sorry server answers; when one recovers it leaves.
func TestDirectordSorryServerOnHealth(t *testing.T) {
	t.Parallel()
	n, client, dir, rs1, rs2 := natFarm(t)
	sorry := n.Host("sorry")
	n.Link(dir, "10.0.9.1/24", sorry, "10.0.9.250/24")
	sorry.Route("default", "10.0.9.1")
	sorry.ServeHTTP(":8080")
	stop1, stop2 := rs1.ServeHTTP(":8080"), rs2.ServeHTTP(":8080")
	runDirectord(t, dir, `
services:
  - name: web
    vip: 192.0.2.10
    port: 8080
    scheduler: rr
    sorry_server: 10.0.9.250:8080
    check: {type: tcp, interval: 200ms, timeout: 100ms, rise: 1, fall: 1}
    real_servers:
      - {address: 10.0.1.11}
      - {address: 10.0.2.12}
`)
	waitKernel(t, dir, "-r 10.0.2.12:8080 -m -w 1", 2*time.Second)
	waitKernel(t, dir, "-r 10.0.1.11:8080 -m -w 1", 2*time.Second)
	stop1()
	stop2()
	waitKernel(t, dir, "-r 10.0.9.250:8080 -m -w 1", 2*time.Second)
	if got := client.Fetch("http://192.0.2.10:8080/", 2); got[0] != "sorry" || got[1] != "sorry" {
		t.Fatalf("with every real server down the client got %v", got)
	}
	rs2.ServeHTTP(":8080")
	waitKernel(t, dir, "-r 10.0.2.12:8080 -m -w 1", 2*time.Second)
	if save := ipvsadmSave(t, dir); strings.Contains(save, "10.0.9.250") {
		t.Fatalf("the sorry server stayed after rs2 recovered:\n%s", save)
	}
	if got := client.Fetch("http://192.0.2.10:8080/", 2); got[0] != "rs2" || got[1] != "rs2" {
		t.Fatalf("after recovery the client got %v", got)
	}
}

// TestDirectordSlowStart: a recovered server's weight ramps up over
// slow_start instead of jumping to full.
func TestDirectordSlowStart(t *testing.T) {
	t.Parallel()
	_, _, dir, rs1, rs2 := natFarm(t)
	stop1 := rs1.ServeHTTP(":8080")
	rs2.ServeHTTP(":8080")
	runDirectord(t, dir, `
services:
  - name: web
    vip: 192.0.2.10
    port: 8080
    slow_start: 4s
    check: {type: tcp, interval: 200ms, timeout: 100ms, rise: 1, fall: 1}
    real_servers:
      - {address: 10.0.1.11, weight: 100}
      - {address: 10.0.2.12, weight: 100}
`)
	// Servers new to directord start unhealthy, so their first rise is a
	// recovery and they ramp too: wait for full weight first.
	waitKernel(t, dir, "-r 10.0.1.11:8080 -m -w 100", 10*time.Second)
	stop1()
	waitKernel(t, dir, "-r 10.0.1.11:8080 -m -w 0", 2*time.Second)
	rs1.ServeHTTP(":8080")
	seen := map[string]bool{}
	deadline := time.Now().Add(10 * time.Second)
	for {
		save := ipvsadmSave(t, dir)
		for _, line := range strings.Split(save, "\n") {
			if strings.Contains(line, "-r 10.0.1.11:8080") {
				w := line[strings.LastIndex(line, " ")+1:]
				seen[w] = true
			}
		}
		if seen["100"] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the recovered server never reached full weight; weights seen %v", seen)
		}
		time.Sleep(100 * time.Millisecond)
	}
	intermediate := 0
	for w := range seen {
		if w != "0" && w != "100" {
			intermediate++
		}
	}
	t.Logf("weights seen while ramping: %v", seen)
	if intermediate < 2 {
		t.Fatalf("no ramp: weights seen %v", seen)
	}
}

// TestDirectordOnFailureRemove: with on_failure remove, a failed server's
// destination leaves the kernel, and returns when the server recovers.
func TestDirectordOnFailureRemove(t *testing.T) {
	t.Parallel()
	_, client, dir, rs1, rs2 := natFarm(t)
	stop1 := rs1.ServeHTTP(":8080")
	rs2.ServeHTTP(":8080")
	runDirectord(t, dir, `
services:
  - name: web
    vip: 192.0.2.10
    port: 8080
    scheduler: rr
    on_failure: remove
    check: {type: tcp, interval: 200ms, timeout: 100ms, rise: 1, fall: 1}
    real_servers:
      - {address: 10.0.1.11}
      - {address: 10.0.2.12}
`)
	waitKernel(t, dir, "-r 10.0.1.11:8080 -m -w 1", 3*time.Second)
	stop1()
	deadline := time.Now().Add(3 * time.Second)
	for strings.Contains(ipvsadmSave(t, dir), "10.0.1.11") {
		if time.Now().After(deadline) {
			t.Fatalf("the failed server's destination is still in the kernel:\n%s", ipvsadmSave(t, dir))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := client.Fetch("http://192.0.2.10:8080/", 2); got[0] != "rs2" || got[1] != "rs2" {
		t.Fatalf("got %v", got)
	}
	rs1.ServeHTTP(":8080")
	waitKernel(t, dir, "-r 10.0.1.11:8080 -m -w 1", 3*time.Second)
}
