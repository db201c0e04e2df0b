package checks

import (
	"slices"
	"time"

	"github.com/directorlb/director/config"
)

// Set replaces the subscriptions. Probes whose key is unchanged keep
// running with their state; probes nobody subscribes to any more stop;
// new keys start. A new probe takes its health from, in order:
//
//   - a probe that differs from it only in interval, timeout, rise, fall
//     or start-healthy: the same check retuned, whose results are the
//     new probe's own (see inherit);
//   - the probe its subscribers had before, when a reload edited how a
//     real server is checked (path, port, type...): the server keeps its
//     health until the new check moves it by rise and fall, so an edit
//     never takes a serving server out, nor lets a failing one in (see
//     carry). Subscribers on different checks that an edit makes share
//     one take the healthy state if any of them had it;
//   - otherwise, as a new server: unhealthy until rise successes, or
//     healthy if it starts healthy.
//
// Set does not call OnChange: the caller recomputes the whole table after
// a reload.
func (e *Engine) Set(specs []Spec) {
	// Logged once e.mu is released: see record.
	if carried := e.set(specs); carried > 0 {
		e.log.Info("health checks changed: real servers keep their health until the new checks pass rise or fail fall times",
			"probes", carried)
	}
}

// set is Set with e.mu held; it returns how many new probes carried their
// subscribers' health over.
func (e *Engine) set(specs []Spec) (carried int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := time.Now()
	probes := make(map[string]*probe, len(specs))
	subs := make(map[subKey]*probe, len(specs))
	// The probes this Set creates, in the order of specs, each with the
	// probe one of its subscribers had before (nil if none had one).
	var created []*probe
	before := map[*probe]*probe{}
	var keys keyMemo
	for _, s := range specs {
		key := keys.key(s.Probe)
		p := probes[key]
		if p == nil {
			p = e.probes[key]
		}
		if p == nil {
			p = &probe{key: key, id: s.Probe.identity(), timing: timingOf(s.Probe), prober: e.newProber(s.Probe),
				since: now, weight: 100, index: -1,
				m: newMachine(s.Probe.Rise, s.Probe.Fall, s.Probe.StartHealthy || s.Probe.Type == config.CheckNone)}
			created = append(created, p)
			before[p] = nil
		}
		probes[key] = p
		k := subKey{s.Service, s.RealServer}
		subs[k] = p
		if prev, isNew := before[p]; isNew {
			// Subscribers on different checks that now share one: the
			// server stays in if any of them had it in.
			if cur := e.subs[k]; cur != nil && (prev == nil || !prev.m.healthy && cur.m.healthy) {
				before[p] = cur
			}
		}
	}
	var byID map[string]*probe // the current probes by identity, made on first need
	for _, p := range created {
		if byID == nil {
			byID = make(map[string]*probe, len(e.probes))
			for _, old := range e.probes {
				byID[old.id] = old
			}
		}
		// Type none is always healthy: nothing to probe, and nothing
		// would ever bring back a server it carried over as unhealthy.
		none := p.timing.typ == config.CheckNone
		if old := byID[p.id]; old != nil {
			p.inherit(old)
		} else if old := before[p]; old != nil && !none {
			p.carry(old)
			carried++
		}
		if !none {
			e.added = append(e.added, p)
		}
	}
	for key, p := range e.probes {
		if probes[key] == nil {
			// A run in flight finishes (within its timeout) and its
			// result is discarded: see record.
			p.stopped.Store(true)
			e.removed = append(e.removed, p)
		}
	}
	for _, p := range probes {
		p.services = p.services[:0]
	}
	for k, p := range subs {
		p.services = append(p.services, k.service)
	}
	for _, p := range probes {
		slices.Sort(p.services)
		p.services = slices.Compact(p.services)
	}
	e.probes, e.subs = probes, subs
	if e.ctx != nil && e.ctx.Err() != nil {
		// Stopped: no scheduler will take these in.
		e.added, e.removed = nil, nil
	}
	select {
	case e.wake <- struct{}{}:
	default: // a wake-up is pending already
	}
	return carried
}

// inherit copies health from old, a probe being replaced by p that
// differs only in timing or thresholds. Called with e.mu held.
func (p *probe) inherit(old *probe) {
	p.m.healthy = old.m.healthy
	p.since, p.checked, p.last, p.weight = old.since, old.checked, old.last, old.weight
	p.recovered = old.recovered
}

// carry copies health from old, the probe of p's subscribers before a
// reload changed their check. Unlike inherit it leaves out the last
// result, which was the old check's: status shows the new check as not
// run yet. p's counts start from zero, so it takes fall failures (or
// rise successes) of the new check to change the state carried over.
// Called with e.mu held.
func (p *probe) carry(old *probe) {
	p.m.healthy = old.m.healthy
	p.since, p.weight, p.recovered = old.since, old.weight, old.recovered
	p.soon = true
}
