//go:build lab

package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/directorlb/director/lab/topo"
	"github.com/directorlb/director/metrics/promtext"
)

const metricsAddr = "127.0.0.1:9474"

// httpIn is an HTTP client whose connections start inside h.
func httpIn(h *topo.Host) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) { return h.Dial(ctx, network, addr) },
	}}
}

// getIn fetches a path of directord's metrics endpoint inside h.
func getIn(t *testing.T, h *topo.Host, path string) (int, string) {
	t.Helper()
	resp, err := httpIn(h).Get("http://" + metricsAddr + path)
	if err != nil {
		t.Fatalf("%s: GET %s: %v", h.Name, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// scraped is one scrape of directord, by family name.
type scraped promtext.Page

func scrapeIn(t *testing.T, h *topo.Host) scraped {
	t.Helper()
	code, body := getIn(t, h, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("%s: /metrics: %d\n%s", h.Name, code, body)
	}
	page, err := promtext.Parse(strings.NewReader(body))
	if err != nil {
		t.Fatalf("%s: /metrics does not parse: %v", h.Name, err)
	}
	return scraped(page)
}

func (s scraped) get(name string, labels ...string) (float64, bool) {
	return promtext.Page(s).Value(name, labels...)
}

func (s scraped) must(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	v, ok := s.get(name, labels...)
	if !ok {
		t.Fatalf("no %s%v in the scrape", name, labels)
	}
	return v
}

// waitMetric scrapes h until the sample satisfies ok. The kernel folds
// its per-CPU counters into what netlink reports about every 2s, so
// traffic shows within a few seconds, not at once.
func waitMetric(t *testing.T, h *topo.Host, within time.Duration, what string, ok func(scraped) bool) scraped {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		s := scrapeIn(t, h)
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: after %s, still not %s", h.Name, within, what)
		}
		time.Sleep(100 * time.Millisecond) // a scrape interval, not a stand-in for an event
	}
}

// TestMetricsFollowTrafficAndHealth scrapes a running directord: the
// kernel's counters move with the client's requests, and health, weights,
// check results and reload outcome follow what happens to the farm.
func TestMetricsFollowTrafficAndHealth(t *testing.T) {
	t.Parallel()
	_, client, dir, rs1, rs2 := natFarm(t)
	stop1 := rs1.ServeHTTP(":8080")
	rs2.ServeHTTP(":8080")
	tmp := t.TempDir()
	header := strings.Replace(configHeader(tmp), `listen: ""`, `listen: "`+metricsAddr+`"`, 1)
	services := `
services:
  - name: web
    vip: 192.0.2.10
    port: 8080
    scheduler: rr
    check: {type: http, path: /, interval: 200ms, timeout: 500ms, rise: 1, fall: 1}
    real_servers:
      - {address: 10.0.1.11, weight: 2}
      - {address: 10.0.2.12, weight: 2}
`
	cfgPath := writeConfig(t, tmp, header+services)
	d := startDirectord(t, dir, cfgPath)
	if code, body := getIn(t, dir, "/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz after ready: %d %s", code, body)
	}
	if code, body := getIn(t, dir, "/healthz"); code != http.StatusOK || !strings.Contains(body, "ok reconcile") || !strings.Contains(body, "ok checks") {
		t.Fatalf("/healthz: %d %s", code, body)
	}
	web := []string{"service", "web"}
	rs1L := []string{"service", "web", "address", "10.0.1.11:8080"}
	rs2L := []string{"service", "web", "address", "10.0.2.12:8080"}
	base := waitMetric(t, dir, 5*time.Second, "both real servers up and weighted", func(s scraped) bool {
		w1, _ := s.get("director_realserver_weight", rs1L...)
		w2, _ := s.get("director_realserver_weight", rs2L...)
		u1, _ := s.get("director_realserver_up", rs1L...)
		u2, _ := s.get("director_realserver_up", rs2L...)
		return w1 == 2 && w2 == 2 && u1 == 1 && u2 == 1
	})
	// Real traffic, then the counters must move by exactly as much.
	const n = 20
	got := client.Fetch("http://192.0.2.10:8080/", n)
	if len(got) != n {
		t.Fatalf("fetched %d of %d", len(got), n)
	}
	c0 := base.must(t, "director_service_connections_total", web...)
	after := waitMetric(t, dir, 8*time.Second, fmt.Sprintf("%d more connections counted", n), func(s scraped) bool {
		c, _ := s.get("director_service_connections_total", web...)
		return c >= c0+n
	})
	if c := after.must(t, "director_service_connections_total", web...); c != c0+n {
		t.Errorf("service connections went %v -> %v, want +%d", c0, c, n)
	}
	d1 := after.must(t, "director_realserver_connections_total", rs1L...) - base.must(t, "director_realserver_connections_total", rs1L...)
	d2 := after.must(t, "director_realserver_connections_total", rs2L...) - base.must(t, "director_realserver_connections_total", rs2L...)
	if d1+d2 != n || d1 != n/2 {
		t.Errorf("real server connections +%v and +%v, want %d each (rr)", d1, d2, n/2)
	}
	for _, name := range []string{"director_service_incoming_packets_total", "director_service_outgoing_packets_total",
		"director_service_incoming_bytes_total", "director_service_outgoing_bytes_total"} {
		if after.must(t, name, web...) <= base.must(t, name, web...) {
			t.Errorf("%s did not grow with %d NAT requests", name, n)
		}
	}
	t.Logf("after %d requests: +%v connections, %v bytes in, %v bytes out", n, after.must(t, "director_service_connections_total", web...)-c0,
		after.must(t, "director_service_incoming_bytes_total", web...), after.must(t, "director_service_outgoing_bytes_total", web...))
	// The kernel's own rate estimate follows within its 2s window.
	waitMetric(t, dir, 6*time.Second, "a connection rate above 0", func(s scraped) bool {
		r, _ := s.get("director_service_incoming_packets_per_second", web...)
		return r > 0
	})

	// A real server fails: health, weight and the healthy count follow.
	stop1()
	// The failed probe is counted just after the transition it causes
	// shows, so the scrape waits for both.
	down := waitMetric(t, dir, 5*time.Second, "rs1 down at weight 0, its failed check counted", func(s scraped) bool {
		u, _ := s.get("director_realserver_up", rs1L...)
		w, _ := s.get("director_realserver_weight", rs1L...)
		failed, _ := s.get("director_check_results_total", "type", "http", "outcome", "failure")
		timedOut, _ := s.get("director_check_results_total", "type", "http", "outcome", "timeout")
		return u == 0 && w == 0 && failed+timedOut > 0
	})
	if h := down.must(t, "director_service_realservers_healthy", web...); h != 1 {
		t.Errorf("healthy real servers = %v with rs1 down, want 1", h)
	}
	if c := down.must(t, "director_realserver_configured_weight", rs1L...); c != 2 {
		t.Errorf("configured weight = %v, want 2 whatever the health", c)
	}
	if down.must(t, "director_check_duration_seconds", "type", "http") == 0 {
		t.Error("no http check duration observed")
	}
	if down.must(t, "director_reconcile_duration_seconds") == 0 || down.must(t, "director_reconcile_last_success_timestamp_seconds") == 0 {
		t.Error("no reconcile recorded")
	}

	// A refused reload shows, and so does the next good one.
	if err := os.WriteFile(filepath.Join(tmp, "director.yaml"), []byte(header+"services:\n  - name: web\n    vip: nonsense\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, code := run(t, dir, "", "/bin/directorctl", "-socket", d.socket, "reload"); code == 0 {
		t.Fatalf("a bad reload succeeded: %s", out)
	}
	bad := scrapeIn(t, dir)
	if v := bad.must(t, "director_config_last_reload_successful"); v != 0 {
		t.Errorf("last_reload_successful = %v after a refused reload", v)
	}
	if v := bad.must(t, "director_config_reloads_total", "result", "failure"); v != 1 {
		t.Errorf("reloads_total{failure} = %v, want 1", v)
	}
	writeConfig(t, tmp, header+services)
	if out, code := run(t, dir, "", "/bin/directorctl", "-socket", d.socket, "reload"); code != 0 {
		t.Fatalf("reload: %s", out)
	}
	if v := scrapeIn(t, dir).must(t, "director_config_last_reload_successful"); v != 1 {
		t.Errorf("last_reload_successful = %v after a good reload", v)
	}
}

// bothLinksUp: the pair's two heartbeat links are both up.
func bothLinksUp(s scraped) bool {
	up := s["director_failover_link_up"].GetMetric()
	return len(up) == 2 && up[0].GetGauge().GetValue() == 1 && up[1].GetGauge().GetValue() == 1
}

// TestFailoverMetrics: each director's role, its peer and its links are
// in its metrics, and they change when the active director dies.
func TestFailoverMetrics(t *testing.T) {
	p := newPairLab(t)
	p.startPair()
	d1, d2 := p.dirs[0], p.dirs[1]
	waitMetric(t, d1.h, 5*time.Second, "d1 active with the peer alive on both links", func(s scraped) bool {
		a, _ := s.get("director_failover_role", "role", "active")
		alive, _ := s.get("director_failover_peer_alive")
		return a == 1 && alive == 1 && bothLinksUp(s)
	})
	// d2 turns standby on the first heartbeat, from either link; the
	// other link's first may come a moment later.
	s2 := waitMetric(t, d2.h, 5*time.Second, "d2 standby, hearing d1 on both links", func(s scraped) bool {
		v, _ := s.get("director_failover_role", "role", "standby")
		return v == 1 && bothLinksUp(s)
	})
	if v := s2.must(t, "director_failover_role", "role", "active"); v != 0 {
		t.Errorf("d2 active = %v while d1 is active", v)
	}
	if v := s2.must(t, "director_failover_peer_role", "role", "active"); v != 1 {
		t.Errorf("d2 sees its peer as active = %v", v)
	}
	if v := s2.must(t, "director_failover_config_mismatch"); v != 0 {
		t.Errorf("config_mismatch = %v for identical services", v)
	}
	if v := s2.must(t, "director_failover_sync_daemon", "state", "backup"); v != 1 {
		t.Errorf("d2's backup sync daemon = %v", v)
	}
	for _, l := range s2["director_failover_heartbeats_received_total"].GetMetric() {
		if l.GetCounter().GetValue() == 0 {
			t.Errorf("d2 received no heartbeat on %v", l.GetLabel())
		}
	}
	before := s2.must(t, "director_failover_transitions_total", "to", "active")

	d1.kill()
	// d1's guard tells d2 at once; its links go quiet at deadtime.
	after := waitMetric(t, d2.h, 5*time.Second, "d2 active with its peer gone and its links quiet", func(s scraped) bool {
		a, _ := s.get("director_failover_role", "role", "active")
		alive, _ := s.get("director_failover_peer_alive")
		up := 0.0
		for _, l := range s["director_failover_link_up"].GetMetric() {
			up += l.GetGauge().GetValue()
		}
		return a == 1 && alive == 0 && up == 0
	})
	if v := after.must(t, "director_failover_transitions_total", "to", "active"); v != before+1 {
		t.Errorf("transitions to active %v -> %v, want +1", before, v)
	}
	if v := after.must(t, "director_failover_vip_held", "address", "192.0.2.10/24"); v != 1 {
		t.Errorf("d2 holds the VIP = %v after taking over", v)
	}
	if v := s2.must(t, "director_failover_vip_held", "address", "192.0.2.10/24"); v != 0 {
		t.Errorf("d2 held the VIP = %v while standby", v)
	}
	if v := after.must(t, "director_failover_sync_daemon", "state", "master"); v != 1 {
		t.Errorf("d2's master sync daemon = %v after taking over", v)
	}
	for _, l := range after["director_failover_link_up"].GetMetric() {
		if l.GetGauge().GetValue() != 0 {
			t.Errorf("link %v still up with the peer dead", l.GetLabel())
		}
	}
}

// TestDirectordSystemdNotify: under systemd's Type=notify with a
// watchdog, directord says READY=1 once its first reconcile is done,
// pings WATCHDOG=1 while its loops turn, and says STOPPING=1 at SIGTERM.
// The notify socket is systemd's protocol, played here by the test.
func TestDirectordSystemdNotify(t *testing.T) {
	t.Parallel()
	n := topo.New(t)
	h := n.Host("sd")
	tmp := t.TempDir()
	sock := filepath.Join(tmp, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cfg := writeConfig(t, tmp, configHeader(tmp)+"services:\n  - name: web\n    vip: 192.0.2.10\n    port: 80\n    real_servers:\n      - {address: 10.0.0.1}\n")
	lw := topo.NewLogWatch(os.Stdout, "[sd directord] ")
	cmd := exec.Command("/bin/directord", "-config", cfg)
	cmd.Stdout, cmd.Stderr = lw, lw
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock, "WATCHDOG_USEC=300000")
	start := time.Now()
	p, err := h.StartCmd(cmd)
	if err != nil {
		t.Fatal(err)
	}
	next := func(within time.Duration) string {
		t.Helper()
		buf := make([]byte, 512)
		_ = conn.SetReadDeadline(time.Now().Add(within))
		k, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("no notification within %s: %v", within, err)
		}
		return string(buf[:k])
	}
	if msg := next(15 * time.Second); msg != "READY=1" {
		t.Fatalf("first notification %q, want READY=1", msg)
	}
	if _, err := lw.Wait(0, "directord ready", time.Second); err != nil {
		t.Fatal("READY=1 came before directord was ready")
	}
	t.Logf("READY=1 %v after start", time.Since(start).Round(time.Millisecond))
	// WatchdogSec 300ms: pings come every 100ms while the loops turn.
	pings := 0
	for pings < 5 {
		if msg := next(time.Second); msg != "WATCHDOG=1" {
			t.Fatalf("notification %q, want WATCHDOG=1", msg)
		}
		pings++
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for {
		msg := next(5 * time.Second)
		if msg == "STOPPING=1" {
			break
		}
		if msg != "WATCHDOG=1" {
			t.Fatalf("notification %q at stop", msg)
		}
	}
	<-p.Done()
}
