package failover

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func drainTestRecords(n int) []DrainRecord {
	var recs []DrainRecord
	for i := range n {
		a := netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)})
		if i%3 == 2 {
			a = netip.MustParseAddr("2001:db8::11").Next()
		}
		recs = append(recs, DrainRecord{Service: "web-" + strings.Repeat("x", i%40), Server: netip.AddrPortFrom(a, uint16(80+i)),
			Drained: i%2 == 0, At: time.Unix(1700000000, int64(i))})
	}
	return recs
}

func TestDrainsRoundTrip(t *testing.T) {
	recs := drainTestRecords(200)
	parts := splitDrains(recs)
	if len(parts) < 2 {
		t.Fatalf("200 records in %d message(s); want them split", len(parts))
	}
	var got []DrainRecord
	for _, p := range parts {
		m := wireTestMessage()
		m.Kind, m.Drains, m.DrainDigest = KindDrains, p, DrainDigest(recs)
		b := wireMustEncode(t, m)
		if len(b) > MaxFrameSize {
			t.Fatalf("a frame of %d bytes, over %d", len(b), MaxFrameSize)
		}
		back, err := Decode(wireTestKey, b)
		if err != nil {
			t.Fatal(err)
		}
		if !wireSameMessage(back, m) {
			t.Fatalf("decoded %+v, want %+v", back, m)
		}
		got = append(got, back.Drains...)
	}
	if len(got) != len(recs) {
		t.Fatalf("%d records back, want %d", len(got), len(recs))
	}
	for i := range recs {
		if got[i].Service != recs[i].Service || got[i].Server != recs[i].Server || got[i].Drained != recs[i].Drained || !got[i].At.Equal(recs[i].At) {
			t.Fatalf("record %d: %+v, want %+v", i, got[i], recs[i])
		}
	}
	shuffled := slices.Clone(recs)
	slices.Reverse(shuffled)
	if DrainDigest(shuffled) != DrainDigest(recs) {
		t.Error("the digest depends on the order of the records")
	}
	recs[7].Drained = !recs[7].Drained
	if DrainDigest(shuffled) == DrainDigest(recs) {
		t.Error("the digest did not change with a record")
	}
}

func TestDrainsMalformed(t *testing.T) {
	one := []DrainRecord{{Service: "web", Server: netip.MustParseAddrPort("10.1.0.11:80"), Drained: true, At: time.Unix(1, 0)}}
	for _, tt := range []struct {
		name string
		edit func([]byte) []byte
	}{
		{"count past the end", func(p []byte) []byte { p[0] = 2; return p }},
		{"bytes after the last", func(p []byte) []byte { return append(p, 0) }},
		{"family 5", func(p []byte) []byte { p[1+1+3] = 5; return p }},
		{"drained 2", func(p []byte) []byte { p[len(p)-9] = 2; return p }},
		{"service with a capital", func(p []byte) []byte { p[2] = 'W'; return p }},
		{"service with an escape", func(p []byte) []byte { p[2] = 0x1b; return p }},
		{"empty service", func(p []byte) []byte { p[1] = 0; return p }},
		{"empty payload", func(p []byte) []byte { return p[:0] }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := appendDrains(nil, one)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := parseDrains(tt.edit(p)); !errors.Is(err, errDrainPayload) {
				t.Fatalf("parse: %v, want a refusal", err)
			}
		})
	}
	// A payload on a heartbeat is refused after the MAC, as malformed.
	m := wireTestMessage()
	m.Kind, m.Drains = KindDrains, one
	b := wireMustEncode(t, m)
	b[wireOffKind] = byte(KindHeartbeat)
	if _, err := Decode(wireTestKey, wireRemac(wireTestKey, b)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("a heartbeat with a payload: %v, want malformed", err)
	}
	m.Kind = KindHeartbeat
	if _, err := Encode(wireTestKey, m); err == nil {
		t.Fatal("encoded drain records on a heartbeat")
	}
}

