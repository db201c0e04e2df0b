package failover

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/directorlb/director/heartbeat"
)

// When the peer is judged dead, every link it spoke on is already down:
// an admin reading the status (or a scrape of the metrics) at the moment
// of the takeover never sees a dead peer behind a live link.
func TestPeerDeadTakesItsLinksDownFirst(t *testing.T) {
	var l stepLog
	cfg := NodeConfig{Key: testKey, Links: []heartbeat.Link{stepLink{&l}, stepLink{&l}}, VIPs: &l, Sync: &l}
	cfg.Node, cfg.Keepalive, cfg.Deadtime = "b", 50*time.Millisecond, 200*time.Millisecond
	s := &state{
		n:     &Node{cfg: cfg, log: slog.New(slog.DiscardHandler)},
		el:    NewElection(cfg.Params, time.Now()),
		links: make([]linkState, 2),
	}
	s.el.SetRole(heartbeat.RoleStandby, t0)
	// The peer's last heartbeat came over both links, just over deadtime
	// ago; no tick has run since to notice the links went quiet.
	at := time.Now().Add(-cfg.Deadtime - 10*time.Millisecond)
	m := heartbeat.Message{Kind: heartbeat.KindHeartbeat, Node: "a", Priority: 200, Role: heartbeat.RoleActive, Boot: 1, Seq: 1, Time: at}
	for i := range s.links {
		s.heard(context.Background(), received{link: i, msg: m, at: at})
	}
	for i := range s.links {
		ls := &s.links[i]
		if !ls.up {
			t.Fatalf("link %d not up after a heartbeat on it", i)
		}
	}

	s.evaluate(context.Background())
	if r := s.el.Role(); r != heartbeat.RoleActive {
		t.Fatalf("role %v after the peer went silent for deadtime, want active", r)
	}
	// The peer's deadline is past and acted on: nothing to wake for.
	if d := s.wakeAt(); !d.IsZero() {
		t.Errorf("wake at %v for a peer already judged dead", d)
	}
	for i := range s.links {
		ls := &s.links[i]
		if ls.up {
			t.Errorf("link %d still up once the peer is dead", i)
		}
	}
}

// links is an interface table for checkInterfaces.
type links map[string]net.Flags

func (l links) Flags(name string) (net.Flags, error) {
	f, ok := l[name]
	if !ok {
		return 0, errors.New("no such device")
	}
	return f, nil
}

func TestCheckInterfaces(t *testing.T) {
	const up = net.FlagUp | net.FlagRunning
	tests := []struct {
		name  string
		table links
		fault string
	}{
		{"all up", links{"eth0": up, "eth1": up}, ""},
		{"down", links{"eth0": up, "eth1": net.FlagRunning}, "VIP interface eth1 is down or has no carrier"},
		{"no carrier", links{"eth0": net.FlagUp, "eth1": up}, "VIP interface eth0 is down or has no carrier"},
		{"missing", links{"eth0": up}, "VIP interface eth1: no such device"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := NodeConfig{VIPInterfaces: []string{"eth0", "eth1"}, Interfaces: tt.table}
			s := &state{n: &Node{cfg: cfg, log: slog.New(slog.DiscardHandler)}, el: NewElection(cfg.Params, time.Now())}
			s.el.SetFault("an earlier fault")
			s.checkInterfaces()
			if got := s.el.Fault(); got != tt.fault {
				t.Errorf("fault %q, want %q", got, tt.fault)
			}
		})
	}
}

func TestNewNodeNeedsAnInterfaceReader(t *testing.T) {
	cfg := NodeConfig{Links: []heartbeat.Link{stepLink{&stepLog{}}}, Keepalive: time.Second, VIPInterfaces: []string{"eth0"}}
	cfg.Node, cfg.Deadtime = "a", 2*time.Second
	if _, err := NewNode(cfg); err == nil {
		t.Fatal("a node with VIP interfaces and no way to read them was accepted")
	}
	cfg.Interfaces = links{}
	if _, err := NewNode(cfg); err != nil {
		t.Fatalf("with a reader: %v", err)
	}
}

// countingProber counts the probes and reaches reach of its one node.
type countingProber struct {
	probes *int
	reach  *int
}

func (p countingProber) Probe(context.Context) int { *p.probes++; return *p.reach }
func (p countingProber) Total() int                { return 1 }

// While every ping node answers, they are asked four times per ping
// window, not on every heartbeat: with keepalive 50ms and deadtime 200ms
// (a 1s window), 2s of ticks make 8 probes, not 40. While one is missing
// they are asked on every tick, so that a director back on its network
// notices at once.
func TestPingNodesAskedFourTimesPerWindow(t *testing.T) {
	for _, tt := range []struct {
		name  string
		reach int
		want  int
	}{
		{"all reached", 1, 8},
		{"one missing", 0, 40},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var probes int
			cfg := NodeConfig{Pinger: countingProber{&probes, &tt.reach}}
			cfg.Node, cfg.Keepalive, cfg.Deadtime = "b", 50*time.Millisecond, 200*time.Millisecond
			cfg.PingTotal = 1
			s := &state{
				n:      &Node{cfg: cfg, log: slog.New(slog.DiscardHandler)},
				el:     NewElection(cfg.Params, time.Now()),
				events: make(chan func(*state), 1),
			}
			ctx := context.Background()
			start := time.Now()
			for at := start; at.Before(start.Add(2 * time.Second)); at = at.Add(cfg.Keepalive) {
				s.probe(ctx, at)
				if s.probing {
					(<-s.events)(s)
					if got := s.el.PingReached(); got != tt.reach {
						t.Fatalf("the election has %d ping nodes reached after a probe that reached %d", got, tt.reach)
					}
				}
			}
			if probes != tt.want {
				t.Errorf("%d probes in 2s of 50ms ticks, want %d", probes, tt.want)
			}
		})
	}
}

