package checks

import "time"

// The lateness record: buckets whose lower bounds grow by a quarter from
// 50ms (lateBounds), so that noting and querying are a few atomic
// operations with no lock shared by every run. A bucket's lower bound
// stands for what fell in it, so the lateness reported is never more
// than what happened, and at most a fifth less.
const lateBuckets = 32 // the last bound is about 50s

var lateBounds = func() (b [lateBuckets]time.Duration) {
	d := 50 * time.Millisecond
	for k := range b {
		b[k] = d
		d += d / 4
	}
	return b
}()

// noteLate records that a run started late by late at now.
func (e *Engine) noteLate(now time.Time, late time.Duration) {
	for k := 0; k < lateBuckets && late >= lateBounds[k]; k++ {
		e.lateMarks[k].Store(now.UnixNano())
	}
}

// lateSince returns (a lower bound of) the most any run started late at
// or after since; 0 if none was 50ms late.
func (e *Engine) lateSince(since time.Time) time.Duration {
	t := since.UnixNano()
	for k := lateBuckets - 1; k >= 0; k-- {
		if e.lateMarks[k].Load() >= t {
			return lateBounds[k]
		}
	}
	return 0
}

// inconclusiveAfter is how late a run may start before its timeout says
// more about the engine than about the target: then the engine itself
// could not keep up (CPU starvation, or maxRunning runs in flight) and
// the wait, not the target, ate the time.
func inconclusiveAfter(timeout time.Duration) time.Duration {
	return max(timeout/2, 100*time.Millisecond)
}
