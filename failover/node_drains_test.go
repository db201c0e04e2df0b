package failover

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/directorlb/director/heartbeat"
)

// sent reads a frame a node sent, as its peer would.
func sent(b []byte) heartbeat.Message {
	m, _ := heartbeat.Decode(testKey, b)
	return m
}

// pipeLink is one end of an in-memory link; drop, when set, loses the
// frames it says.
type pipeLink struct {
	name   string
	in     chan []byte
	out    chan []byte
	closed chan struct{}
	once   *sync.Once
	drop   func([]byte) bool
}

func pipeLinks() (*pipeLink, *pipeLink) {
	ab, ba := make(chan []byte, 256), make(chan []byte, 256)
	closed, once := make(chan struct{}), new(sync.Once)
	return &pipeLink{name: "pipe a", in: ba, out: ab, closed: closed, once: once}, &pipeLink{name: "pipe b", in: ab, out: ba, closed: closed, once: once}
}

func (l *pipeLink) Name() string { return l.name }
func (l *pipeLink) Send(b []byte) error {
	if l.drop != nil && l.drop(b) {
		return nil
	}
	select {
	case l.out <- bytes.Clone(b):
	default:
	}
	return nil
}
func (l *pipeLink) Recv(buf []byte) (int, error) {
	select {
	case b := <-l.in:
		return copy(buf, b), nil
	case <-l.closed:
		return 0, net.ErrClosed
	}
}
func (l *pipeLink) Close() error { l.once.Do(func() { close(l.closed) }); return nil }

// Two nodes agree on their drain records: what one is given reaches the
// other at once, and a record lost on the way is sent again because the
// heartbeats' digests differ.
func TestNodesShareDrains(t *testing.T) {
	la, lb := pipeLinks()
	var lost atomic.Int32
	la.drop = func(b []byte) bool {
		// Lose the first message of drain records a sends.
		return sent(b).Kind == heartbeat.KindDrains && lost.CompareAndSwap(0, 1)
	}
	got := make(chan []heartbeat.DrainRecord, 16)
	mk := func(name string, prio uint8, l heartbeat.Link, on func([]heartbeat.DrainRecord)) *Node {
		n, err := NewNode(NodeConfig{
			Params:    Params{Node: name, Priority: prio, Deadtime: 200 * time.Millisecond, Initdead: 200 * time.Millisecond},
			Keepalive: 50 * time.Millisecond, Key: testKey, Links: []heartbeat.Link{l}, OnDrains: on,
			Log: slog.New(slog.DiscardHandler),
		})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	a := mk("a", 200, la, func([]heartbeat.DrainRecord) {})
	b := mk("b", 100, lb, func(r []heartbeat.DrainRecord) { got <- r })
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, n := range []*Node{a, b} {
		wg.Add(1)
		go func() { defer wg.Done(); _ = n.Run(ctx) }()
	}
	defer func() { cancel(); wg.Wait() }()

	rec := heartbeat.DrainRecord{Service: "web", Server: netip.MustParseAddrPort("10.1.0.11:80"), Drained: true, At: time.Now()}
	start := time.Now()
	if err := a.SetDrains(ctx, []heartbeat.DrainRecord{rec}); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-got:
		if len(r) != 1 || r[0].Service != rec.Service || r[0].Server != rec.Server || !r[0].Drained || !r[0].At.Equal(rec.At) {
			t.Fatalf("b was given %+v, want %+v", r, rec)
		}
		if lost.Load() != 1 {
			t.Fatal("the first message was not lost; the test proves nothing")
		}
		t.Logf("b has the record %v after its first copy was lost", time.Since(start).Round(time.Millisecond))
	case <-time.After(10 * time.Second):
		t.Fatal("b never heard of the drain")
	}
}

// A burst of changes goes out as one set a keepalive, the last one.
func TestSetDrainsCoalesces(t *testing.T) {
	var l stepLog
	link := &countLink{}
	cfg := NodeConfig{Key: testKey, Links: []heartbeat.Link{link}, VIPs: &l, Sync: &l}
	cfg.Node, cfg.Keepalive, cfg.Deadtime = "b", time.Hour, 2*time.Hour
	n := &Node{cfg: cfg, log: slog.New(slog.DiscardHandler)}
	s := &state{n: n, el: NewElection(cfg.Params, time.Now()), links: make([]linkState, 1)}
	for i := range 100 {
		s.setDrains([]heartbeat.DrainRecord{{Service: "web", Server: netip.MustParseAddrPort("10.1.0.11:80"), Drained: i%2 == 0, At: time.Unix(int64(i), 0)}}, time.Now())
	}
	if link.drains != 1 {
		t.Fatalf("%d messages of drain records for 100 changes within a keepalive, want 1 now", link.drains)
	}
	s.sendPendingDrains(time.Now())
	s.sendPendingDrains(time.Now())
	if link.drains != 2 {
		t.Fatalf("%d messages after the tick, want the pending set once more", link.drains)
	}
	m, err := heartbeat.Decode(testKey, link.last)
	if err != nil || len(m.Drains) != 1 || m.Drains[0].At.Unix() != 99 {
		t.Fatalf("the pending set sent is %+v (%v), want the last change", m.Drains, err)
	}
}

