package checks

import (
	"cmp"
	"context"
	"time"

	"github.com/directorlb/director/config"
)

// Slow start (a service's slow_start) is owned here, whole: Weights gives
// a recovered server a share of its weight that grows with time, and Ramp
// brings that share to the kernel as it grows, which no check transition
// would otherwise do.

// RampStep is how often Ramp raises the weights of servers in slow start.
const RampStep = time.Second

// slowStart is weight as a server that recovered at rec gets it at now: a
// share growing linearly from the recovery to the full weight over
// period, so that the server is not flooded with new connections while
// it warms up. A server healthy from the start (adopted at a restart)
// has no recovery time (rec zero) and keeps its full weight.
func slowStart(weight int, rec, now time.Time, period time.Duration) int {
	if rec.IsZero() {
		return weight
	}
	if el := now.Sub(rec); el >= 0 && el < period {
		return int(int64(weight) * int64(el) / int64(period))
	}
	return weight
}

// Ramp raises the weights of servers in slow start step by step. The
// zero Step means RampStep.
type Ramp struct {
	Engine *Engine
	// Config is the config in force, which a reload may replace.
	Config func() *config.Config
	Step   time.Duration
}

// Run reports every Step, until ctx ends, each service with a server in
// slow start through the engine's OnChange function, as a health
// transition does: the director then recomputes the service's weights.
func (r Ramp) Run(ctx context.Context) {
	step := cmp.Or(r.Step, RampStep)
	t := time.NewTicker(step)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r.Engine.mu.RLock()
		changed := r.Engine.onChange
		r.Engine.mu.RUnlock()
		if changed == nil {
			continue
		}
		for _, svc := range r.ramping(time.Now(), step) {
			changed(svc)
		}
	}
}

// ramping lists the services with a server in slow start at now, or
// within two steps past its end, so that the full weight is applied.
func (r Ramp) ramping(now time.Time, step time.Duration) []string {
	var out []string
	cfg := r.Config()
	for i := range cfg.Services {
		svc := &cfg.Services[i]
		if svc.SlowStart == 0 {
			continue
		}
		for _, rs := range svc.RealServers {
			rec := r.Engine.Recovered(svc.Name, rs.AddrPort())
			if !rec.IsZero() && now.Sub(rec) < svc.SlowStart+2*step {
				out = append(out, svc.Name)
				break
			}
		}
	}
	return out
}
