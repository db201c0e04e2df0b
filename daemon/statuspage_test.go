package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/directorlb/director/control"
	"github.com/directorlb/director/failover"
)

// TestStatusPageFollowsTheChecks: directord's metrics listener serves
// the status page at /, made from what directorctl status answers; a
// real server whose check fails shows down on it, and the transition is
// in its recent changes.
func TestStatusPageFollowsTheChecks(t *testing.T) {
	rs, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := rs.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	addr := rs.Addr().String()
	dir := t.TempDir()
	port := freePort(t)
	path, socket := singleConfig(t, dir, port, fmt.Sprintf(`  - name: web
    vip: 192.0.2.10
    port: 80
    check: {type: tcp, port: %s, interval: 50ms, timeout: 40ms, rise: 1, fall: 1}
    real_servers: [{address: 127.0.0.1}]
`, addr[strings.LastIndexByte(addr, ':')+1:]))
	var ks closingKernels
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{ConfigPath: path, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), OpenKernel: ks.open})
	}()
	defer func() {
		cancel()
		<-done
	}()
	awaitServices(t, socket, 1)
	page := fmt.Sprintf("http://127.0.0.1:%d/", port)
	row := regexp.MustCompile(`<tr class="rs (\w+)" data-rs="127.0.0.1:80"`)
	await := func(state string) string {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			res, err := http.Get(page)
			var body []byte
			if err == nil {
				body, err = io.ReadAll(res.Body)
				res.Body.Close()
			}
			if m := row.FindSubmatch(body); err == nil && m != nil && string(m[1]) == state {
				return string(body)
			}
			if time.Now().After(deadline) {
				t.Fatalf("the page never showed the real server %s: %v\n%s", state, err, body)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	await("up")
	// The same status as directorctl's.
	var st control.Status
	if err := control.Call(context.Background(), socket, control.Request{Cmd: control.CmdStatus}, &st); err != nil {
		t.Fatal(err)
	}
	if h := st.Services[0].RealServers[0].Health; h == nil || !h.Healthy || st.Role != "active" {
		t.Fatalf("directorctl status: %+v", st)
	}
	rs.Close()
	body := await("down")
	for _, want := range []string{"<td>check</td><td>web 127.0.0.1:80</td><td>down</td>", "<td>check</td><td>web 127.0.0.1:80</td><td>up</td>"} {
		if !strings.Contains(body, want) {
			t.Errorf("the recent changes lack %q:\n%s", want, body)
		}
	}
}

// TestRolesSeen: a role change is recorded once, dated from the node's
// own clock; changes missed between two reads are counted; the peer's
// death is recorded.
func TestRolesSeen(t *testing.T) {
	e := newEvents()
	e.rolesSeen(&failover.Status{Role: "init"}) // the pair not started: no node
	e.rolesSeen(&failover.Status{Node: "lb1", Role: "standby", SinceMS: 1000, Transitions: map[string]uint64{"standby": 1}})
	e.rolesSeen(&failover.Status{Node: "lb1", Role: "standby", SinceMS: 2000, Transitions: map[string]uint64{"standby": 1}})
	e.rolesSeen(&failover.Status{Node: "lb1", Role: "active", SinceMS: 10, Transitions: map[string]uint64{"standby": 2, "active": 2},
		Peer: &failover.PeerStatus{Node: "lb2", Alive: true}})
	e.rolesSeen(&failover.Status{Node: "lb1", Role: "active", SinceMS: 20, Transitions: map[string]uint64{"standby": 2, "active": 2},
		Peer: &failover.PeerStatus{Node: "lb2", Alive: false}})
	var got []string
	for _, ev := range e.ring.Recent() {
		got = append(got, ev.Kind+" "+ev.Subject+" "+ev.What)
	}
	want := []string{"peer lb2 peer dead", "peer lb2 peer alive", "role lb1 active (after 3 role changes since the last look)", "role lb1 standby"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("events:\n got %q\nwant %q", got, want)
	}
}
