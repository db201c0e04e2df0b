package failover

import (
	"context"
	"log/slog"
	"testing"
	"time"
)

// When the peer is judged dead, every link it spoke on is already down:
// an admin reading the status (or a scrape of the metrics) at the moment
// of the takeover never sees a dead peer behind a live link.
func TestPeerDeadTakesItsLinksDownFirst(t *testing.T) {
	var l stepLog
	cfg := NodeConfig{Key: wireTestKey, Links: []Link{stepLink{&l}, stepLink{&l}}, VIPs: &l, Sync: &l}
	cfg.Node, cfg.Keepalive, cfg.Deadtime = "b", 50*time.Millisecond, 200*time.Millisecond
	s := &state{
		n:     &Node{cfg: cfg, log: slog.New(slog.DiscardHandler)},
		el:    NewElection(cfg.Params, time.Now()),
		links: make([]linkState, 2),
	}
	s.el.SetRole(RoleStandby)
	// The peer's last heartbeat came over both links, just over deadtime
	// ago; no tick has run since to notice the links went quiet.
	at := time.Now().Add(-cfg.Deadtime - 10*time.Millisecond)
	m := Message{Kind: KindHeartbeat, Node: "a", Priority: 200, Role: RoleActive, Boot: 1, Seq: 1, Time: at}
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
	if r := s.el.Role(); r != RoleActive {
		t.Fatalf("role %v after the peer went silent for deadtime, want active", r)
	}
	for i := range s.links {
		ls := &s.links[i]
		if ls.up {
			t.Errorf("link %d still up once the peer is dead", i)
		}
	}
}