func TestDrainRecordNewer(t *testing.T) {
	at := time.Unix(100, 0)
	drained := DrainRecord{Drained: true, At: at}
	enabled := DrainRecord{Drained: false, At: at}
	if !drained.Newer(enabled) || enabled.Newer(drained) {
		t.Error("at the same instant a drain must win")
	}
	later := DrainRecord{Drained: false, At: at.Add(time.Nanosecond)}
	if !later.Newer(drained) || drained.Newer(later) {
		t.Error("the later decision must win")
	}
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
		return b[wireOffKind] == byte(KindDrains) && lost.CompareAndSwap(0, 1)
	}
	got := make(chan []DrainRecord, 16)
	mk := func(name string, prio uint8, l Link, on func([]DrainRecord)) *Node {
		n, err := NewNode(NodeConfig{
			Params:    Params{Node: name, Priority: prio, Deadtime: 200 * time.Millisecond, Initdead: 200 * time.Millisecond},
			Keepalive: 50 * time.Millisecond, Key: wireTestKey, Links: []Link{l}, OnDrains: on,
			Log: slog.New(slog.DiscardHandler),
		})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	a := mk("a", 200, la, func([]DrainRecord) {})
	b := mk("b", 100, lb, func(r []DrainRecord) { got <- r })
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, n := range []*Node{a, b} {
		wg.Add(1)
		go func() { defer wg.Done(); _ = n.Run(ctx) }()
	}
	defer func() { cancel(); wg.Wait() }()

	rec := DrainRecord{Service: "web", Server: netip.MustParseAddrPort("10.1.0.11:80"), Drained: true, At: time.Now()}
	start := time.Now()
	if err := a.SetDrains(ctx, []DrainRecord{rec}); err != nil {
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
	cfg := NodeConfig{Key: wireTestKey, Links: []Link{link}, VIPs: &l, Sync: &l}
	cfg.Node, cfg.Keepalive, cfg.Deadtime = "b", time.Hour, 2*time.Hour
	n := &Node{cfg: cfg, log: slog.New(slog.DiscardHandler)}
	s := &state{n: n, el: NewElection(cfg.Params, time.Now()), links: make([]linkState, 1)}
	for i := range 100 {
		s.setDrains([]DrainRecord{{Service: "web", Server: netip.MustParseAddrPort("10.1.0.11:80"), Drained: i%2 == 0, At: time.Unix(int64(i), 0)}}, time.Now())
	}
	if link.drains != 1 {
		t.Fatalf("%d messages of drain records for 100 changes within a keepalive, want 1 now", link.drains)
	}
	s.sendPendingDrains(time.Now())
	s.sendPendingDrains(time.Now())
	if link.drains != 2 {
		t.Fatalf("%d messages after the tick, want the pending set once more", link.drains)
	}
	m, err := Decode(wireTestKey, link.last)
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
	if b[wireOffKind] == byte(KindDrains) {
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
	cfg := NodeConfig{Key: wireTestKey, Links: []Link{link}, VIPs: &l, Sync: &l}
	cfg.Node, cfg.Keepalive, cfg.Deadtime = "b", 50*time.Millisecond, 200*time.Millisecond
	s := &state{n: &Node{cfg: cfg, log: slog.New(slog.DiscardHandler)}, el: NewElection(cfg.Params, time.Now()), links: make([]linkState, 1)}
	s.el.SetRole(RoleStandby, t0)
	s.drains.set([]DrainRecord{{Service: "web", Server: netip.MustParseAddrPort("10.1.0.11:80"), Drained: true, At: time.Unix(5, 0)}})
	lastVersion := func() byte { return link.frames[len(link.frames)-1][wireOffVersion] }

	now := time.Now()
	old := Message{Kind: KindHeartbeat, Node: "a", Priority: 200, Role: RoleActive, Boot: 1, Seq: 1, Time: now, Version: 1}
	frame := wireMustEncode(t, old)
	if frame[wireOffVersion] != 1 || len(frame) != wireLegacyOffName+1+wireMACSize {
		t.Fatalf("a version 1 frame of %d bytes, version %d", len(frame), frame[wireOffVersion])
	}
	back, err := Decode(wireTestKey, frame)
	if err != nil || back.Version != 1 {
		t.Fatalf("decode version 1: %+v %v", back, err)
	}
	s.heard(context.Background(), received{msg: back, at: now})
	s.send(KindHeartbeat)
	if v := lastVersion(); v != 1 {
		t.Fatalf("answered a version 1 peer in version %d", v)
	}
	before := len(link.frames)
	s.sendDrains(now)
	if len(link.frames) != before {
		t.Fatal("sent drain records to a peer that cannot read them")
	}
	// The peer is upgraded and restarts.
	upgraded := Message{Kind: KindHeartbeat, Node: "a", Priority: 200, Role: RoleStandby, Boot: 2, Seq: 1, Time: now.Add(time.Millisecond)}
	s.heard(context.Background(), received{msg: upgraded, at: now.Add(time.Millisecond)})
	s.send(KindHeartbeat)
	if v := lastVersion(); v != wireVersion {
		t.Fatalf("answered an upgraded peer in version %d", v)
	}
}

// frameLink keeps every frame sent on it.
type frameLink struct{ frames [][]byte }

func (l *frameLink) Name() string             { return "frames" }
func (l *frameLink) Send(b []byte) error      { l.frames = append(l.frames, bytes.Clone(b)); return nil }
func (l *frameLink) Recv([]byte) (int, error) { return 0, net.ErrClosed }
func (l *frameLink) Close() error             { return nil }
