//go:build lab

package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/directorlb/director/control"
	"github.com/directorlb/director/group"
	"github.com/directorlb/director/heartbeat"
	"github.com/directorlb/director/lab/topo"
)

// hbGroupLog is a director's log, kept for the test to read.
type hbGroupLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *hbGroupLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *hbGroupLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *hbGroupLog) has(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Contains(l.b.String(), s)
}

type hbGroupDir struct {
	h        *topo.Host
	ifA, ifB string
	g        *group.Group
	log      *hbGroupLog
	cancel   context.CancelFunc
	done     chan error
	stopped  bool
	name     string
	t        *testing.T
}

func (d *hbGroupDir) status() control.GroupStatus {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := d.g.Status(ctx)
	if err != nil {
		d.t.Fatalf("%s: Status: %v", d.name, err)
	}
	return st
}

func (d *hbGroupDir) member(node string) control.GroupMember {
	for _, m := range d.status().Members {
		if m.Node == node {
			return m
		}
	}
	return control.GroupMember{}
}

// waitMember waits until d sees node as ok wants.
func (d *hbGroupDir) waitMember(node, what string, within time.Duration, ok func(control.GroupMember) bool) {
	d.t.Helper()
	deadline := time.Now().Add(within)
	for {
		m := d.member(node)
		if ok(m) {
			return
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("%s does not see %s %s within %s: %+v", d.name, node, what, within, m)
		}
		time.Sleep(20 * time.Millisecond) // real heartbeats on real links: no event to await
	}
}

func (d *hbGroupDir) stop() {
	if d.stopped {
		return
	}
	d.stopped = true
	d.cancel()
	select {
	case err := <-d.done:
		if err != nil {
			d.t.Errorf("%s: Run: %v", d.name, err)
		}
	case <-time.After(10 * time.Second):
		d.t.Errorf("%s: Run did not return within 10s", d.name)
	}
}

// TestGroupSeesItself: three directors on two segments (IPv4 multicast
// on one, IPv6 link-local multicast on the other) through real sockets
// in the real kernel. Each sees the others, their VIPs and drain; the one
// with another digest is reported by the two others; a director cut
// from one segment stays alive through the other, and is dead once cut
// from both, and alive again when plugged back; a stopped one is gone.
func TestGroupSeesItself(t *testing.T) {
	n := topo.New(t)
	swA, swB := n.Switch("grpa"), n.Switch("grpb")
	const interval = 100 * time.Millisecond
	match, other := [16]byte{1}, [16]byte{2}
	locals := map[string]group.Local{
		"g1": {Digest: match, Announced: []netip.Prefix{netip.MustParsePrefix("192.0.2.10/32")}},
		"g2": {Digest: match, Announced: []netip.Prefix{netip.MustParsePrefix("2001:db8::10/128"), netip.MustParsePrefix("192.0.2.10/32")}},
		"g3": {Digest: other, Drained: true},
	}
	key := []byte("lab group shared secret, 32 byte")
	dirs := map[string]*hbGroupDir{}
	for i, name := range []string{"g1", "g2", "g3"} {
		d := &hbGroupDir{h: n.Host(name), name: name, t: t, log: &hbGroupLog{}, done: make(chan error, 1)}
		// No duplicate address detection: until it ends, sending from
		// the link-local address fails (the group says so and retries;
		// the test need not wait for it).
		d.h.Sysctl("net.ipv6.conf.default.accept_dad", "0")
		d.ifA = swA.Plug(d.h, fmt.Sprintf("10.19.0.%d/24", i+1))
		d.ifB = swB.Plug(d.h, fmt.Sprintf("10.19.1.%d/24", i+1))
		d.h.WaitIPv6(d.ifB, 5*time.Second)
		local := locals[name]
		cfg := group.Config{
			Node: name,
			Links: []heartbeat.LinkSpec{
				{Interface: d.ifA, Multicast: netip.MustParseAddr("239.192.0.19")},
				{Interface: d.ifB, Multicast: netip.MustParseAddr("ff02::1:19")},
			},
			Key:      key,
			Interval: interval,
			Logger:   slog.New(slog.NewTextHandler(d.log, &slog.HandlerOptions{Level: slog.LevelDebug})).With("director", name),
		}
		// The sockets are made in the host's namespace and stay there.
		if err := d.h.Do(func() error {
			g, err := group.New(cfg, func() group.Local { return local })
			d.g = g
			return err
		}); err != nil {
			t.Fatalf("%s: New: %v", name, err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		d.cancel = cancel
		go func() { d.done <- d.g.Run(ctx) }()
		t.Cleanup(func() {
			d.stop()
			if t.Failed() {
				t.Logf("%s's log:\n%s", name, d.log.String())
			}
		})
		dirs[name] = d
	}
	g1, g2, g3 := dirs["g1"], dirs["g2"], dirs["g3"]
	alive := func(m control.GroupMember) bool { return m.Alive }
	for _, d := range dirs {
		for other := range dirs {
			if other != d.name {
				d.waitMember(other, "alive", 5*time.Second, alive)
			}
		}
	}
	st := g1.status()
	if nodes := []string{st.Members[0].Node, st.Members[1].Node, st.Members[2].Node}; !slices.Equal(nodes, []string{"g1", "g2", "g3"}) {
		t.Fatalf("g1's members %v", nodes)
	}
	if m := st.Members[1]; !slices.Equal(m.Announced, []string{"192.0.2.10/32", "2001:db8::10/128"}) || m.Drained || !m.DigestMatch {
		t.Errorf("g1 sees g2 as %+v", m)
	}
	if m := st.Members[2]; !m.Drained || m.DigestMatch || len(m.Announced) != 0 {
		t.Errorf("g1 sees g3 as %+v", m)
	}
	if st.Mismatched != 1 || g2.status().Mismatched != 1 || g3.status().Mismatched != 2 {
		t.Errorf("mismatched: g1 %d, g2 %d, g3 %d; want 1, 1, 2", st.Mismatched, g2.status().Mismatched, g3.status().Mismatched)
	}
	if !g1.log.has("differs from this director's") {
		t.Error("g1 does not warn of g3's digest")
	}

	// g2 cut from segment A: still heard on B, for many dead times.
	swA.SetCable(g2.h, g2.ifA, false)
	time.Sleep(10 * interval) // a window in which nothing may happen
	if m := g1.member("g2"); !m.Alive {
		t.Fatalf("g2 cut from one segment of two is dead to g1: %+v", m)
	}
	// Cut from both: dead after three intervals, and still listed.
	cut := time.Now()
	swB.SetCable(g2.h, g2.ifB, false)
	g1.waitMember("g2", "dead", 3*time.Second, func(m control.GroupMember) bool { return !m.Alive && !m.LastSeen.IsZero() })
	t.Logf("g2 cut from both segments: dead to g1 after %s (dead time %s)", time.Since(cut).Round(time.Millisecond), 3*interval)
	if !g1.log.has("member not heard") {
		t.Error("g1 does not log g2's silence")
	}
	swA.SetCable(g2.h, g2.ifA, true)
	swB.SetCable(g2.h, g2.ifB, true)
	g1.waitMember("g2", "alive again", 5*time.Second, alive)

	// g3 stops: it says so, and is gone from the others.
	g3.stop()
	g1.waitMember("g3", "gone", 3*time.Second, func(m control.GroupMember) bool { return !m.Alive })
	if !g1.log.has("member is leaving") {
		t.Error("g1 did not hear g3 leave")
	}
	if st := g1.status(); st.Mismatched != 0 {
		t.Errorf("g3 gone, still %d mismatched", st.Mismatched)
	}
}
