// Package liveness tells whether directord's loops are still turning. Each
// loop beats as it goes round (and at least every Period while idle); a
// loop whose last beat is older than its bound is stalled, which fails
// /healthz and stops the systemd watchdog pings.
package liveness

import (
	"cmp"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Period is how often an idle loop must beat. Bounds are several periods,
// so a loop is stalled only when it has missed many beats.
const Period = time.Second

// Loops is the set of loops that report in.
type Loops struct {
	now   func() time.Time
	mu    sync.Mutex
	loops map[string]*Loop
}

// New returns an empty set.
func New() *Loops { return &Loops{now: time.Now, loops: map[string]*Loop{}} }

// Loop is one loop's reporter. A nil *Loop does nothing, so code may beat
// unconditionally whether or not anybody watches.
type Loop struct {
	name  string
	bound time.Duration
	last  atomic.Int64 // unix ns
	now   func() time.Time
}

// Register adds a loop that counts as stalled once bound passes without a
// beat. It starts as if it had just beaten. Registering a name again
// returns the existing loop with the new bound.
func (ls *Loops) Register(name string, bound time.Duration) *Loop {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	l := ls.loops[name]
	if l == nil {
		l = &Loop{name: name, now: ls.now}
		ls.loops[name] = l
	}
	l.bound = bound
	l.Beat()
	return l
}

// Remove forgets a loop that ended on purpose.
func (ls *Loops) Remove(l *Loop) {
	if l == nil {
		return
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.loops[l.name] == l {
		delete(ls.loops, l.name)
	}
}

// Beat says the loop is turning.
func (l *Loop) Beat() {
	if l != nil {
		l.last.Store(l.now().UnixNano())
	}
}

// State is one loop's report.
type State struct {
	Name    string
	Age     time.Duration // since the last beat
	Bound   time.Duration
	Stalled bool
}

// Check reports every loop, sorted by name, and whether all are turning.
func (ls *Loops) Check() (states []State, ok bool) {
	ls.mu.Lock()
	now := ls.now()
	ok = true
	for _, l := range ls.loops {
		age := now.Sub(time.Unix(0, l.last.Load()))
		st := State{Name: l.name, Age: age, Bound: l.bound, Stalled: age > l.bound}
		ok = ok && !st.Stalled
		states = append(states, st)
	}
	ls.mu.Unlock()
	slices.SortFunc(states, func(a, b State) int { return cmp.Compare(a.Name, b.Name) })
	return states, ok
}
