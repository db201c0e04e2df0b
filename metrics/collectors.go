package metrics

import (
	"context"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/directorlb/director/director"
	"github.com/directorlb/director/failover"
	"github.com/directorlb/director/heartbeat"
	"github.com/directorlb/director/liveness"
	"github.com/prometheus/client_golang/prometheus"
)

// statusFunc reads the failover node's status: a nil Status while the
// node has not started.
type statusFunc func(ctx context.Context) (*failover.Status, error)

// pairCollector reads the failover node at scrape time. Without a node
// (no failover block) the director is single: it always holds its VIPs,
// so it reports the role active, and director_failover_configured 0 tells
// it from a pair's active director.
type pairCollector struct {
	// status is set by SetPair for one of a pair, nil for a single
	// director; atomic because a scrape may already run then.
	status atomic.Pointer[statusFunc]

	configured, role, peerRole, transitions, sent, received, sendErrors, linkUp, age,
	rejected, peerAlive, mismatch, pingReached, pingTotal, syncd, vip *prometheus.Desc
}

func newPairCollector() *pairCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("director_failover_"+name, help, labels, nil)
	}
	return &pairCollector{
		configured:  d("configured", "1 if this director has a failover block (one of a pair), 0 for a single director."),
		role:        d("role", "1 for this director's current role (active, standby, init, fault), 0 for the others; a single director is always active.", "role"),
		peerRole:    d("peer_role", "1 for the role the peer last announced, 0 for the others.", "role"),
		transitions: d("transitions_total", "Role changes, by the role entered.", "to"),
		sent:        d("heartbeats_sent_total", "Heartbeats sent, per link.", "link"),
		received:    d("heartbeats_received_total", "Valid heartbeats received from the peer, per link.", "link"),
		sendErrors:  d("heartbeat_send_errors_total", "Heartbeats that could not be sent, per link.", "link"),
		linkUp:      d("link_up", "1 while the link carries the peer's heartbeats.", "link"),
		age:         d("heartbeat_age_seconds", "Age of the last valid heartbeat on the link.", "link"),
		rejected:    d("heartbeats_rejected_total", "Heartbeats refused: forged (bad MAC), malformed, replayed or stale, or carrying this director's own name.", "reason"),
		peerAlive:   d("peer_alive", "1 while the peer is heard within deadtime."),
		mismatch:    d("config_mismatch", "1 if the peer's services config differs from this director's."),
		pingReached: d("ping_nodes_reached", "Ping nodes that answer."),
		pingTotal:   d("ping_nodes", "Ping nodes configured."),
		syncd:       d("sync_daemon", "1 for each kernel IPVS sync daemon running, by state (master, backup).", "state"),
		vip:         d("vip_held", "1 if this director holds the VIP on its interface now.", "address", "interface"),
	}
}

// setPair makes the collector read the failover node through status.
func (c *pairCollector) setPair(status statusFunc) { c.status.Store(&status) }

// Describe lists every family, so that registering reads no status (the
// node may not exist yet) and the families may change from single to pair.
func (c *pairCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.configured, c.role, c.peerRole, c.transitions, c.sent, c.received,
		c.sendErrors, c.linkUp, c.age, c.rejected, c.peerAlive, c.mismatch, c.pingReached, c.pingTotal, c.syncd, c.vip} {
		ch <- d
	}
}

