package failover

import (
	"testing"
	"time"
)

func TestProbeTimeoutGrowsWithLateTicks(t *testing.T) {
	ms := time.Millisecond
	for _, c := range []struct {
		name  string
		ticks []time.Duration
		want  time.Duration
	}{
		{"no tick yet", nil, 50 * ms},
		{"on time", []time.Duration{50 * ms, 51 * ms, 49 * ms}, 52 * ms},
		{"one late tick", []time.Duration{50 * ms, 120 * ms, 50 * ms}, 190 * ms},
		{"early ticks do not shorten it", []time.Duration{10 * ms}, 50 * ms},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := &state{n: &Node{cfg: NodeConfig{Keepalive: 50 * ms}}}
			for _, d := range c.ticks {
				s.noteTick(d)
			}
			if got := s.probeTimeout(); got != c.want {
				t.Errorf("probe timeout %v, want %v", got, c.want)
			}
		})
	}
	// Lateness is forgotten once enough on-time ticks have passed.
	s := &state{n: &Node{cfg: NodeConfig{Keepalive: 50 * ms}}}
	s.noteTick(500 * ms)
	for range len(s.ticks) {
		s.noteTick(50 * ms)
	}
	if got := s.probeTimeout(); got != 50*ms {
		t.Errorf("after %d on-time ticks: %v, want 50ms", len(s.ticks), got)
	}
}
