package checks

import (
	"time"

	"github.com/directorlb/director/config"
)

// Weights is the health-aware weight source for the director (it has the
// method set of director.Weights; package director is not imported, to
// keep checks free of it). Servers drained by hand are the director's
// own business (director/drain.go), applied over these weights.
type Weights struct {
	Engine *Engine
	// Now is the clock for slow start; nil means time.Now.
	Now func() time.Time
}

// Weight is configured × dynamic percent / 100 while healthy (at least 1
// when both are above zero, so a small weight is not rounded out of
// service), scaled down in slow start (see ramp.go), 0 while unhealthy,
// and not present while unhealthy with on_failure remove. A real server
// the engine does not know (no Set yet included it) counts as unhealthy:
// fail closed, as a new server does before its first rise.
func (w Weights) Weight(svc *config.Service, rs *config.RealServer) (weight int, present bool) {
	ap := rs.AddrPort()
	healthy, pct, _ := w.Engine.Health(svc.Name, ap)
	if !healthy {
		return 0, svc.OnFailure != config.Remove
	}
	weight = rs.Weight * pct / 100
	if svc.SlowStart > 0 {
		now := time.Now
		if w.Now != nil {
			now = w.Now
		}
		weight = slowStart(weight, w.Engine.Recovered(svc.Name, ap), now(), svc.SlowStart)
	}
	if weight == 0 && rs.Weight > 0 && pct > 0 {
		weight = 1
	}
	return min(weight, 65535), true
}
