//go:build lab

package e2e

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

var (
	soFaultIterations = flag.Int("scaleout.iterations", 30, "iterations of TestScaleOutFaultLoop")
	soFaultSeed       = flag.Int64("scaleout.seed", 0, "seed of TestScaleOutFaultLoop (0: from the clock)")
)

const (
	soAuxVIP = "192.0.2.20"
	// soBound is how long the routers may take to reflect an event: a
	// restarted directord's first checks and announcement, BIRD's
	// connect delay, or BFD's detection of a cut cable.
	soBound = 15 * time.Second
)

// soFaultServices adds a second service, on a VIP of its own, whose
// health the loop can fail on every real server at once without
// touching the echo service the long-lived connections use: its check
// is a port of its own (9), opened and closed by the loop.
func soFaultServices(withRS5 bool) string {
	rs5 := ""
	if withRS5 {
		rs5 = "      - {address: 10.0.1.15}\n"
	}
	return strings.Replace(soServices(""), "      - {address: 10.0.1.14}\n", "      - {address: 10.0.1.14}\n"+rs5, 1) + fmt.Sprintf(`  - name: aux
    vip: %s
    port: 9
    forward: dr
    check: {type: tcp, interval: 200ms, timeout: 150ms, rise: 1, fall: 2}
    real_servers: [{address: 10.0.1.11}, {address: 10.0.1.12}]
`, soAuxVIP)
}

