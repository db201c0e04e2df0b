//go:build linux

package checks

// Engine benchmarks: thousands of real servers checked every second
// against local listeners, measuring what the engine and its probers cost.
//
//	go test ./checks -run '^$' -bench Engine -benchtime 1x
//
// Each benchmark runs its scenario once (about 15 s) whatever b.N is and
// prints its figures with b.ReportMetric and b.Logf; nothing here passes
// or fails on a figure. The targets are distinct loopback addresses
// 127.0.X.Y on one port, served by a child process (benchserver_test.go),
// so that each destination has its own ephemeral-port space (TIME_WAIT
// does not run out of ports) and the benchmark's CPU usage is the engine's
// alone. The figures:
//
//	checks/s            probes completed per second of the window
//	checks/cpu-s        probes per CPU-second used by this process (user+sys)
//	cpu-cores           CPU-seconds used per second of the window
//	server-cpu-cores    the same for the child serving the targets
//	lag-p50/p99/max-ms  how late probes started: start - (previous start + interval),
//	                    the first probe of each key excluded (random start delay)
//	rss-B/check         growth of VmRSS from before Set to the window, per check configured
//	heap+stack-B/check  growth of Go HeapInuse+StackInuse, per check configured
//	allocs/check        heap allocations per probe in the window (alloc-B/check: bytes)
//	failed              probes in the window that failed (should be 0; see the log)
//	stolen-cores        CPU time the hypervisor took from this machine, per second of the
//	                    window (the lateness of a window with steal is partly not the engine's)

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/directorlb/director/config"
)

const (
	benchWarmup   = 3 * time.Second
	benchWindow   = 10 * time.Second
	benchInterval = time.Second
	benchTimeout  = 500 * time.Millisecond
	benchMaxRecs  = 32 // probes recorded per key: (warm-up + window) / interval, with room
)

// BenchmarkEngineTCP20kOneCore asks one core for 20,000 TCP checks a
// second: the process is pinned to CPU 0 with GOMAXPROCS 1 (the server
// to CPU 1), so checks/s and the lag say whether a core sustains that
// rate (it runs first, on a
// machine no earlier scenario has loaded), beside the CPU-seconds per check the 10k benchmark reports.
func BenchmarkEngineTCP20kOneCore(b *testing.B) { benchEngine(b, "tcp", 20_000, true) }

func BenchmarkEngineTCP10k(b *testing.B) { benchEngine(b, "tcp", 10_000, false) }

func BenchmarkEngineHTTP5k(b *testing.B) { benchEngine(b, "http", 5_000, false) }

// benchLast keeps each benchmark's last figures: the testing package may
// call a benchmark again with a larger b.N (-benchtime Nx), and that
// reports the figures of the run just made instead of running it again.
var benchLast sync.Map // b.Name() -> *benchFigures

type benchFigures struct {
	metrics []benchMetric
}

type benchMetric struct {
	unit  string
	value float64
}

func benchEngine(b *testing.B, kind string, n int, oneCore bool) {
	var f *benchFigures
	if v, ok := benchLast.Load(b.Name()); ok && b.N > 1 {
		f = v.(*benchFigures)
	} else {
		f = runEngineScenario(b, kind, n, oneCore)
		benchLast.Store(b.Name(), f)
	}
	for _, m := range f.metrics {
		b.ReportMetric(m.value, m.unit)
	}
	b.ReportMetric(0, "ns/op") // the scenario's duration says nothing
}

// benchRec is one probe as the prober wrapper saw it; times are
// nanoseconds since benchRecorder.base (monotonic).
type benchRec struct {
	start, end int64
	ok         bool
}

// benchSlot holds one key's probes. Only that key's goroutine writes it
// (the engine never runs a Prober concurrently with itself), and it is
// read after Engine.Wait, so it needs no lock.
type benchSlot struct {
	n    int
	recs [benchMaxRecs]benchRec
}

// benchFailureKind counts the window's failures with one message, digits
// masked; example is the first such message.
type benchFailureKind struct {
	n       int
	example string
}

// benchRecorder records every probe's start and end per key, in slots
// preallocated (and touched) before the baseline memory reading.
type benchRecorder struct {
	base   time.Time
	slots  []benchSlot
	mem    []byte // the mapping behind slots
	next   atomic.Int64
	window atomic.Bool // failures are counted while set

	mu    sync.Mutex
	fails map[string]*benchFailureKind
}

