// Package metrics serves directord's Prometheus metrics, /healthz and
// /readyz. Everything is read at scrape time from the parts that own it:
// the kernel's table, the check engine, the director's counters, the
// failover node and the loops' liveness.
package metrics

import (
	"bufio"
	"compress/gzip"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/directorlb/director/checks"
	"github.com/directorlb/director/config"
	"github.com/directorlb/director/control"
	"github.com/directorlb/director/failover"
	"github.com/directorlb/director/liveness"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/common/expfmt"
)

// Sources are what a scrape reads.
type Sources struct {
	Config func() *config.Config // the config in force
	Kernel Kernel
	Health Health
	// Reconciles is the director; nil leaves the reconcile counters out.
	Reconciles Reconciles
	Loops      *liveness.Loops
	// Ready reports whether the config is loaded and the first reconcile
	// done.
	Ready func() bool
	Log   *slog.Logger
	// Page serves / (the status page, package statuspage); nil: none.
	Page http.Handler
}

// Exporter serves the metrics. The event-driven metrics (check results,
// reconcile durations, reloads) are recorded through its methods.
type Exporter struct {
	src           Sources
	reg           *prometheus.Registry
	checkDuration *prometheus.HistogramVec
	checkResults  *prometheus.CounterVec
	reconcileDur  prometheus.Histogram
	reloads       *prometheus.CounterVec
	reloadOK      prometheus.Gauge
	reloadAt      prometheus.Gauge
	// mu serialises gathers (see scrape.go). It guards view, the kernel
	// families' memory, and the compressor, kept from one scrape to the
	// next, and the last page's size.
	mu       sync.Mutex
	view     kernelView
	zw       *gzip.Writer
	bw       *bufio.Writer
	lastPage int
	// fmu guards flight, the gather in progress that scrapes join, and
	// spare, a released page's buffer for the next gather.
	fmu    sync.Mutex
	flight *page
	spare  []byte
	// pair reports the failover role: a single director's until SetPair.
	pair *pairCollector
	// bgp reports a bgp group director's sessions and announcements
	// once SetBGP is called; nothing without bgp.
	bgp *bgpCollector
}

// New builds an Exporter over src.
func New(src Sources) *Exporter {
	if src.Log == nil {
		src.Log = slog.Default()
	}
	e := &Exporter{
		src:  src,
		reg:  prometheus.NewRegistry(),
		pair: newPairCollector(),
		bgp:  newBGPCollector(),
		checkDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "director_check_duration_seconds",
			Help:    "How long each health-check probe took, by check type.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"type"}),
		checkResults: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "director_check_results_total",
			Help: "Health-check probes by check type and outcome (success, failure, timeout, inconclusive).",
		}, []string{"type", "outcome"}),
		reconcileDur: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "director_reconcile_duration_seconds",
			Help:    "How long one reconcile took: read the kernel, diff, apply.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "director_config_reloads_total",
			Help: "Config reloads, by result (success, failure).",
		}, []string{"result"}),
		reloadOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "director_config_last_reload_successful",
			Help: "0 after a refused reload, until one succeeds.",
		}),
		reloadAt: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "director_config_last_reload_success_timestamp_seconds",
			Help: "When the config in force was loaded.",
		}),
	}
	for _, r := range []string{"success", "failure"} {
		e.reloads.WithLabelValues(r)
	}
	e.reloadOK.Set(1)
	e.reloadAt.SetToCurrentTime()
	e.reg.MustRegister(e.checkDuration, e.checkResults, e.reconcileDur, e.reloads, e.reloadOK, e.reloadAt,
		buildInfo(), e.pair, e.bgp,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	if src.Reconciles != nil {
		e.reg.MustRegister(newReconcileCollector(src.Reconciles))
	}
	if src.Loops != nil {
		e.reg.MustRegister(&loopCollector{loops: src.Loops, stalled: prometheus.NewDesc("director_loop_stalled",
			"1 while the loop has not reported within its bound (see /healthz).", []string{"loop"}, nil)})
	}
	return e
}

// SetBGP makes the director one of a bgp group: status is read at each
// scrape for the director_bgp_* and director_group_* families.
func (e *Exporter) SetBGP(status func(ctx context.Context) (*control.BGPStatus, error)) {
	e.bgp.set(status)
}

// SetPair makes the director one of a pair: the failover node's metrics
// replace the single director's role, and status is called at each
// scrape. Safe while scrapes run.
func (e *Exporter) SetPair(status func(ctx context.Context) (*failover.Status, error)) {
	e.pair.setPair(status)
}

// CheckResult records one probe run (checks.Engine.OnResult).
func (e *Exporter) CheckResult(typ config.CheckType, outcome checks.Outcome, took time.Duration) {
	e.checkDuration.WithLabelValues(string(typ)).Observe(took.Seconds())
	e.checkResults.WithLabelValues(string(typ), string(outcome)).Inc()
}

// Reconciled records one reconcile's duration.
func (e *Exporter) Reconciled(took time.Duration) { e.reconcileDur.Observe(took.Seconds()) }

// Reloaded records a reload.
func (e *Exporter) Reloaded(ok bool) {
	if ok {
		e.reloads.WithLabelValues("success").Inc()
		e.reloadOK.Set(1)
		e.reloadAt.SetToCurrentTime()
		return
	}
	e.reloads.WithLabelValues("failure").Inc()
	e.reloadOK.Set(0)
}

// Handler serves /metrics, /healthz, /readyz and the status page at /.
func (e *Exporter) Handler() http.Handler {
	mux := http.NewServeMux()
	if e.src.Page != nil {
		mux.Handle("GET /{$}", e.src.Page)
	}
	mux.HandleFunc("GET /metrics", e.serveMetrics)
	mux.HandleFunc("GET /healthz", e.serveHealthz)
	mux.HandleFunc("GET /readyz", e.serveReadyz)
	return mux
}

// WriteTo writes every metric in the text exposition format.
func (e *Exporter) WriteTo(w *bufio.Writer) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.write(w)
}

func (e *Exporter) write(w *bufio.Writer) error {
	mfs, gerr := e.reg.Gather()
	enc := expfmt.NewEncoder(w, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return err
		}
	}
	cfg := e.src.Config()
	if cfg != nil && e.src.Kernel != nil {
		readKernel(&e.view, cfg, e.src.Kernel, e.src.Health)
		if err := e.view.write(w); err != nil {
			return err
		}
	}
	if gerr != nil {
		e.src.Log.Warn("metrics: some collectors failed", "err", gerr)
	}
	return w.Flush()
}

// Healthy reports whether every loop is turning, and a line per loop.
func (e *Exporter) Healthy() (bool, string) {
	if e.src.Loops == nil {
		return true, "ok\n"
	}
	states, ok := e.src.Loops.Check()
	var b strings.Builder
	for _, s := range states {
		verdict := "ok"
		if s.Stalled {
			verdict = "STALLED"
		}
		fmt.Fprintf(&b, "%s %s: last report %s ago (bound %s)\n", verdict, s.Name, s.Age.Round(time.Millisecond), s.Bound)
	}
	return ok, b.String()
}

func (e *Exporter) serveHealthz(w http.ResponseWriter, _ *http.Request) {
	ok, text := e.Healthy()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if !ok {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	fmt.Fprint(w, text)
}

func (e *Exporter) serveReadyz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if e.src.Ready == nil || !e.src.Ready() {
		http.Error(w, "not ready: the first reconcile is not done", http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ready")
}
