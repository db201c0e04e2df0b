package failover

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/directorlb/director/heartbeat"
	"github.com/directorlb/director/vip"
)

// A peer's word that it is in fault may be old news: held back on a link
// and delivered to a director that has heard nothing newer (one just
// restarted), while the peer has left fault and holds the VIPs. Such a
// takeover probes the VIPs first and does not take them while they
// answer; a peer that said it is leaving is still taken over at once.
func TestFaultPeerTakenOverOnlyAfterTheProbe(t *testing.T) {
	for _, tc := range []struct {
		name       string
		peer       heartbeat.Message
		answering  bool
		wantProbe  bool
		wantActive bool
	}{
		{"peer in fault, its VIPs still answer", heartbeat.Message{Kind: heartbeat.KindHeartbeat, Role: heartbeat.RoleFault}, true, true, false},
		{"peer in fault, nothing answers", heartbeat.Message{Kind: heartbeat.KindHeartbeat, Role: heartbeat.RoleFault}, false, true, true},
		{"peer leaving", heartbeat.Message{Kind: heartbeat.KindLeaving, Role: heartbeat.RoleStandby}, true, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var l stepLog
			probes := 0
			cfg := NodeConfig{Key: testKey, Links: []heartbeat.Link{stepLink{&l}}, VIPs: &l, Sync: &l,
				ProbeVIPs: func(context.Context) ([]vip.VIPAnswer, error) {
					probes++
					if tc.answering {
						return []vip.VIPAnswer{{VIP: vip.VIP{Prefix: netip.MustParsePrefix("192.0.2.10/24"), Interface: "eth0"}}}, nil
					}
					return nil, nil
				}}
			cfg.Node, cfg.Priority, cfg.Keepalive, cfg.Deadtime = "d1", 200, 50*time.Millisecond, 200*time.Millisecond
			s := &state{n: &Node{cfg: cfg, log: slog.New(slog.DiscardHandler)}, el: NewElection(cfg.Params, time.Now()),
				links: make([]linkState, 1), events: make(chan func(*state), 16), notify: make(chan heartbeat.Role, 16)}
			now := time.Now()
			m := tc.peer
			m.Node, m.Priority, m.Boot, m.Seq, m.Time = "d2", 100, 1, 1, now
			s.heard(context.Background(), received{msg: m, at: now})
			s.evaluate(context.Background())
			if s.takingOver {
				select {
				case ev := <-s.events:
					ev(s)
				case <-time.After(5 * time.Second):
					t.Fatal("the takeover's checks never ended")
				}
			}
			if (probes > 0) != tc.wantProbe {
				t.Errorf("%d VIP probes, want a probe %v", probes, tc.wantProbe)
			}
			if active := s.el.Role() == heartbeat.RoleActive; active != tc.wantActive {
				t.Errorf("active %v, want %v (steps %v)", active, tc.wantActive, l.steps)
			}
			if !tc.wantActive && slices.Contains(l.steps, "acquire") {
				t.Errorf("took the VIPs while they answered: %v", l.steps)
			}
		})
	}
}
