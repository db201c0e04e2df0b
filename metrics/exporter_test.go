package metrics

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/cloudflare/ipvs"
	"github.com/directorlb/director/checks"
	"github.com/directorlb/director/config"
	"github.com/directorlb/director/director"
	"github.com/directorlb/director/failover"
	"github.com/directorlb/director/liveness"
	"github.com/directorlb/director/metrics/promtext"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
)

// fakeKernel holds services and their destinations.
type fakeKernel struct {
	svcs  []ipvs.ServiceExtended
	dests map[director.SvcKey][]ipvs.DestinationExtended
	err   error
}

func (k *fakeKernel) Services() ([]ipvs.ServiceExtended, error) { return k.svcs, k.err }

func (k *fakeKernel) Destinations(s ipvs.Service) ([]ipvs.DestinationExtended, error) {
	return k.dests[director.KeyOf(s)], nil
}

type healthKey struct {
	service string
	rs      netip.AddrPort
}

type fakeHealth map[healthKey]bool

func (h fakeHealth) Transition(service string, rs netip.AddrPort) (bool, time.Time, bool) {
	up, ok := h[healthKey{service, rs}]
	return up, time.Unix(1700000000, 500e6), ok
}

func hk(service, rs string) healthKey { return healthKey{service, netip.MustParseAddrPort(rs)} }

type fakeReconciles struct{ c director.Counters }

func (f *fakeReconciles) Counters() *director.Counters { return &f.c }
func (f *fakeReconciles) LastSuccess() time.Time       { return time.Unix(1700000100, 0) }

// farm is a config of one NAT service with two real servers, and a
// kernel holding it with a sorry server added besides.
func farm(t *testing.T) (*config.Config, *fakeKernel) {
	t.Helper()
	rs := func(a string, w int) config.RealServer {
		return config.RealServer{Address: netip.MustParseAddr(a), Port: 80, Weight: w, Forward: config.NAT}
	}
	cfg := &config.Config{Services: []config.Service{{
		Name: "web", VIP: netip.MustParseAddr("192.0.2.10"), Port: 80, Protocol: config.TCP, Scheduler: "wlc",
		Forward: config.NAT, RealServers: []config.RealServer{rs("10.0.0.1", 3), rs("10.0.0.2", 1)},
	}, {
		Name: "gone", VIP: netip.MustParseAddr("192.0.2.11"), Port: 53, Protocol: config.UDP, Scheduler: "rr",
		Forward: config.NAT, RealServers: []config.RealServer{rs("10.0.0.3", 1)},
	}}}
	svc := director.ServiceOf(&cfg.Services[0])
	dest := func(a string, w uint32, conns, active uint64) ipvs.DestinationExtended {
		return ipvs.DestinationExtended{
			Destination:       ipvs.Destination{Address: netip.MustParseAddr(a), Port: 80, Weight: w, Family: ipvs.INET},
			ActiveConnections: uint32(active), InactiveConnections: 2,
			Stats64: ipvs.Stats{Connections: conns, IncomingPackets: conns * 10, OutgoingPackets: conns * 9,
				IncomingBytes: conns * 1000, OutgoingBytes: conns * 9000, ConnectionRate: 7},
		}
	}
	k := &fakeKernel{
		svcs: []ipvs.ServiceExtended{{Service: svc, Stats64: ipvs.Stats{Connections: 150, IncomingBytes: 150000, ConnectionRate: 12}}},
		dests: map[director.SvcKey][]ipvs.DestinationExtended{director.KeyOf(svc): {
			dest("10.0.0.1", 3, 100, 4), dest("10.0.0.2", 0, 50, 1), dest("10.0.0.250", 0, 0, 0),
		}},
	}
	return cfg, k
}

func scrape(t *testing.T, e *Exporter, gz bool) (promtext.Page, string) {
	t.Helper()
	srv := httptest.NewServer(e.Handler())
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/metrics", nil)
	if gz {
		req.Header.Set("Accept-Encoding", "gzip")
	}
	resp, err := (&http.Transport{DisableCompression: true}).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body io.Reader = resp.Body
	if gz {
		if resp.Header.Get("Content-Encoding") != "gzip" {
			t.Fatal("asked for gzip, got none")
		}
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		body = zr
	}
	text, err := io.ReadAll(body)
	if err != nil {
		t.Fatal(err)
	}
	mfs, err := promtext.Parse(bytes.NewReader(text))
	if err != nil {
		t.Fatalf("the page does not parse: %v\n%s", err, text)
	}
	return mfs, string(text)
}