// newBenchRecorder maps the slots outside the Go heap: they are the
// instrument, and on the heap their megabytes would count as live data,
// raising the garbage collector's heap goal (twice the live heap) and so
// the engine's RSS by as much again. The caller unmaps them with free.
func newBenchRecorder(b *testing.B, n int) *benchRecorder {
	size := n * int(unsafe.Sizeof(benchSlot{}))
	mem, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS)
	if err != nil {
		b.Fatalf("mmap %d bytes for the recorder: %v", size, err)
	}
	// benchSlot holds no pointers, so memory the GC does not see is fine.
	r := &benchRecorder{base: time.Now(), slots: unsafe.Slice((*benchSlot)(unsafe.Pointer(&mem[0])), n),
		mem: mem, fails: map[string]*benchFailureKind{}}
	for i := range r.slots {
		for j := range r.slots[i].recs {
			r.slots[i].recs[j].start = -1 // fault the pages in now
		}
	}
	return r
}

func (r *benchRecorder) free() error { return syscall.Munmap(r.mem) }

// wrap is the engine's newProber: the real prober, timed.
func (r *benchRecorder) wrap(ps ProbeSpec) Prober {
	i := r.next.Add(1) - 1
	return &benchProber{inner: NewProber(ps), slot: &r.slots[i], r: r}
}

func (r *benchRecorder) now() int64 { return int64(time.Since(r.base)) }

func (r *benchRecorder) failed(target netip.AddrPort, err error) {
	if !r.window.Load() {
		return
	}
	msg := "failed without an error"
	if err != nil {
		msg = strings.ReplaceAll(err.Error(), target.String(), "TARGET")
	}
	kind := strings.Map(func(c rune) rune {
		if c >= '0' && c <= '9' {
			return 'N'
		}
		return c
	}, msg)
	r.mu.Lock()
	k := r.fails[kind]
	if k == nil {
		k = &benchFailureKind{example: msg}
		r.fails[kind] = k
	}
	k.n++
	r.mu.Unlock()
}

type benchProber struct {
	inner Prober
	slot  *benchSlot
	r     *benchRecorder
}

func (p *benchProber) Probe(ctx context.Context, target netip.AddrPort) Result {
	return p.timed(target, func() Result { return p.inner.Probe(ctx, target) })
}

// ProbeBy keeps the engine's deadline path for probers that have one.
func (p *benchProber) ProbeBy(ctx context.Context, deadline time.Time, target netip.AddrPort) Result {
	if dp, ok := p.inner.(deadlineProber); ok {
		return p.timed(target, func() Result { return dp.ProbeBy(ctx, deadline, target) })
	}
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	return p.Probe(ctx, target)
}

func (p *benchProber) timed(target netip.AddrPort, probe func() Result) Result {
	start := p.r.now()
	res := probe()
	end := p.r.now()
	if s := p.slot; s.n < len(s.recs) {
		s.recs[s.n] = benchRec{start, end, res.OK}
		s.n++
	}
	if !res.OK {
		p.r.failed(target, res.Err)
	}
	return res
}

