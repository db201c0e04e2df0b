package checks

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"time"
)

// NoWeight in Result.Weight means the probe did not report a dynamic
// weight: the real server gets its full configured weight.
const NoWeight = -1

// Result is the outcome of one probe.
type Result struct {
	OK      bool
	Err     error // why it failed; nil when OK
	Latency time.Duration
	// Weight is a dynamic weight percentage in [0,100] reported by the
	// target (exec checks only), or NoWeight.
	Weight int
}

// Prober runs one probe against a target. It must return by the time ctx
// is done (plus at most a small, bounded grace for cleanup) and must be
// safe for sequential reuse; the engine never runs one Prober concurrently
// with itself.
type Prober interface {
	Probe(ctx context.Context, target netip.AddrPort) Result
}

// deadlineProber is a Prober that bounds itself by a deadline, so the
// engine can give it the deadline and its own long-lived context instead
// of a context per run: at ten thousand runs a second, making, timing and
// cancelling that context is a tenth of a TCP check's cost. ProbeBy must
// return by the deadline (plus the same bounded grace) or once ctx is
// done.
type deadlineProber interface {
	Prober
	ProbeBy(ctx context.Context, deadline time.Time, target netip.AddrPort) Result
}

// ok and fail build Results with the latency measured from start.
func ok(start time.Time) Result {
	return Result{OK: true, Latency: time.Since(start), Weight: NoWeight}
}

func fail(ctx context.Context, start time.Time, err error) Result {
	// A probe cut off by its deadline usually surfaces as an i/o timeout
	// or "context deadline exceeded" deep in a wrapped error; say plainly
	// that the check timed out so status output is readable.
	// The connection deadline is the context's, so an i/o timeout can be
	// seen a moment before ctx.Err() is set: treat it as the same thing.
	cerr := ctx.Err()
	if cerr == nil && errors.Is(err, os.ErrDeadlineExceeded) {
		cerr = context.DeadlineExceeded
	}
	if cerr != nil && !errors.Is(err, cerr) {
		err = fmt.Errorf("%w: %w", cerr, err)
	}
	return Result{Err: err, Latency: time.Since(start), Weight: NoWeight}
}

// None is the check type none: the real server is always healthy.
type None struct{}

// Probe implements Prober.
func (None) Probe(context.Context, netip.AddrPort) Result { return Result{OK: true, Weight: NoWeight} }

// broken is a Prober that could not be built (a missing CA file, a bad
// regexp, a type not implemented yet). It fails every probe with the
// reason, so the problem shows in status instead of aborting a reload.
type broken struct{ err error }

func (b broken) Probe(context.Context, netip.AddrPort) Result {
	return Result{Err: b.err, Weight: NoWeight}
}