// value returns the sample of family name whose labels include want.
func value(t *testing.T, mfs promtext.Page, name string, want map[string]string) (float64, bool) {
	t.Helper()
	var pairs []string
	for k, v := range want {
		pairs = append(pairs, k, v)
	}
	return mfs.Value(name, pairs...)
}

func TestScrapeJoinsKernelConfigAndHealth(t *testing.T) {
	cfg, k := farm(t)
	rec := &fakeReconciles{}
	rec.c.Applied[director.UpdateDest].Add(3)
	rec.c.Drift.Add(2)
	loops := liveness.New()
	loops.Register("reconcile", time.Hour)
	e := New(Sources{
		Config: func() *config.Config { return cfg }, Kernel: k,
		Health:     fakeHealth{hk("web", "10.0.0.1:80"): true, hk("web", "10.0.0.2:80"): false, hk("gone", "10.0.0.3:80"): true},
		Reconciles: rec, Loops: loops, Ready: func() bool { return true },
	})
	e.SetPair(func(context.Context) (*failover.Status, error) {
		return &failover.Status{Role: "standby", Transitions: map[string]uint64{"standby": 1, "active": 2},
			Links:  []failover.LinkStatus{{Name: "udp eth1 10.9.0.2", Up: true, LastHeardMS: 80, Received: 40, Sent: 41}},
			Forged: 5, Peer: &failover.PeerStatus{Role: "active", Alive: true, ConfigMatch: false},
			Sync: []failover.SyncStatus{{State: "backup"}},
			VIPs: []failover.VIPStatus{{Address: "192.0.2.10/24", Interface: "eth0", Held: false}}}, nil
	})
	e.CheckResult("http", checks.Success, 20*time.Millisecond)
	e.CheckResult("http", checks.Timeout, time.Second)
	e.Reconciled(3 * time.Millisecond)
	e.Reloaded(false)

	mfs, text := scrape(t, e, false)
	web := map[string]string{"service": "web"}
	rs1 := map[string]string{"service": "web", "address": "10.0.0.1:80"}
	rs2 := map[string]string{"service": "web", "address": "10.0.0.2:80"}
	sorry := map[string]string{"service": "web", "address": "10.0.0.250:80"}
	gone := map[string]string{"service": "gone"}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"director_service_connections_total", map[string]string{"service": "web", "local_address": "192.0.2.10", "local_port": "80", "proto": "TCP", "local_mark": ""}, 150},
		{"director_service_incoming_bytes_total", web, 150000},
		{"director_service_connections_per_second", web, 12},
		{"director_service_connections_active", web, 5},
		{"director_service_connections_inactive", web, 6},
		{"director_service_in_kernel", web, 1},
		{"director_service_in_kernel", gone, 0},
		{"director_service_realservers", web, 2},
		{"director_service_realservers_healthy", web, 1},
		{"director_service_realservers_healthy", gone, 1},
		{"director_realserver_up", rs1, 1},
		{"director_realserver_up", rs2, 0},
		{"director_realserver_weight", rs1, 3},
		{"director_realserver_weight", rs2, 0},
		{"director_realserver_configured_weight", rs2, 1},
		{"director_realserver_connections_total", rs1, 100},
		{"director_realserver_outgoing_bytes_total", rs2, 450000},
		{"director_realserver_connections_active", rs1, 4},
		{"director_realserver_last_transition_timestamp_seconds", rs1, 1700000000.5},
		{"director_realserver_weight", sorry, 0},
		{"director_check_results_total", map[string]string{"type": "http", "outcome": "timeout"}, 1},
		{"director_check_duration_seconds", map[string]string{"type": "http"}, 2},
		{"director_reconcile_duration_seconds", nil, 1},
		{"director_reconcile_changes_total", map[string]string{"kind": "update-destination"}, 3},
		{"director_reconcile_drift_repaired_total", nil, 2},
		{"director_reconcile_last_success_timestamp_seconds", nil, 1700000100},
		{"director_config_reloads_total", map[string]string{"result": "failure"}, 1},
		{"director_config_last_reload_successful", nil, 0},
		{"director_failover_role", map[string]string{"role": "standby"}, 1},
		{"director_failover_role", map[string]string{"role": "active"}, 0},
		{"director_failover_peer_role", map[string]string{"role": "active"}, 1},
		{"director_failover_transitions_total", map[string]string{"to": "active"}, 2},
		{"director_failover_heartbeats_sent_total", map[string]string{"link": "udp eth1 10.9.0.2"}, 41},
		{"director_failover_heartbeat_age_seconds", map[string]string{"link": "udp eth1 10.9.0.2"}, 0.08},
		{"director_failover_heartbeats_rejected_total", map[string]string{"reason": "forged"}, 5},
		{"director_failover_config_mismatch", nil, 1},
		{"director_failover_sync_daemon", map[string]string{"state": "backup"}, 1},
		{"director_failover_sync_daemon", map[string]string{"state": "master"}, 0},
		{"director_failover_vip_held", map[string]string{"address": "192.0.2.10/24", "interface": "eth0"}, 0},
		{"director_loop_stalled", map[string]string{"loop": "reconcile"}, 0},
		{"director_kernel_read_success", nil, 1},
		{"director_build_info", nil, 1},
	} {
		got, ok := value(t, mfs, c.name, c.labels)
		if !ok || got != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	// A sorry server is no configured real server: no health, no
	// configured weight. A service the kernel lacks has no traffic.
	for _, c := range []struct {
		name   string
		labels map[string]string
	}{
		{"director_realserver_up", sorry},
		{"director_realserver_configured_weight", sorry},
		{"director_service_connections_total", gone},
	} {
		if _, ok := value(t, mfs, c.name, c.labels); ok {
			t.Errorf("%s%v is exported, want absent", c.name, c.labels)
		}
	}
	if strings.Count(text, "# TYPE director_realserver_up ") != 1 {
		t.Error("a family's samples are not grouped under one TYPE line")
	}
}