func runEngineScenario(b *testing.B, kind string, n int, oneCore bool) *benchFigures {
	b.StopTimer()
	if testing.Short() {
		b.Skip("engine benchmark: takes about 15 s")
	}
	srvCPU := -1
	if oneCore {
		if runtime.NumCPU() < 2 {
			b.Skip("one-core benchmark: needs a second CPU for the server")
		}
		var all, one unix.CPUSet
		if err := unix.SchedGetaffinity(0, &all); err != nil {
			b.Fatal(err)
		}
		one.Set(0)
		if err := pinThreads(one); err != nil {
			b.Fatal(err)
		}
		procs := runtime.GOMAXPROCS(1)
		defer func() {
			runtime.GOMAXPROCS(procs)
			if err := pinThreads(all); err != nil {
				b.Error(err)
			}
		}()
		srvCPU = 1
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		b.Fatal(err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("%s: %d checks every %v (timeout %v), RLIMIT_NOFILE %d, GOMAXPROCS %d, %d CPUs",
		kind, n, benchInterval, benchTimeout, lim.Cur, runtime.GOMAXPROCS(0), runtime.NumCPU())

	srv := startBenchServer(b, kind, srvCPU)
	specs := make([]Spec, n)
	for i := range specs {
		// 127.0.X.Y, Y in 1..250: up to 64,000 distinct destinations.
		target := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, byte(i / 250 >> 8), byte(i / 250), byte(i%250 + 1)}), srv.port)
		specs[i] = Spec{
			Service:    "svc" + strconv.Itoa(i/100),
			RealServer: target,
			Probe: ProbeSpec{Type: config.CheckType(kind), Target: target, Interval: benchInterval, Timeout: benchTimeout,
				Rise: 1, Fall: 1},
		}
	}
	rec := newBenchRecorder(b, n)
	defer func() {
		if err := rec.free(); err != nil {
			b.Error(err)
		}
	}()
	e := NewEngine(slog.New(slog.DiscardHandler))
	e.newProber = rec.wrap

	// Return what earlier benchmarks in this process left behind, so that
	// the growth measured is this scenario's.
	debug.FreeOSMemory()
	rss0 := benchRSS(b)
	heap0, stack0, alloc0 := benchHeapStack()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	setStart := time.Now()
	e.Set(specs)
	setTook := time.Since(setStart)
	e.Start(ctx)
	time.Sleep(benchWarmup)
	rssWarm := benchRSS(b)

	// The window.
	rec.window.Store(true)
	w0 := rec.now()
	cpu0 := benchCPU(b)
	srvCPU0, srvErr0 := srv.cpu()
	allocs0 := benchAllocs()
	sched0 := benchSchedLatencies()
	mach0, steal0, machErr0 := benchMachineCPU()
	time.Sleep(benchWindow)
	w1 := rec.now()
	rec.window.Store(false)
	cpu1 := benchCPU(b)
	srvCPU1, srvErr1 := srv.cpu()
	allocs1 := benchAllocs()
	sched1 := benchSchedLatencies()
	mach1, steal1, machErr1 := benchMachineCPU()
	rssEnd := benchRSS(b)
	heapEnd, stackEnd, _ := benchHeapStack()
	goroutines := runtime.NumGoroutine()
	runtime.GC() // outside the window: what is live, without the garbage
	_, _, live := benchHeapStack()

	cancel()
	e.Wait()
	// The specs stay live through the window: they stand for the
	// configuration directord holds for the same servers, whose share of
	// the heap paces its garbage collector like theirs does here.
	runtime.KeepAlive(specs)

	// Probes completed in the window, and how late each started.
	var done, okDone int
	lags := make([]int64, 0, n*int(benchWindow/benchInterval+2))
	for i := range rec.slots {
		s := &rec.slots[i]
		for j, r := range s.recs[:s.n] {
			if r.end >= w0 && r.end < w1 {
				done++
				if r.ok {
					okDone++
				}
			}
			if j > 0 && r.start >= w0 && r.start < w1 {
				lags = append(lags, r.start-(s.recs[j-1].start+int64(benchInterval)))
			}
		}
	}
	slices.Sort(lags)
	window := time.Duration(w1 - w0).Seconds()
	cpu := (cpu1 - cpu0).Seconds()
	rssGrowth := max(rssWarm, rssEnd) - rss0
	srvCores := -1.0
	if err := cmp.Or(srvErr0, srvErr1); err == nil {
		srvCores = (srvCPU1 - srvCPU0).Seconds() / window
	} else {
		b.Logf("server CPU: %v", err)
	}
	inUse0, inUseEnd := heap0+stack0, heapEnd+stackEnd

	f := &benchFigures{}
	add := func(unit string, v float64) { f.metrics = append(f.metrics, benchMetric{unit, v}) }
	add("checks/s", float64(done)/window)
	add("checks/cpu-s", float64(done)/cpu)
	add("cpu-cores", cpu/window)
	if srvCores >= 0 {
		add("server-cpu-cores", srvCores)
	}
	add("lag-p50-ms", benchMs(benchPct(lags, 0.50)))
	add("lag-p99-ms", benchMs(benchPct(lags, 0.99)))
	add("lag-max-ms", benchMs(benchPct(lags, 1)))
	add("rss-B/check", float64(rssGrowth)/float64(n))
	add("heap+stack-B/check", float64(int64(inUseEnd)-int64(inUse0))/float64(n))
	add("allocs/check", float64(allocs1.objects-allocs0.objects)/float64(done))
	add("alloc-B/check", float64(allocs1.bytes-allocs0.bytes)/float64(done))
	add("failed", float64(done-okDone))
	if err := cmp.Or(machErr0, machErr1); err == nil {
		add("stolen-cores", (steal1-steal0).Seconds()/window)
	}

	b.Logf("window %.2fs: %d probes done (%d ok), %d lags measured; CPU %.2fs (%.0f%% of one core); Set took %v",
		window, done, okDone, len(lags), cpu, 100*cpu/window, setTook.Round(time.Millisecond))
	b.Logf("lag ms: p50 %.2f p90 %.2f p99 %.2f p99.9 %.2f max %.2f; late > 50 ms: %d of %d",
		benchMs(benchPct(lags, 0.5)), benchMs(benchPct(lags, 0.9)), benchMs(benchPct(lags, 0.99)),
		benchMs(benchPct(lags, 0.999)), benchMs(benchPct(lags, 1)), benchCountOver(lags, int64(50*time.Millisecond)), len(lags))
	if err := cmp.Or(machErr0, machErr1); err == nil {
		all := (mach1 - mach0).Seconds() / window
		b.Logf("machine: %.2f of %d cores busy in the window: this process %.2f, server %.2f, anything else %.2f; "+
			"stolen by the hypervisor %.2f", all, runtime.NumCPU(), cpu/window, srvCores, all-cpu/window-srvCores,
			(steal1-steal0).Seconds()/window)
	} else {
		b.Logf("machine CPU: %v", err)
	}
	b.Logf("memory: VmRSS %.1f MiB before Set, %.1f MiB after warm-up, %.1f MiB at window end (%.0f B/check); "+
		"Go heap in use %.1f -> %.1f MiB (%.0f B/check), stacks %.1f -> %.1f MiB (%.0f B/check); %d goroutines",
		benchMiB(rss0), benchMiB(rssWarm), benchMiB(rssEnd), float64(rssGrowth)/float64(n),
		benchMiB(heap0), benchMiB(heapEnd), float64(int64(heapEnd)-int64(heap0))/float64(n),
		benchMiB(stack0), benchMiB(stackEnd), float64(int64(stackEnd)-int64(stack0))/float64(n), goroutines)
	b.Logf("live heap after GC %.1f MiB (%.0f B/check above the baseline); GC used %.0f%% of the CPU in the window",
		benchMiB(live), float64(int64(live)-int64(alloc0))/float64(n), 100*(allocs1.gcCPU-allocs0.gcCPU)/cpu)
	if p50, p99, top, ok := benchSchedDelta(sched0, sched1); ok {
		b.Logf("Go scheduler latency (runnable to running) in the window: p50 %.2f ms, p99 %.2f ms, max bucket %.1f ms",
			p50*1e3, p99*1e3, top*1e3)
	}
	benchLogFailures(b, rec)
	return f
}

