package checks

import (
	"net/netip"
	"time"

	"github.com/directorlb/director/config"
)

// Weights is the health-aware weight source for the director (it has the
// method set of director.Weights; package director is not imported, to
// keep checks free of it).
type Weights struct {
	Engine *Engine
	// Drained, if set, reports real servers taken out by hand
	// (directorctl drain): weight 0 but present, whatever on_failure says,
	// so existing connections finish.
	Drained func(service string, rs netip.AddrPort) bool
	// Now is the clock for slow start; nil means time.Now.
	Now func() time.Time
}

// Weight is configured × dynamic percent / 100 while healthy (at least 1
// when both are above zero, so a small weight is not rounded out of
// service), 0 while unhealthy or drained, and not present while unhealthy
// with on_failure remove. A real server the engine does not know (no Set
// yet included it) counts as unhealthy: fail closed, as a new server does
// before its first rise.
func (w Weights) Weight(svc *config.Service, rs *config.RealServer) (weight int, present bool) {
	ap := rs.AddrPort()
	if w.Drained != nil && w.Drained(svc.Name, ap) {
		return 0, true
	}
	healthy, pct, _ := w.Engine.Health(svc.Name, ap)
	if !healthy {
		return 0, svc.OnFailure != config.Remove
	}
	weight = rs.Weight * pct / 100
	if svc.SlowStart > 0 {
		// Slow start: a recovered server's share grows linearly from its
		// recovery to full weight over slow_start, so it is not flooded
		// with new connections while it warms up. A server healthy from
		// the start (adopted at a restart) has no recovery time and keeps
		// its full weight.
		if rec := w.Engine.Recovered(svc.Name, ap); !rec.IsZero() {
			now := time.Now
			if w.Now != nil {
				now = w.Now
			}
			if el := now().Sub(rec); el >= 0 && el < svc.SlowStart {
				weight = int(int64(weight) * int64(el) / int64(svc.SlowStart))
			}
		}
	}
	if weight == 0 && rs.Weight > 0 && pct > 0 {
		weight = 1
	}
	return min(weight, 65535), true
}
