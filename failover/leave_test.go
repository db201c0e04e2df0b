package failover

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/directorlb/director/heartbeat"
	"github.com/directorlb/director/ipvssync"
)

// testKey authenticates the heartbeats of the nodes under test.
var testKey = []byte("0123456789abcdef-test-key")

// stepLog records, in order, what a leaving node does to the VIPs, the
// sync daemons and the links.
type stepLog struct{ steps []string }

func (l *stepLog) Acquire(context.Context) error  { l.steps = append(l.steps, "acquire"); return nil }
func (l *stepLog) Announce(context.Context) error { return nil }
func (l *stepLog) Release(gone func()) error {
	l.steps = append(l.steps, "release")
	if gone != nil {
		gone()
	}
	l.steps = append(l.steps, "released")
	return nil
}
func (l *stepLog) Prepare() {}
func (l *stepLog) Start(d ipvssync.SyncDaemon) error {
	l.steps = append(l.steps, "sync start "+d.State.String())
	return nil
}
func (l *stepLog) Stop(st ipvssync.SyncState) error {
	l.steps = append(l.steps, "sync stop "+st.String())
	return nil
}
func (l *stepLog) Daemons() ([]ipvssync.SyncDaemon, error) { return nil, nil }
func (l *stepLog) Hand(fresh bool, _ time.Time) (ipvssync.HandoverStats, error) {
	l.steps = append(l.steps, map[bool]string{true: "hand all", false: "hand changes"}[fresh])
	return ipvssync.HandoverStats{}, nil
}

type stepLink struct{ log *stepLog }

func (stepLink) Name() string             { return "test" }
func (stepLink) Recv([]byte) (int, error) { select {} }
func (stepLink) Close() error             { return nil }
func (l stepLink) Send(frame []byte) error {
	kind := "heartbeat"
	if m, err := heartbeat.Decode(testKey, frame); err == nil && m.Kind == heartbeat.KindLeaving {
		kind = "leaving"
	}
	l.log.steps = append(l.log.steps, "send "+kind)
	return nil
}

// A graceful stop of the active director removes its VIPs before it says
// it is leaving (never two holders), and says so as soon as they are out
// of the kernel (before the releases are logged and the guard told) and
// before it stops its master sync daemon: the peer's takeover waits for
// none of that.
func TestLeaveReleasesThenTellsThenStopsSync(t *testing.T) {
	var l stepLog
	s := stepState(&l)
	s.el.SetRole(heartbeat.RoleActive, t0)
	s.leave()
	want := []string{"release", "send leaving", "released", "sync stop master"}
	if !slices.Equal(l.steps, want) {
		t.Errorf("leaving the pair: %q, want %q", l.steps, want)
	}

	l.steps = nil
	s.el.SetRole(heartbeat.RoleStandby, t0)
	s.leave()
	if want := []string{"send leaving"}; !slices.Equal(l.steps, want) {
		t.Errorf("a standby leaving: %q, want %q", l.steps, want)
	}
}

// stepState is a node whose VIPs, sync daemons, links and handover all
// record in l.
func stepState(l *stepLog) *state {
	cfg := NodeConfig{Key: testKey, Links: []heartbeat.Link{stepLink{l}}, VIPs: l, Sync: l}
	cfg.Node, cfg.Keepalive, cfg.Deadtime = "a", 50*time.Millisecond, 200*time.Millisecond
	return &state{n: &Node{cfg: cfg, log: slog.New(slog.DiscardHandler)}, el: NewElection(cfg.Params, time.Now()), links: make([]linkState, 1)}
}

// An active director that steps down while its peer lives hands it its
// connections before its VIPs go, so the peer knows them before it
// answers for the VIPs, and what changed once they are out: after the
// peer is told where the packets that still reach it are dropped (no
// director answers for longer), before where they are forwarded (they
// reach the peer at once). Without a live peer there is no one to hand
// them to.
func TestStepDownHandsConnectionsOver(t *testing.T) {
	var l stepLog
	s := stepState(&l)
	s.n.cfg.Handover = &l
	s.el.SetRole(heartbeat.RoleActive, t0)
	s.el.Heard(heartbeat.Message{Kind: heartbeat.KindHeartbeat, Node: "b", Role: heartbeat.RoleStandby, Priority: 100, Boot: 1, Seq: 1, Time: time.Now()}, time.Now())
	if !s.el.PeerAlive(time.Now()) {
		t.Fatal("the peer is not alive")
	}
	s.leave()
	want := []string{"hand all", "release", "send leaving", "hand changes", "released", "sync stop master"}
	if !slices.Equal(l.steps, want) {
		t.Errorf("leaving the pair: %q, want %q", l.steps, want)
	}

	l.steps = nil
	s.el.SetRole(heartbeat.RoleActive, t0)
	s.become(context.Background(), heartbeat.RoleStandby, ReasonRank)
	want = []string{"hand all", "release", "send heartbeat", "hand changes", "released", "sync stop master"}
	if !slices.Equal(l.steps, want) {
		t.Errorf("a switchover: %q, want %q", l.steps, want)
	}

	// Where the VIPs' packets are forwarded once they are gone, they
	// reach the peer as soon as it answers: it must know them before.
	l.steps = nil
	s.n.cfg.Forwarded = func() bool { return true }
	s.el.SetRole(heartbeat.RoleActive, t0)
	s.leave()
	want = []string{"hand all", "release", "hand changes", "send leaving", "released", "sync stop master"}
	if !slices.Equal(l.steps, want) {
		t.Errorf("leaving the pair, forwarding: %q, want %q", l.steps, want)
	}

	l.steps = nil
	s = stepState(&l)
	s.n.cfg.Handover = &l
	s.el.SetRole(heartbeat.RoleActive, t0)
	s.leave()
	if want := []string{"release", "send leaving", "released", "sync stop master"}; !slices.Equal(l.steps, want) {
		t.Errorf("leaving with no peer: %q, want %q", l.steps, want)
	}
}

// beatLink reports each heartbeat it sends.
type beatLink struct{ beats chan struct{} }

func (beatLink) Name() string             { return "test" }
func (beatLink) Recv([]byte) (int, error) { select {} }
func (beatLink) Close() error             { return nil }
func (l beatLink) Send([]byte) error {
	select {
	case l.beats <- struct{}{}:
	default:
	}
	return nil
}

// slowHandover returns once it has seen two heartbeats go out, or gives
// up after a while.
type slowHandover struct {
	beats chan struct{}
	saw   int
}

func (h *slowHandover) Hand(bool, time.Time) (ipvssync.HandoverStats, error) {
	give := time.After(5 * time.Second)
	for h.saw < 2 {
		select {
		case <-h.beats:
			h.saw++
		case <-give:
			return ipvssync.HandoverStats{}, nil
		}
	}
	return ipvssync.HandoverStats{}, nil
}

// A handover that takes several keepalives (a large table) does not
// silence the director: the peer would take it for dead.
func TestHandoverKeepsHeartbeating(t *testing.T) {
	beats := make(chan struct{}, 1)
	h := &slowHandover{beats: beats}
	cfg := NodeConfig{Key: testKey, Links: []heartbeat.Link{beatLink{beats}}, Handover: h}
	cfg.Node, cfg.Keepalive, cfg.Deadtime = "a", time.Millisecond, 4*time.Millisecond
	s := &state{n: &Node{cfg: cfg, log: slog.New(slog.DiscardHandler)}, el: NewElection(cfg.Params, time.Now()), links: make([]linkState, 1)}
	s.handOver(true)
	if h.saw < 2 {
		t.Errorf("%d heartbeats went out during the handover, want 2 or more", h.saw)
	}
}
