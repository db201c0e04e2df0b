package checks

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/directorlb/director/config"
)

// gate is a prober that answers only when the test says: each value sent
// on it is the outcome of one probe run, so the test knows exactly which
// results the engine has seen when it looks at the health.
type gate chan bool

func (g gate) Probe(ctx context.Context, _ netip.AddrPort) Result {
	select {
	case ok := <-g:
		if ok {
			return Result{OK: true, Weight: NoWeight}
		}
		return Result{Err: errors.New("status 404"), Weight: NoWeight}
	case <-ctx.Done():
		return Result{Err: ctx.Err(), Weight: NoWeight}
	}
}

// gates builds probers by check path: one gate per path.
type gates map[string]gate

func newGates(paths ...string) gates {
	g := gates{}
	for _, p := range paths {
		g[p] = make(gate)
	}
	return g
}

func (g gates) prober(p ProbeSpec) Prober { return g[p.HTTP.Path] }

// step makes the next run of the probe answering on path return ok and
// waits until the engine has recorded it.
func (g gates) step(t *testing.T, ch <-chan observedResult, spec ProbeSpec, ok bool) {
	t.Helper()
	select {
	case g[spec.HTTP.Path] <- ok:
	case <-time.After(2 * time.Second):
		t.Fatalf("no probe of %s ran within 2s", spec.HTTP.Path)
	}
	await(t, ch, spec.Key(), 2*time.Second)
}

// httpSpec is an http check of path; its runs never time out on their own
// (a gate answers), and a run is due every 10ms.
func httpSpec(target netip.AddrPort, path string, rise, fall int) ProbeSpec {
	return ProbeSpec{Type: "http", Target: target, Interval: 10 * time.Millisecond, Timeout: time.Minute,
		Rise: rise, Fall: fall, HTTP: HTTPOptions{Method: "GET", Path: path}}
}

func wantHealth(t *testing.T, e *Engine, service string, rs netip.AddrPort, want bool, when string) {
	t.Helper()
	if h, _, known := e.Health(service, rs); h != want || !known {
		t.Fatalf("%s: healthy, known = %v, %v; want %v, true", when, h, known, want)
	}
}

// TestEngineCheckEditKeepsHealthy: a reload that changes only how a
// server is checked (here the path) keeps it healthy, with its last
// transition, until fall failures of the new check take it out.
func TestEngineCheckEditKeepsHealthy(t *testing.T) {
	g := newGates("/a", "/b")
	e, ch := testEngine(t, g.prober)
	old := httpSpec(rsA, "/a", 2, 2)
	e.Set([]Spec{{"web", rsA, old}})
	g.step(t, ch, old, true)
	g.step(t, ch, old, true)
	wantHealth(t, e, "web", rsA, true, "after rise 2")
	_, since, _ := e.Transition("web", rsA)

	edited := httpSpec(rsA, "/b", 2, 3)
	e.Set([]Spec{{"web", rsA, edited}})
	wantHealth(t, e, "web", rsA, true, "right after the check's path was edited")
	if _, s, _ := e.Transition("web", rsA); !s.Equal(since) {
		t.Fatalf("the edit moved the last transition from %v to %v", since, s)
	}
	if st := e.Snapshot()[0]; !st.Checked.IsZero() || st.Error != "" {
		t.Fatalf("status shows a result of the old check as the new one's: %+v", st)
	}
	// The new check is in force: fall 3 of its failures take it out, and
	// not one fewer.
	g.step(t, ch, edited, false)
	g.step(t, ch, edited, false)
	wantHealth(t, e, "web", rsA, true, "after 2 failures of the new check (fall 3)")
	g.step(t, ch, edited, false)
	wantHealth(t, e, "web", rsA, false, "after 3 failures of the new check (fall 3)")
	if _, s, _ := e.Transition("web", rsA); !s.After(since) {
		t.Fatalf("going down did not record a transition: %v, before %v", s, since)
	}
}

// TestEngineCheckEditKeepsUnhealthy: the rule is symmetric. An unhealthy
// server stays out until rise successes of the new check, even when the
// new check says start_healthy (which is for servers whose health is not
// known yet).
func TestEngineCheckEditKeepsUnhealthy(t *testing.T) {
	g := newGates("/a", "/b")
	e, ch := testEngine(t, g.prober)
	old := httpSpec(rsA, "/a", 1, 1)
	old.StartHealthy = true
	e.Set([]Spec{{"web", rsA, old}})
	g.step(t, ch, old, false)
	wantHealth(t, e, "web", rsA, false, "after fall 1")

	edited := httpSpec(rsA, "/b", 2, 1)
	edited.StartHealthy = true
	e.Set([]Spec{{"web", rsA, edited}})
	wantHealth(t, e, "web", rsA, false, "right after the check's path was edited")
	g.step(t, ch, edited, true)
	wantHealth(t, e, "web", rsA, false, "after 1 success of the new check (rise 2)")
	g.step(t, ch, edited, true)
	wantHealth(t, e, "web", rsA, true, "after 2 successes of the new check (rise 2)")
}