// benchLogFailures logs the window's failures by kind, one example each.
func benchLogFailures(b *testing.B, rec *benchRecorder) {
	for _, k := range rec.fails {
		b.Logf("failures: %d x %s", k.n, k.example)
	}
}

func benchPct(sorted []int64, q float64) int64 {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[int(q*float64(len(sorted)-1))]
}

func benchCountOver(sorted []int64, limit int64) int {
	i, _ := slices.BinarySearch(sorted, limit+1)
	return len(sorted) - i
}

func benchMs(ns int64) float64 { return float64(ns) / 1e6 }

func benchMiB(v uint64) float64 { return float64(v) / (1 << 20) }

// benchRSS reads VmRSS from /proc/self/status, in bytes.
func benchRSS(b *testing.B) uint64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.Lines(string(raw)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kib uint64
			if _, err := fmt.Sscanf(strings.TrimSpace(rest), "%d kB", &kib); err != nil {
				b.Fatalf("VmRSS %q: %v", rest, err)
			}
			return kib << 10
		}
	}
	b.Fatal("no VmRSS in /proc/self/status")
	return 0
}

// benchHeapStack returns the Go heap spans and stacks in use, and the
// bytes of heap objects (live and not yet collected).
func benchHeapStack() (heap, stack, objects uint64) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse, ms.StackInuse, ms.HeapAlloc
}