func (c *pairCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	status := c.status.Load()
	gauge(c.configured, boolValue(status != nil))
	if status == nil {
		for _, r := range heartbeat.Roles {
			gauge(c.role, boolValue(r == heartbeat.RoleActive), r.String())
		}
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := (*status)(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.role, err)
		return
	}
	if st == nil {
		return // the node has not started yet
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	for _, r := range heartbeat.Roles {
		gauge(c.role, boolValue(st.Role == r.String()), r.String())
		counter(c.transitions, st.Transitions[r.String()], r.String())
	}
	for _, l := range st.Links {
		counter(c.sent, l.Sent, l.Name)
		counter(c.received, l.Received, l.Name)
		counter(c.sendErrors, l.SendErrors, l.Name)
		gauge(c.linkUp, boolValue(l.Up), l.Name)
		if l.LastHeardMS >= 0 {
			gauge(c.age, float64(l.LastHeardMS)/1e3, l.Name)
		}
	}
	counter(c.rejected, st.Forged, "forged")
	counter(c.rejected, st.Malformed, "malformed")
	counter(c.rejected, st.Replayed, "replayed")
	counter(c.rejected, st.SameName, "same_name")
	alive, mismatch := false, false
	if st.Peer != nil {
		alive, mismatch = st.Peer.Alive, !st.Peer.ConfigMatch
		for _, r := range heartbeat.Roles {
			gauge(c.peerRole, boolValue(st.Peer.Role == r.String()), r.String())
		}
	}
	gauge(c.peerAlive, boolValue(alive))
	gauge(c.mismatch, boolValue(mismatch))
	gauge(c.pingReached, float64(st.Ping.Reached))
	gauge(c.pingTotal, float64(st.Ping.Total))
	for _, v := range st.VIPs {
		gauge(c.vip, boolValue(v.Held), v.Address, v.Interface)
	}
	running := map[string]bool{}
	for _, s := range st.Sync {
		running[s.State] = true
	}
	for _, state := range []string{"master", "backup"} {
		gauge(c.syncd, boolValue(running[state]), state)
	}
}

// Reconciles is what the director reports of its reconciles.
type Reconciles interface {
	Counters() *director.Counters
	LastSuccess() time.Time
}

type reconcileCollector struct {
	src                          Reconciles
	changes, drift, errs, lastOK *prometheus.Desc
}

func newReconcileCollector(src Reconciles) *reconcileCollector {
	return &reconcileCollector{
		src:     src,
		changes: prometheus.NewDesc("director_reconcile_changes_total", "Kernel changes applied, by kind.", []string{"kind"}, nil),
		drift:   prometheus.NewDesc("director_reconcile_drift_repaired_total", "Changes made to the kernel's table behind directord's back, and repaired.", nil, nil),
		errs:    prometheus.NewDesc("director_reconcile_errors_total", "Kernel changes refused and kernel reads that failed.", nil, nil),
		lastOK:  prometheus.NewDesc("director_reconcile_last_success_timestamp_seconds", "When a reconcile last left the kernel as configured.", nil, nil),
	}
}

func (c *reconcileCollector) Describe(ch chan<- *prometheus.Desc) {
	prometheus.DescribeByCollect(c, ch)
}

func (c *reconcileCollector) Collect(ch chan<- prometheus.Metric) {
	n := c.src.Counters()
	for k := director.CreateService; k <= director.RemoveService; k++ {
		ch <- prometheus.MustNewConstMetric(c.changes, prometheus.CounterValue, float64(n.Applied[k].Load()), k.String())
	}
	ch <- prometheus.MustNewConstMetric(c.drift, prometheus.CounterValue, float64(n.Drift.Load()))
	ch <- prometheus.MustNewConstMetric(c.errs, prometheus.CounterValue, float64(n.Errors.Load()))
	if t := c.src.LastSuccess(); !t.IsZero() {
		ch <- prometheus.MustNewConstMetric(c.lastOK, prometheus.GaugeValue, float64(t.UnixMilli())/1e3)
	}
}

type loopCollector struct {
	loops   *liveness.Loops
	stalled *prometheus.Desc
}

func (c *loopCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.stalled }

func (c *loopCollector) Collect(ch chan<- prometheus.Metric) {
	states, _ := c.loops.Check()
	for _, s := range states {
		ch <- prometheus.MustNewConstMetric(c.stalled, prometheus.GaugeValue, boolValue(s.Stalled), s.Name)
	}
}

// buildInfo is the version of the running binary, from the module and
// VCS information Go embeds.
func buildInfo() prometheus.Collector {
	version, revision, goVersion := "(devel)", "unknown", "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		goVersion = bi.GoVersion
		if bi.Main.Version != "" {
			version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				revision = s.Value
			}
		}
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "director_build_info",
		Help:        "Always 1; the labels say which build of directord runs.",
		ConstLabels: prometheus.Labels{"version": version, "revision": revision, "goversion": goVersion},
	})
	g.Set(1)
	return g
}