// TestScaleOutFaultLoop: random faults on a group of three (kill -9,
// node death and return, graceful stop, drain-node, a reload adding or
// removing a real server, a real server's health flap, every server of a
// service failing), seed printed. Invariants, checked after each:
// no long-lived connection lost; every director alive and not drained
// announces every service with a healthy server, within soBound; no
// director announces a service without one.
func TestScaleOutFaultLoop(t *testing.T) {
	seed := *soFaultSeed
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	t.Logf("seed %d (rerun: go run ./lab/cmd/lab test -run TestScaleOutFaultLoop -testflags '-scaleout.seed %d' ./e2e)", seed, seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	l := newScaleLab(t, 3)
	// A fifth real server for reloads, and each server's aux port.
	rs5 := l.n.Host("rs5")
	ifName := l.fabric.Plug(rs5, "10.0.1.15/24")
	drRealServer(rs5, ifName, "lo", soVIP)
	rs5.Route("0.0.0.0/0", bgpRouterAddr)
	rs5.ServeEcho(":" + soPort)
	for _, rs := range l.rss {
		rs.Addr("lo", soAuxVIP+"/32")
	}
	aux := []func(){l.rss[0].ServeEcho(":9"), l.rss[1].ServeEcho(":9")}
	auxUp := true
	withRS5 := false
	for _, g := range l.dirs {
		g.services = soFaultServices(withRS5)
	}
	l.startAll()
	ll := l.startLongLived(30)
	defer ll.close()
	pr := l.startProber()
	defer pr.close()

	dead := map[int]bool{}    // cables cut
	drained := map[int]bool{} // drain-node
	live := func() []string {
		var out []string
		for _, g := range l.dirs {
			if !dead[g.i] && !drained[g.i] {
				out = append(out, g.addr)
			}
		}
		return out
	}
	// check holds the invariants once the event has settled.
	check := func(it int, what string) {
		t.Helper()
		l.waitHops(live(), soBound)
		want := live()
		if !auxUp {
			want = nil
		}
		start := time.Now()
		for got := nextHops(t, l.router, soAuxVIP); !slices.Equal(got, slices.Sorted(slices.Values(want))); got = nextHops(t, l.router, soAuxVIP) {
			if time.Since(start) > soBound {
				t.Fatalf("iteration %d (%s): the router routes %s via %v, want %v", it, what, soAuxVIP, got, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
		for _, g := range l.dirs {
			if dead[g.i] {
				continue
			}
			for _, v := range g.status().BGP.VIPs {
				if v.Announced && v.Healthy < 1 {
					t.Errorf("iteration %d (%s): d%d announces %s with no healthy real server", it, what, g.i+1, v.VIP)
				}
				if v.Service == "aux" && v.Announced != (auxUp && !drained[g.i]) {
					t.Errorf("iteration %d (%s): d%d: aux announced %v, want %v (%s)", it, what, g.i+1, v.Announced, auxUp && !drained[g.i], v.Reason)
				}
			}
		}
		if n := ll.failures.Load(); n > 0 {
			ll.check(t, fmt.Sprintf("iteration %d (%s)", it, what))
			t.FailNow()
		}
	}
	counts := map[string]int{}
	for it := range *soFaultIterations {
		faults := []string{"kill", "stop", "reload", "aux"}
		if auxUp {
			faults = append(faults, "flap")
		}
		if len(dead) == 0 {
			faults = append(faults, "die")
		} else {
			faults = append(faults, "revive", "revive")
		}
		if len(drained) == 0 {
			faults = append(faults, "drain")
		} else {
			faults = append(faults, "enable")
		}
		fault := faults[rng.IntN(len(faults))]
		counts[fault]++
		var alive []*soDir
		for _, g := range l.dirs {
			if !dead[g.i] {
				alive = append(alive, g)
			}
		}
		g := alive[rng.IntN(len(alive))]
		what := fault
		switch fault {
		case "kill", "stop":
			what += fmt.Sprintf(" d%d", g.i+1)
			if fault == "kill" {
				g.d.proc.Kill()
			} else {
				if err := g.d.proc.Signal(syscall.SIGTERM); err != nil {
					t.Fatal(err)
				}
				<-g.d.proc.Done()
			}
			l.waitHops(slices.DeleteFunc(live(), func(a string) bool { return a == g.addr }), soBound)
			g.start()
		case "die":
			what += fmt.Sprintf(" d%d", g.i+1)
			l.fabric.SetCable(g.h, g.fabricIf, false)
			l.group.SetCable(g.h, g.groupIf, false)
			dead[g.i] = true
		case "revive":
			for i := range dead {
				g = l.dirs[i]
			}
			what += fmt.Sprintf(" d%d", g.i+1)
			l.fabric.SetCable(g.h, g.fabricIf, true)
			l.group.SetCable(g.h, g.groupIf, true)
			delete(dead, g.i)
		case "drain", "enable":
			if fault == "enable" {
				for i := range drained {
					g = l.dirs[i]
				}
			}
			what += fmt.Sprintf(" d%d", g.i+1)
			if out, code := g.d.ctl(fault+"-node", "-socket", g.d.socket); code != 0 {
				t.Fatalf("iteration %d (%s): exit %d\n%s", it, what, code, out)
			}
			if fault == "drain" {
				drained[g.i] = true
			} else {
				delete(drained, g.i)
			}
		case "reload":
			withRS5 = !withRS5
			what += map[bool]string{true: " adding rs5", false: " removing rs5"}[withRS5]
			// Every director reloads, a cut-off one too (its directord
			// runs; only its cables are out).
			for _, d := range l.dirs {
				d.services = soFaultServices(withRS5)
				d.write()
				if out, code := d.d.ctl("reload", "-socket", d.d.socket); code != 0 {
					t.Fatalf("iteration %d (%s): d%d: exit %d\n%s", it, what, d.i+1, code, out)
				}
			}
		case "flap":
			// One aux server's health fails (its check port closes) and
			// comes back; the other keeps the service announced.
			k := rng.IntN(len(aux))
			what = fmt.Sprintf("flap: rs%d's aux health", k+1)
			mark := g.d.log.Mark()
			aux[k]()
			if _, err := g.d.log.Wait(mark, fmt.Sprintf(`real server unhealthy.*service=aux server=10.0.1.%d:9`, 11+k), soBound); err != nil {
				t.Fatalf("iteration %d (%s): d%d never saw it fail: %v", it, what, g.i+1, err)
			}
			aux[k] = l.rss[k].ServeEcho(":9")
		case "aux":
			what = map[bool]string{true: "aux: every real server down", false: "aux: back up"}[auxUp]
			if auxUp {
				for _, stop := range aux {
					stop()
				}
			} else {
				aux = []func(){l.rss[0].ServeEcho(":9"), l.rss[1].ServeEcho(":9")}
			}
			auxUp = !auxUp
		}
		t.Logf("iteration %d: %s", it, what)
		check(it, what)
	}
	for i := range dead {
		l.fabric.SetCable(l.dirs[i].h, l.dirs[i].fabricIf, true)
		l.group.SetCable(l.dirs[i].h, l.dirs[i].groupIf, true)
	}
	pr.close()
	var phases []string
	_, tried, failed, worst := pr.enter("end")
	phases = append(phases, fmt.Sprintf("%d new connections, %d failed, slowest %v", tried, len(failed), worst.Round(time.Millisecond)))
	ll.close()
	ll.check(t, "the fault loop")
	t.Logf("faults %v; long-lived: 30 connections, %d exchanges, %d failures; %s", counts, ll.rounds.Load(), ll.failures.Load(), strings.Join(phases, "; "))
}