// A message of the peer's earlier boot that a link delivers late (its
// cable was cut while it waited) is older news than the peer's current
// boot: a crashed director's farewell, arriving after it started again
// and took the VIPs, must not make this director take them too.
func TestEarlierBootDeliveredLateIsRefused(t *testing.T) {
	var l stepLog
	cfg := NodeConfig{Key: testKey, Links: []heartbeat.Link{stepLink{&l}, stepLink{&l}}, VIPs: &l, Sync: &l}
	cfg.Node, cfg.Keepalive, cfg.Deadtime = "b", 50*time.Millisecond, 200*time.Millisecond
	s := &state{n: &Node{cfg: cfg, log: slog.New(slog.DiscardHandler)}, el: NewElection(cfg.Params, time.Now()), links: make([]linkState, 2)}
	s.el.SetRole(heartbeat.RoleStandby, t0)
	now := time.Now()
	farewell := heartbeat.Message{Kind: heartbeat.KindLeaving, Node: "a", Priority: 200, Role: heartbeat.RoleStandby, Boot: 7, Seq: 1, Time: now.Add(-100 * time.Millisecond)}
	current := heartbeat.Message{Kind: heartbeat.KindHeartbeat, Node: "a", Priority: 200, Role: heartbeat.RoleActive, Boot: 8, Seq: 40, Time: now.Add(-10 * time.Millisecond)}
	s.heard(context.Background(), received{link: 0, msg: current, at: now})
	s.heard(context.Background(), received{link: 1, msg: farewell, at: now})
	if m, _, _ := s.el.Peer(); m.Boot != current.Boot || m.Kind != heartbeat.KindHeartbeat || !s.el.PeerAlive(now) {
		t.Errorf("the peer is %+v, alive %v; want its current boot, active", m, s.el.PeerAlive(now))
	}
	if got := s.n.replayed.Load(); got != 1 {
		t.Errorf("%d refused, want the late message counted", got)
	}
	if want, why := s.el.Want(now); want != heartbeat.RoleStandby {
		t.Errorf("wants %v (%v) after old news, want standby", want, why)
	}
	// A later boot is news: the peer started again.
	again := heartbeat.Message{Kind: heartbeat.KindHeartbeat, Node: "a", Priority: 200, Role: heartbeat.RoleStandby, Boot: 9, Seq: 1, Time: now}
	s.heard(context.Background(), received{link: 1, msg: again, at: now})
	if m, _, _ := s.el.Peer(); m.Boot != again.Boot {
		t.Errorf("the peer's new boot was not taken: %+v", m)
	}
}

// A "leaving" held back on its way for over deadtime tells nothing of the
// peer now: it is ignored, and the peer's silence decides, with the VIP
// probe that a takeover from a leaving peer skips.
func TestLateLeavingIsIgnored(t *testing.T) {
	var l stepLog
	cfg := NodeConfig{Key: testKey, Links: []heartbeat.Link{stepLink{&l}}, VIPs: &l, Sync: &l}
	cfg.Node, cfg.Keepalive, cfg.Deadtime = "b", 50*time.Millisecond, 200*time.Millisecond
	s := &state{n: &Node{cfg: cfg, log: slog.New(slog.DiscardHandler)}, el: NewElection(cfg.Params, time.Now()), links: make([]linkState, 1)}
	s.el.SetRole(heartbeat.RoleStandby, t0)
	now := time.Now()
	s.heard(context.Background(), received{msg: heartbeat.Message{Kind: heartbeat.KindHeartbeat, Node: "a", Priority: 200, Role: heartbeat.RoleActive, Boot: 1, Seq: 1, Time: now}, at: now})
	late := heartbeat.Message{Kind: heartbeat.KindLeaving, Node: "a", Priority: 200, Role: heartbeat.RoleStandby, Boot: 2, Seq: 1, Time: now.Add(-cfg.Deadtime - time.Millisecond)}
	s.heard(context.Background(), received{msg: late, at: now})
	if want, why := s.el.Want(now); want != heartbeat.RoleStandby {
		t.Errorf("wants %v (%v) after a late leaving, want standby", want, why)
	}
	fresh := late
	fresh.Boot, fresh.Time = 3, now.Add(time.Millisecond)
	s.heard(context.Background(), received{msg: fresh, at: now})
	if want, why := s.el.Want(now); want != heartbeat.RoleActive || why != ReasonPeerLeft {
		t.Errorf("wants %v (%v) after a fresh leaving, want active, peer not serving", want, why)
	}
}