// TestEngineCheckEditTargetAndServer: a check moved to another port or
// address of the same real server (check.port, check.address) keeps the
// server's health; a real server whose own address or port changed is a
// new server and starts unhealthy, as any new server does.
func TestEngineCheckEditTargetAndServer(t *testing.T) {
	g := newGates("/a")
	e, ch := testEngine(t, g.prober)
	old := httpSpec(rsA, "/a", 1, 1)
	e.Set([]Spec{{"web", rsA, old}})
	g.step(t, ch, old, true)
	wantHealth(t, e, "web", rsA, true, "after rise 1")

	moved := httpSpec(netip.MustParseAddrPort("10.0.0.1:8080"), "/a", 1, 1)
	e.Set([]Spec{{"web", rsA, moved}})
	wantHealth(t, e, "web", rsA, true, "after check.port moved to 8080")
	moved.Target = netip.MustParseAddrPort("192.0.2.1:8080")
	e.Set([]Spec{{"web", rsA, moved}})
	wantHealth(t, e, "web", rsA, true, "after check.address moved")

	other := netip.MustParseAddrPort("10.0.0.1:81")
	e.Set([]Spec{{"web", other, httpSpec(other, "/a", 1, 1)}})
	wantHealth(t, e, "web", other, false, "a real server whose port changed")
}

// TestEngineCheckEditToNone: a check changed to type none is healthy
// whatever the old check said: none never probes, so nothing would ever
// bring a server it inherited as unhealthy back.
func TestEngineCheckEditToNone(t *testing.T) {
	g := newGates("/a")
	e, ch := testEngine(t, g.prober)
	old := httpSpec(rsA, "/a", 1, 1)
	old.StartHealthy = true
	e.Set([]Spec{{"web", rsA, old}})
	g.step(t, ch, old, false)
	wantHealth(t, e, "web", rsA, false, "after fall 1")
	e.Set([]Spec{{"web", rsA, ProbeSpec{Type: "none", Target: rsA}}})
	wantHealth(t, e, "web", rsA, true, "after the check became type none")
}

// TestEngineCheckEditMerged: two services of one real server, checked
// differently, that an edit makes share one new check (one probe, one
// state). The server stays in while either service had it in: an edit
// never takes a serving server out.
func TestEngineCheckEditMerged(t *testing.T) {
	g := newGates("/a", "/c", "/b")
	e, ch := testEngine(t, g.prober)
	up, down := httpSpec(rsA, "/a", 1, 1), httpSpec(rsA, "/c", 1, 1)
	e.Set([]Spec{{"api", rsA, down}, {"web", rsA, up}})
	g.step(t, ch, up, true)
	wantHealth(t, e, "web", rsA, true, "web after rise 1")
	wantHealth(t, e, "api", rsA, false, "api before any success")

	shared := httpSpec(rsA, "/b", 1, 2)
	e.Set([]Spec{{"api", rsA, shared}, {"web", rsA, shared}})
	wantHealth(t, e, "web", rsA, true, "web on the shared new check")
	wantHealth(t, e, "api", rsA, true, "api on the shared new check")
	g.step(t, ch, shared, false)
	g.step(t, ch, shared, false)
	wantHealth(t, e, "web", rsA, false, "after fall 2 of the shared check")
}

// TestEngineCheckEditProbesSoon: the health an edited check carries over
// is the old check's, so the new check's first run comes within its fast
// interval when it has one, not up to a whole (long) interval later.
func TestEngineCheckEditProbesSoon(t *testing.T) {
	g := newGates("/a", "/b")
	e, ch := testEngine(t, g.prober)
	old := httpSpec(rsA, "/a", 1, 1)
	e.Set([]Spec{{"web", rsA, old}})
	g.step(t, ch, old, true)

	edited := httpSpec(rsA, "/b", 1, 1)
	edited.Interval, edited.FastInterval = time.Hour, 10*time.Millisecond
	e.Set([]Spec{{"web", rsA, edited}})
	g.step(t, ch, edited, false) // fails the test unless a run comes within 2s
	wantHealth(t, e, "web", rsA, false, "after fall 1 of the new check")
}

// TestReloadCheckPathKeepsServers: the same through the configuration a
// reload reads. Every real server of a service whose check's path is
// edited stays in.
func TestReloadCheckPathKeepsServers(t *testing.T) {
	const yaml = `
services:
  - name: web
    vip: 192.0.2.10
    port: 80
    check: {type: http, path: /a, interval: 10ms, timeout: 1m, rise: 1, fall: 2}
    real_servers: [{address: 10.1.0.11}, {address: 10.1.0.12}]
`
	load := func(body string) []Spec {
		t.Helper()
		cfg, err := config.Parse("test.yaml", []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		return SpecsFor(cfg)
	}
	// /a always answers; /b never does while the test looks (its runs
	// wait on a gate nobody opens), so only the carried state can keep
	// the servers in.
	g := newGates("/b")
	e, ch := testEngine(t, func(p ProbeSpec) Prober {
		if p.HTTP.Path == "/a" {
			return funcProber(func(context.Context, netip.AddrPort) Result { return Result{OK: true, Weight: NoWeight} })
		}
		return g.prober(p)
	})
	specs := load(yaml)
	e.Set(specs)
	for _, s := range specs {
		await(t, ch, s.Probe.Key(), 2*time.Second)
		wantHealth(t, e, "web", s.RealServer, true, s.RealServer.String()+" after rise 1")
	}
	edited := load(strings.Replace(yaml, "path: /a", "path: /b", 1))
	e.Set(edited)
	for _, s := range edited {
		wantHealth(t, e, "web", s.RealServer, true, s.RealServer.String()+" after the reload edited the check's path")
	}
}
