package failover

import (
	"context"
	"testing"
	"time"

	"github.com/directorlb/director/heartbeat"
	"github.com/directorlb/director/vip"
)

type fixedProber struct{ total int }

func (p fixedProber) Probe(context.Context) int { return p.total }
func (p fixedProber) Total() int                { return p.total }

// The early check starts one probe window and half a keepalive before
// deadtime, once per silence, and only where it can stand in for the
// takeover's own checks.
func TestEarlyAt(t *testing.T) {
	ms := time.Millisecond
	probeVIPs := func(context.Context) ([]vip.VIPAnswer, error) { return nil, nil }
	t0 := time.Unix(1000, 0)
	newState := func(cfg NodeConfig) *state {
		cfg.Keepalive, cfg.Deadtime = 50*ms, 200*ms
		s := &state{n: &Node{cfg: cfg}, el: NewElection(cfg.Params, t0)}
		s.el.SetRole(heartbeat.RoleStandby, t0)
		s.el.Heard(heartbeat.Message{Node: "peer", Role: heartbeat.RoleActive, Kind: heartbeat.KindHeartbeat}, t0)
		return s
	}
	for _, c := range []struct {
		name  string
		cfg   NodeConfig
		setup func(s *state)
		want  time.Duration // after the peer was last heard; 0: none
	}{
		{"VIP probe: deadtime - (probe window + keepalive/2)", NodeConfig{ProbeVIPs: probeVIPs}, nil, 125 * ms},
		{"ping nodes alone", NodeConfig{Pinger: fixedProber{1}}, nil, 125 * ms},
		{"a longer keepalive probes longer, so starts earlier", NodeConfig{ProbeVIPs: probeVIPs},
			func(s *state) { s.n.cfg.Keepalive = 60 * ms }, 110 * ms},
		{"never before half of deadtime", NodeConfig{ProbeVIPs: probeVIPs},
			func(s *state) { s.n.cfg.Keepalive = 150 * ms }, 100 * ms},
		{"nothing to probe", NodeConfig{Pinger: fixedProber{0}}, nil, 0},
		{"a fence waits for the peer to be declared dead", NodeConfig{ProbeVIPs: probeVIPs, Fence: []string{"/bin/true"}}, nil, 0},
		{"the active director takes nothing over", NodeConfig{ProbeVIPs: probeVIPs},
			func(s *state) { s.el.SetRole(heartbeat.RoleActive, t0) }, 0},
		{"a leaving peer is taken over at once", NodeConfig{ProbeVIPs: probeVIPs},
			func(s *state) { s.el.Heard(heartbeat.Message{Node: "peer", Kind: heartbeat.KindLeaving}, t0) }, 0},
		{"one check per silence", NodeConfig{ProbeVIPs: probeVIPs},
			func(s *state) { s.early = &earlyCheck{heard: t0} }, 0},
		{"one that found the VIPs answering is repeated at once", NodeConfig{ProbeVIPs: probeVIPs},
			func(s *state) { s.early = &earlyCheck{heard: t0, done: true, answered: true, ended: t0.Add(140 * ms)} }, 140 * ms},
		{"but not if the repeat would end after deadtime", NodeConfig{ProbeVIPs: probeVIPs},
			func(s *state) { s.early = &earlyCheck{heard: t0, done: true, answered: true, ended: t0.Add(151 * ms)} }, 0},
		{"nor while it runs", NodeConfig{ProbeVIPs: probeVIPs},
			func(s *state) { s.early = &earlyCheck{heard: t0, answered: true, ended: t0.Add(140 * ms)} }, 0},
		{"nor when the ping nodes were not reached", NodeConfig{ProbeVIPs: probeVIPs},
			func(s *state) { s.early = &earlyCheck{heard: t0, done: true, ended: t0.Add(140 * ms)} }, 0},
		{"a heartbeat heard since starts a new silence", NodeConfig{ProbeVIPs: probeVIPs},
			func(s *state) { s.early = &earlyCheck{heard: t0.Add(-50 * ms)} }, 125 * ms},
		{"not while a takeover's checks run", NodeConfig{ProbeVIPs: probeVIPs},
			func(s *state) { s.takingOver = true }, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newState(c.cfg)
			if c.setup != nil {
				c.setup(s)
			}
			got := s.earlyAt()
			switch {
			case c.want == 0 && !got.IsZero():
				t.Errorf("early check at +%v, want none", got.Sub(t0))
			case c.want != 0 && !got.Equal(t0.Add(c.want)):
				t.Errorf("early check at %v, want +%v", got.Sub(t0), c.want)
			}
		})
	}
}

func TestEarlyFresh(t *testing.T) {
	ms := time.Millisecond
	s := &state{n: &Node{cfg: NodeConfig{Keepalive: 50 * ms}}}
	end := time.Unix(1000, 0)
	for _, c := range []struct {
		clear bool
		after time.Duration
		want  bool
	}{
		{true, 10 * ms, true},
		{true, 50 * ms, true},
		{true, 51 * ms, false}, // stale: the takeover probes again
		{false, 0, false},      // something answered: the takeover decides
	} {
		s.early = &earlyCheck{done: true, clear: c.clear, ended: end}
		if got := s.earlyFresh(end.Add(c.after)); got != c.want {
			t.Errorf("clear %v, %v after: fresh %v, want %v", c.clear, c.after, got, c.want)
		}
	}
}
