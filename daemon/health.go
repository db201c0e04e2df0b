package daemon

import (
	"context"
	"net/netip"
	"sync"

	"github.com/directorlb/director/checks"
	"github.com/directorlb/director/config"
	"github.com/directorlb/director/director"
)

// seedAdopted starts healthy the checks of real servers the kernel already
// holds with a weight: they were serving when directord started, and a
// restart must not take them out while rise successes accumulate. Every
// other server starts unhealthy and enters after its first rise.
func seedAdopted(cfg *config.Config, kernel director.Table, specs []checks.Spec) int {
	type server struct {
		service string
		rs      netip.AddrPort
	}
	serving := map[server]bool{}
	for i := range cfg.Services {
		s := &cfg.Services[i]
		// Every kernel service of s (one per VIP): a server serving in
		// any of them was serving when directord started.
		for _, svc := range director.ServicesOf(s) {
			e, ok := kernel[director.KeyOf(svc)]
			if !ok {
				continue
			}
			for _, rs := range s.RealServers {
				if d, ok := e.Dests.Get(director.DestKey{Addr: rs.Address, Port: rs.Port}); ok && d.Weight > 0 {
					serving[server{s.Name, rs.AddrPort()}] = true
				}
			}
		}
	}
	n := 0
	for i := range specs {
		if serving[server{specs[i].Service, specs[i].RealServer}] {
			specs[i].Probe.StartHealthy = true
			n++
		}
	}
	return n
}

// changes coalesces the engine's transition callbacks (from any probe
// goroutine) into per-service convergence requests, so a burst of
// transitions is never dropped and never blocks a probe.
type changes struct {
	mu      sync.Mutex
	pending map[string]bool
	kick    chan struct{}
	// applied, if set, is told after each batch reached the director
	// (the bgp announcer re-decides on it).
	applied func()
}

func newChanges() *changes {
	return &changes{pending: map[string]bool{}, kick: make(chan struct{}, 1)}
}

func (c *changes) add(service string) {
	c.mu.Lock()
	c.pending[service] = true
	c.mu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// run converges each service with pending changes until ctx ends.
func (c *changes) run(ctx context.Context, d *director.Director) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.kick:
		}
		c.mu.Lock()
		batch := c.pending
		c.pending = map[string]bool{}
		c.mu.Unlock()
		for svc := range batch {
			_ = d.WeightsChanged(ctx, svc)
		}
		if c.applied != nil {
			c.applied()
		}
	}
}

// annotate adds the checks' view to a status.
func annotate(st *director.Status, snap []checks.Status) {
	by := map[string]checks.Status{}
	for _, s := range snap {
		by[s.Service+"|"+s.RealServer.String()] = s
	}
	for i := range st.Services {
		svc := &st.Services[i]
		for j := range svc.RealServers {
			rs := &svc.RealServers[j]
			cs, ok := by[svc.Name+"|"+rs.Address]
			if !ok || rs.Sorry {
				continue
			}
			h := &director.Health{Check: string(cs.Type), Healthy: cs.Healthy, Since: cs.Since, Checked: cs.Checked,
				LatencyMS: float64(cs.Latency.Microseconds()) / 1000, Error: cs.Error}
			rs.Health = h
		}
	}
}