func TestMetricsLint(t *testing.T) {
	cfg, k := farm(t)
	e := New(Sources{Config: func() *config.Config { return cfg }, Kernel: k, Health: fakeHealth{},
		Reconciles: &fakeReconciles{}, Loops: liveness.New()})
	e.SetPair(func(context.Context) (*failover.Status, error) {
		return &failover.Status{Role: "active", Links: []failover.LinkStatus{{Name: "l", LastHeardMS: 1}}}, nil
	})
	e.CheckResult("tcp", checks.Success, time.Millisecond)
	mfs, _ := scrape(t, e, true)
	var list []*dto.MetricFamily
	for name, mf := range mfs {
		if strings.HasPrefix(name, "director_") {
			list = append(list, mf)
		}
	}
	if len(list) < 40 {
		t.Fatalf("only %d director_ families to lint", len(list))
	}
	problems, err := promlint.NewWithMetricFamilies(list).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

func TestUnreadableKernelIsReportedNotFatal(t *testing.T) {
	cfg, k := farm(t)
	k.err = errors.New("netlink: permission denied")
	e := New(Sources{Config: func() *config.Config { return cfg }, Kernel: k, Health: fakeHealth{hk("web", "10.0.0.1:80"): true}})
	mfs, _ := scrape(t, e, false)
	if v, ok := value(t, mfs, "director_kernel_read_success", nil); !ok || v != 0 {
		t.Errorf("director_kernel_read_success = %v (present %v), want 0", v, ok)
	}
	if v, ok := value(t, mfs, "director_realserver_up", map[string]string{"address": "10.0.0.1:80"}); !ok || v != 1 {
		t.Errorf("health must still show without the kernel: up = %v (present %v)", v, ok)
	}
}

func TestHealthzAndReadyz(t *testing.T) {
	loops := liveness.New()
	loops.Register("checks", time.Hour)
	var ready bool
	e := New(Sources{Config: func() *config.Config { return nil }, Loops: loops, Ready: func() bool { return ready }})
	srv := httptest.NewServer(e.Handler())
	defer srv.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("readyz before the first reconcile: %d, want 503", code)
	}
	ready = true
	if code, _ := get("/readyz"); code != http.StatusOK {
		t.Errorf("readyz after: %d, want 200", code)
	}
	if code, body := get("/healthz"); code != http.StatusOK || !strings.Contains(body, "ok checks") {
		t.Errorf("healthz with every loop turning: %d %q", code, body)
	}
	// A bound already exceeded: the heartbeat loop counts as stalled.
	loops.Register("heartbeat", -time.Second)
	if code, body := get("/healthz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "STALLED heartbeat") {
		t.Errorf("healthz with a stalled loop: %d %q, want 503 naming it", code, body)
	}
}

// Concurrent scrapes are all answered: see serve_test.go.
func TestWriteTo(t *testing.T) {
	e := New(Sources{Config: func() *config.Config { return nil }})
	var b bytes.Buffer
	if err := e.WriteTo(bufio.NewWriter(&b)); err != nil || !strings.Contains(b.String(), "director_build_info") {
		t.Errorf("WriteTo: %v", err)
	}
}