// countLink counts the messages of drain records sent on it.
type countLink struct {
	drains int
	last   []byte
}

func (l *countLink) Name() string { return "count" }
func (l *countLink) Send(b []byte) error {
	if sent(b).Kind == heartbeat.KindDrains {
		l.drains++
		l.last = bytes.Clone(b)
	}
	return nil
}
func (l *countLink) Recv([]byte) (int, error) { return 0, net.ErrClosed }
func (l *countLink) Close() error             { return nil }

// A peer of an earlier release (heartbeat version 1) is answered in
// version 1, without drain records, and in the current version again
// once it speaks it: a pair upgraded one director at a time never stops
// hearing itself.
func TestAnswersInThePeersVersion(t *testing.T) {
	var l stepLog
	link := &frameLink{}
	cfg := NodeConfig{Key: testKey, Links: []heartbeat.Link{link}, VIPs: &l, Sync: &l}
	cfg.Node, cfg.Keepalive, cfg.Deadtime = "b", 50*time.Millisecond, 200*time.Millisecond
	s := &state{n: &Node{cfg: cfg, log: slog.New(slog.DiscardHandler)}, el: NewElection(cfg.Params, time.Now()), links: make([]linkState, 1)}
	s.el.SetRole(heartbeat.RoleStandby, t0)
	s.drains.set([]heartbeat.DrainRecord{{Service: "web", Server: netip.MustParseAddrPort("10.1.0.11:80"), Drained: true, At: time.Unix(5, 0)}})
	lastVersion := func() uint8 { return sent(link.frames[len(link.frames)-1]).Version }

	now := time.Now()
	old := heartbeat.Message{Kind: heartbeat.KindHeartbeat, Node: "a", Priority: 200, Role: heartbeat.RoleActive, Boot: 1, Seq: 1, Time: now, Version: 1}
	frame, err := heartbeat.Encode(testKey, old)
	if err != nil {
		t.Fatal(err)
	}
	// A version 1 frame with a one-byte name is the shortest there is;
	// its version is read back below.
	if len(frame) != heartbeat.MinFrameSize {
		t.Fatalf("a version 1 frame of %d bytes, want %d", len(frame), heartbeat.MinFrameSize)
	}
	back, err := heartbeat.Decode(testKey, frame)
	if err != nil || back.Version != 1 {
		t.Fatalf("decode version 1: %+v %v", back, err)
	}
	s.heard(context.Background(), received{msg: back, at: now})
	s.send(heartbeat.KindHeartbeat)
	if v := lastVersion(); v != 1 {
		t.Fatalf("answered a version 1 peer in version %d", v)
	}
	before := len(link.frames)
	s.sendDrains(now)
	if len(link.frames) != before {
		t.Fatal("sent drain records to a peer that cannot read them")
	}
	// The peer is upgraded and restarts.
	upgraded := heartbeat.Message{Kind: heartbeat.KindHeartbeat, Node: "a", Priority: 200, Role: heartbeat.RoleStandby, Boot: 2, Seq: 1, Time: now.Add(time.Millisecond)}
	s.heard(context.Background(), received{msg: upgraded, at: now.Add(time.Millisecond)})
	s.send(heartbeat.KindHeartbeat)
	if v := lastVersion(); v != 0 { // 0: the current version (Message.Version)
		t.Fatalf("answered an upgraded peer in version %d", v)
	}
}

// frameLink keeps every frame sent on it.
type frameLink struct{ frames [][]byte }

func (l *frameLink) Name() string             { return "frames" }
func (l *frameLink) Send(b []byte) error      { l.frames = append(l.frames, bytes.Clone(b)); return nil }
func (l *frameLink) Recv([]byte) (int, error) { return 0, net.ErrClosed }
func (l *frameLink) Close() error             { return nil }