// benchMachineCPU returns the CPU time every CPU of the machine has spent
// busy so far (the "cpu" line of /proc/stat, all but idle, iowait and
// steal), to tell whether something else competed with the benchmark, and
// the time the hypervisor took from this virtual machine's CPUs (steal):
// while it does, every thread on the stolen CPU stands still, so a window
// with steal in it shows lateness that is not the engine's.
func benchMachineCPU() (busy, steal time.Duration, err error) {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := strings.Cut(string(raw), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0, fmt.Errorf("bad /proc/stat line %q", line)
	}
	const clkTck = 100 // USER_HZ
	for i, v := range f[1:] {
		if i == 3 || i == 4 || i > 7 { // idle, iowait; guest time is already in user
			continue
		}
		t, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("bad /proc/stat line %q", line)
		}
		d := time.Duration(t) * time.Second / clkTck
		if i == 7 {
			steal = d
		} else {
			busy += d
		}
	}
	return busy, steal, nil
}

// benchCPU returns this process's CPU time so far, user+sys.
func benchCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type benchAllocCount struct {
	objects, bytes uint64
	gcCPU          float64 // seconds, estimated by the runtime
}

// benchAllocs reads the cumulative heap allocations without stopping the
// world (unlike ReadMemStats), so it can run inside the window.
func benchAllocs() benchAllocCount {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:objects"}, {Name: "/gc/heap/allocs:bytes"},
		{Name: "/cpu/classes/gc/total:cpu-seconds"}}
	metrics.Read(s)
	return benchAllocCount{s[0].Value.Uint64(), s[1].Value.Uint64(), s[2].Value.Float64()}
}

// benchSchedLatencies reads the runtime's histogram of how long goroutines
// waited runnable before running.
func benchSchedLatencies() *metrics.Float64Histogram {
	s := []metrics.Sample{{Name: "/sched/latencies:seconds"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindFloat64Histogram {
		return nil
	}
	h := s[0].Value.Float64Histogram()
	return &metrics.Float64Histogram{Counts: slices.Clone(h.Counts), Buckets: slices.Clone(h.Buckets)}
}

// benchSchedDelta returns the p50 and p99 (bucket upper bounds) and the
// highest non-empty bucket of the latencies observed between a and b.
func benchSchedDelta(a, b *metrics.Float64Histogram) (p50, p99, top float64, ok bool) {
	if a == nil || b == nil || len(a.Counts) != len(b.Counts) {
		return 0, 0, 0, false
	}
	var total uint64
	d := make([]uint64, len(b.Counts))
	for i := range d {
		d[i] = b.Counts[i] - a.Counts[i]
		total += d[i]
	}
	if total == 0 {
		return 0, 0, 0, false
	}
	upper := func(i int) float64 {
		if u := b.Buckets[i+1]; !math.IsInf(u, 1) {
			return u
		}
		return b.Buckets[i]
	}
	var seen uint64
	p50, p99 = -1, -1
	for i, c := range d {
		seen += c
		if p50 < 0 && seen*2 >= total {
			p50 = upper(i)
		}
		if p99 < 0 && seen*100 >= total*99 {
			p99 = upper(i)
		}
		if c > 0 {
			top = upper(i)
		}
	}
	return p50, p99, top, true
}

// BenchmarkSetRetune10k is a reload that changes the interval of every one
// of 10,000 checks: each new probe inherits the health of the one it
// replaces, found by identity.
func BenchmarkSetRetune10k(b *testing.B) {
	const n = 10_000
	specs := func(iv time.Duration) []Spec {
		out := make([]Spec, n)
		for i := range out {
			target := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 80)
			out[i] = Spec{Service: "svc" + strconv.Itoa(i/100), RealServer: target,
				Probe: ProbeSpec{Type: "tcp", Target: target, Interval: iv, Timeout: time.Second, Rise: 2, Fall: 2}}
		}
		return out
	}
	a, c := specs(time.Second), specs(2*time.Second)
	e := NewEngine(slog.New(slog.DiscardHandler))
	e.Set(a)
	b.ResetTimer()
	for i := range b.N {
		if i%2 == 0 {
			e.Set(c)
		} else {
			e.Set(a)
		}
	}
}
