package group

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/directorlb/director/config"
	"github.com/directorlb/director/control"
	"github.com/directorlb/director/heartbeat"
)

var testKey = []byte("0123456789abcdef-group-test-key")

// bus is an in-memory multicast segment: a frame sent on one of its
// links arrives on every other, in order.
type bus struct {
	mu    sync.Mutex
	links []*busLink
}

type busLink struct {
	b      *bus
	name   string
	in     chan []byte
	closed chan struct{}
	once   sync.Once
}

func (b *bus) link(name string) *busLink {
	l := &busLink{b: b, name: name, in: make(chan []byte, 256), closed: make(chan struct{})}
	b.mu.Lock()
	b.links = append(b.links, l)
	b.mu.Unlock()
	return l
}

func (l *busLink) Name() string { return l.name }

func (l *busLink) Send(frame []byte) error {
	select {
	case <-l.closed:
		return net.ErrClosed
	default:
	}
	l.b.mu.Lock()
	defer l.b.mu.Unlock()
	for _, o := range l.b.links {
		if o != l {
			select {
			case o.in <- slices.Clone(frame):
			case <-o.closed:
			}
		}
	}
	return nil
}

func (l *busLink) Recv(buf []byte) (int, error) {
	select {
	case f := <-l.in:
		return copy(buf, f), nil
	case <-l.closed:
		return 0, fmt.Errorf("%s: %w", l.name, net.ErrClosed)
	}
}

func (l *busLink) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

// clock is a fake clock the test moves.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// syncBuffer is a log sink shared by the loop and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) count(sub string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Count(s.b.String(), sub)
}

// localVar is a Local the test changes.
type localVar struct {
	mu sync.Mutex
	l  Local
}

func (v *localVar) get() Local {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.l
}

func (v *localVar) set(l Local) {
	v.mu.Lock()
	v.l = l
	v.mu.Unlock()
}

// harness runs one Group on a bus, with a fake clock and ticks.
type harness struct {
	t      *testing.T
	g      *Group
	local  *localVar
	ticks  chan time.Time
	events chan event
	log    *syncBuffer
	errc   chan error
	cancel context.CancelFunc
}

func start(t *testing.T, b *bus, c *clock, node string, l Local) *harness {
	t.Helper()
	h := &harness{t: t, local: &localVar{l: l}, ticks: make(chan time.Time), events: make(chan event, 1024), log: &syncBuffer{}, errc: make(chan error, 1)}
	g, err := newGroup(Config{
		Node:   node,
		Key:    testKey,
		Logger: slog.New(slog.NewTextHandler(h.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}, h.local.get, []heartbeat.Link{b.link("bus " + node)})
	if err != nil {
		t.Fatal(err)
	}
	g.now = c.now
	g.observe = func(e event) { h.events <- e }
	h.g = g
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.errc <- g.run(ctx, h.ticks) }()
	t.Cleanup(h.stop)
	return h
}

func (h *harness) stop() {
	h.cancel()
	select {
	case err := <-h.errc:
		if err != nil {
			h.t.Errorf("run: %v", err)
		}
		h.errc <- nil // stop may be called twice
	case <-time.After(10 * time.Second):
		h.t.Error("run did not return within 10s of its context's end")
	}
}

// await waits for an event that ok accepts, skipping others.
func (h *harness) await(what string, ok func(event) bool) event {
	h.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case e := <-h.events:
			if ok(e) {
				return e
			}
		case <-timeout:
			h.t.Fatalf("no %s within 10s", what)
		}
	}
}

func (h *harness) awaitAccepted(node string) {
	h.t.Helper()
	h.await("frame of "+node+" accepted", func(e event) bool { return e.kind == evAccepted && e.node == node })
}

// awaitMember waits until node's frames make it what ok wants: it
// checks after each frame of node is taken.
func (h *harness) awaitMember(node string, ok func(control.GroupMember) bool) control.GroupMember {
	h.t.Helper()
	for {
		if m, found := h.member(node); found && ok(m) {
			return m
		}
		h.awaitAccepted(node)
	}
}

func (h *harness) tick() {
	h.t.Helper()
	select {
	case h.ticks <- time.Time{}:
	case <-time.After(10 * time.Second):
		h.t.Fatal("tick not taken within 10s")
	}
	h.await("tick handled", func(e event) bool { return e.kind == evTick })
}

func (h *harness) status() control.GroupStatus {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := h.g.Status(ctx)
	if err != nil {
		h.t.Fatalf("Status: %v", err)
	}
	return st
}

func (h *harness) member(node string) (control.GroupMember, bool) {
	for _, m := range h.status().Members {
		if m.Node == node {
			return m, true
		}
	}
	return control.GroupMember{}, false
}

// injector sends frames of its own making on the bus.
type injector struct {
	t    *testing.T
	link *busLink
	c    *clock
	boot uint64
	seq  uint64
}

func newInjector(t *testing.T, b *bus, c *clock) *injector {
	l := b.link("injector")
	t.Cleanup(func() { l.Close() })
	// Drain what others send, so that the bus never fills.
	go func() {
		for {
			select {
			case <-l.in:
			case <-l.closed:
				return
			}
		}
	}()
	return &injector{t: t, link: l, c: c, boot: 7}
}

// frame encodes m under key, filling in what m leaves zero.
func (in *injector) frame(key []byte, m heartbeat.GroupMessage) []byte {
	in.t.Helper()
	if m.Boot == 0 {
		m.Boot = in.boot
	}
	if m.Seq == 0 {
		in.seq++
		m.Seq = in.seq
	}
	if m.Time.IsZero() {
		m.Time = in.c.now()
	}
	if m.Interval == 0 {
		m.Interval = time.Second
	}
	b, err := heartbeat.EncodeGroup(key, m)
	if err != nil {
		in.t.Fatal(err)
	}
	return b
}

func (in *injector) send(b []byte) {
	in.t.Helper()
	if err := in.link.Send(b); err != nil {
		in.t.Fatal(err)
	}
}

var (
	digestA = [16]byte{0xa}
	digestB = [16]byte{0xb}
	vip1    = netip.MustParsePrefix("192.0.2.10/32")
	vip2    = netip.MustParsePrefix("2001:db8::10/128")
	vip3    = netip.MustParsePrefix("192.0.2.11/32")
)

func newClock() *clock { return &clock{t: time.Unix(1800000000, 0)} }

// Three directors on one segment learn one another: each lists the other
// two, with their VIPs and drain, and sees a change at once on Changed.
func TestMembersLearned(t *testing.T) {
	b, c := &bus{}, newClock()
	h1 := start(t, b, c, "lb1", Local{Digest: digestA, Announced: []netip.Prefix{vip2, vip1}})
	h2 := start(t, b, c, "lb2", Local{Digest: digestA, Announced: []netip.Prefix{vip1}, Drained: true})
	h3 := start(t, b, c, "lb3", Local{Digest: digestA})
	// Each sent at start; a tick each makes sure everyone heard everyone
	// whatever order they started in.
	for _, h := range []*harness{h1, h2, h3} {
		h.tick()
	}
	// A tick's wait skips the frames heard meanwhile: look at the
	// table first.
	known := func(control.GroupMember) bool { return true }
	h1.awaitMember("lb2", known)
	h1.awaitMember("lb3", known)
	h2.awaitMember("lb1", known)
	st := h1.status()
	if got, want := memberNodes(st), []string{"lb1", "lb2", "lb3"}; !slices.Equal(got, want) {
		t.Fatalf("members %v, want %v (self first)", got, want)
	}
	self, lb2, lb3 := st.Members[0], st.Members[1], st.Members[2]
	if !self.Self || !self.Alive || !slices.Equal(self.Announced, []string{"192.0.2.10/32", "2001:db8::10/128"}) {
		t.Errorf("self: %+v", self)
	}
	if !lb2.Alive || !lb2.Drained || !lb2.DigestMatch || !slices.Equal(lb2.Announced, []string{"192.0.2.10/32"}) || !lb2.LastSeen.Equal(c.now()) {
		t.Errorf("lb2: %+v", lb2)
	}
	if !lb3.Alive || lb3.Drained || lb3.Announced == nil || len(lb3.Announced) != 0 {
		t.Errorf("lb3: %+v", lb3)
	}
	if st.Mismatched != 0 || st.Digest != fmt.Sprintf("%x", digestA) {
		t.Errorf("status %+v", st)
	}
	if m, _ := h2.member("lb1"); !slices.Equal(m.Announced, []string{"192.0.2.10/32", "2001:db8::10/128"}) {
		t.Errorf("lb2 sees lb1 announce %v", m.Announced)
	}

	// lb2 is enabled again and announces another VIP: lb1 hears it
	// at once, without a tick.
	h2.local.set(Local{Digest: digestA, Announced: []netip.Prefix{vip1, vip3}})
	h2.g.Changed()
	h1.awaitMember("lb2", func(m control.GroupMember) bool {
		return !m.Drained && slices.Equal(m.Announced, []string{"192.0.2.10/32", "192.0.2.11/32"})
	})
}

func memberNodes(st control.GroupStatus) []string {
	var n []string
	for _, m := range st.Members {
		n = append(n, m.Node)
	}
	return n
}

// A member with another digest is counted and warned about once per
// change; the warning clears when it matches again, and comes back when
// this director's own digest changes away.
func TestMismatchDetectedAndCleared(t *testing.T) {
	b, c := &bus{}, newClock()
	h := start(t, b, c, "lb1", Local{Digest: digestA})
	in := newInjector(t, b, c)
	const warn = "member's service config or kernel differs"
	say := func(d [16]byte) {
		t.Helper()
		in.send(in.frame(testKey, heartbeat.GroupMessage{Node: "lb2", Digest: d}))
		h.awaitAccepted("lb2")
	}
	say(digestB)
	say(digestB)
	st := h.status()
	if st.Mismatched != 1 || st.Members[1].DigestMatch || st.Members[1].Digest != fmt.Sprintf("%x", digestB) {
		t.Fatalf("after a foreign digest: %+v", st)
	}
	if n := h.log.count(warn); n != 1 {
		t.Fatalf("%d warnings after the same foreign digest twice, want 1", n)
	}
	if n := h.log.count(fmt.Sprintf("%x", digestB)); n == 0 {
		t.Error("the warning does not name the member's digest")
	}
	say(digestA)
	if st := h.status(); st.Mismatched != 0 || !st.Members[1].DigestMatch {
		t.Fatalf("after a matching digest: %+v", st)
	}
	if n := h.log.count("matches this director's again"); n != 1 {
		t.Errorf("%d 'matches again', want 1", n)
	}
	// Our own digest changes (a reload): lb2 no longer matches.
	h.local.set(Local{Digest: digestB})
	h.g.Changed()
	h.await("poke handled", func(e event) bool { return e.kind == evSent })
	if st := h.status(); st.Mismatched != 1 {
		t.Fatalf("after our digest changed: %+v", st)
	}
	if n := h.log.count(warn); n != 2 {
		t.Fatalf("%d warnings after our digest changed, want 2", n)
	}
	// Ours changes again, still not lb2's: a new pair, a new warning.
	h.local.set(Local{Digest: [16]byte{0xc}})
	h.g.Changed()
	h.await("poke handled", func(e event) bool { return e.kind == evSent })
	if n := h.log.count(warn); n != 3 {
		t.Fatalf("%d warnings after our digest changed again, want 3", n)
	}
}

// A member not heard for three of its intervals is dead, kept in the
// list with when it was last seen, and said so once; it comes back when
// heard. A leaving member is dead at once.
func TestDeadAfterSilence(t *testing.T) {
	b, c := &bus{}, newClock()
	h := start(t, b, c, "lb1", Local{Digest: digestA})
	in := newInjector(t, b, c)
	in.send(in.frame(testKey, heartbeat.GroupMessage{Node: "lb2", Digest: digestB}))
	h.awaitAccepted("lb2")
	seen := c.now()
	c.advance(3 * time.Second)
	h.tick()
	if m, _ := h.member("lb2"); !m.Alive {
		t.Fatalf("dead at exactly 3 intervals: %+v", m)
	}
	c.advance(time.Millisecond)
	h.tick()
	st := h.status()
	if m := st.Members[1]; m.Alive || !m.LastSeen.Equal(seen) {
		t.Fatalf("after 3 intervals of silence: %+v, want dead, last seen %v", m, seen)
	}
	if st.Mismatched != 0 {
		t.Errorf("a dead member counted as mismatched: %+v", st)
	}
	h.tick()
	if n := h.log.count("member not heard"); n != 1 {
		t.Errorf("%d 'not heard' logs, want 1", n)
	}
	in.send(in.frame(testKey, heartbeat.GroupMessage{Node: "lb2", Digest: digestA}))
	h.awaitAccepted("lb2")
	if m, _ := h.member("lb2"); !m.Alive {
		t.Fatalf("heard again: %+v", m)
	}
	// Its own interval counts, not ours.
	in.send(in.frame(testKey, heartbeat.GroupMessage{Node: "lb2", Digest: digestA, Interval: 5 * time.Second}))
	h.awaitAccepted("lb2")
	c.advance(10 * time.Second)
	if m, _ := h.member("lb2"); !m.Alive {
		t.Fatalf("dead after 2 of its 5s intervals: %+v", m)
	}
	in.send(in.frame(testKey, heartbeat.GroupMessage{Node: "lb2", Digest: digestA, Leaving: true}))
	h.awaitAccepted("lb2")
	if m, _ := h.member("lb2"); m.Alive {
		t.Fatalf("alive after leaving: %+v", m)
	}
}

// A director that stops says it leaves: the others see it gone at once.
func TestLeavingOnStop(t *testing.T) {
	b, c := &bus{}, newClock()
	h1 := start(t, b, c, "lb1", Local{Digest: digestA})
	h2 := start(t, b, c, "lb2", Local{Digest: digestA})
	h2.tick()
	h1.awaitAccepted("lb2")
	h2.stop()
	// No tick and no clock moved: only lb2's last word makes it dead.
	h1.awaitMember("lb2", func(m control.GroupMember) bool { return !m.Alive })
}

// A frame heard again, or an older one, is refused: what it says does
// not replace what was heard since.
func TestReplayRefused(t *testing.T) {
	b, c := &bus{}, newClock()
	h := start(t, b, c, "lb1", Local{Digest: digestA})
	in := newInjector(t, b, c)
	old := in.frame(testKey, heartbeat.GroupMessage{Node: "lb2", Digest: digestA, Announced: []netip.Prefix{vip1}})
	in.send(old)
	h.awaitAccepted("lb2")
	in.send(in.frame(testKey, heartbeat.GroupMessage{Node: "lb2", Digest: digestA, Announced: []netip.Prefix{vip3}, Drained: true}))
	h.awaitAccepted("lb2")
	in.send(old)
	e := h.await("replay refused", func(e event) bool { return e.kind == evRefused || e.kind == evAccepted })
	if e.kind != evRefused || !errors.Is(e.err, heartbeat.ErrReplay) {
		t.Fatalf("replayed frame: %+v, want refused with ErrReplay", e)
	}
	if m, _ := h.member("lb2"); !m.Drained || !slices.Equal(m.Announced, []string{"192.0.2.11/32"}) {
		t.Fatalf("after a replay lb2 is %+v", m)
	}
	// A frame from an earlier boot, sent before the last: refused too.
	in.send(in.frame(testKey, heartbeat.GroupMessage{Node: "lb2", Boot: 1, Seq: 99, Time: c.now().Add(-time.Second)}))
	e = h.await("old boot refused", func(e event) bool { return e.kind == evRefused || e.kind == evAccepted })
	if e.kind != evRefused {
		t.Fatalf("an earlier boot's frame: %+v, want refused", e)
	}
	// A clock far off: refused and said.
	in.send(in.frame(testKey, heartbeat.GroupMessage{Node: "lb9", Time: c.now().Add(time.Hour)}))
	e = h.await("skew refused", func(e event) bool { return e.kind == evRefused || e.kind == evAccepted })
	if e.kind != evRefused || !errors.Is(e.err, heartbeat.ErrClockSkew) || h.log.count("clock is too far") != 1 {
		t.Fatalf("a frame an hour ahead: %+v", e)
	}
	if _, ok := h.member("lb9"); ok {
		t.Fatal("a member with a skewed clock listed")
	}
}

// Frames under another key, garbage, cut frames, a pair's heartbeats
// under the same key and our own name do not add or change members.
func TestForeignFramesHarmless(t *testing.T) {
	b, c := &bus{}, newClock()
	h := start(t, b, c, "lb1", Local{Digest: digestA})
	in := newInjector(t, b, c)
	good := in.frame(testKey, heartbeat.GroupMessage{Node: "lb2", Digest: digestA})
	pair, err := heartbeat.Encode(testKey, heartbeat.Message{Kind: heartbeat.KindHeartbeat, Node: "lb4", Role: heartbeat.RoleActive, Boot: 1, Seq: 1, Time: c.now()})
	if err != nil {
		t.Fatal(err)
	}
	frames := [][]byte{
		in.frame([]byte("another key, 16 bytes or more"), heartbeat.GroupMessage{Node: "lb3", Digest: digestB}),
		nil,
		[]byte("DRGP"),
		good[:len(good)-1],
		append(slices.Clone(good), 0),
		make([]byte, heartbeat.MaxGroupFrameSize+100),
		pair,
	}
	for _, f := range frames {
		in.send(f)
	}
	// Our own name from another boot: two directors share a name.
	in.send(in.frame(testKey, heartbeat.GroupMessage{Node: "lb1", Digest: digestB}))
	in.send(good)
	dropped := 0
	for {
		e := h.await("lb2 after the garbage", func(e event) bool { return true })
		if e.kind == evDropped {
			dropped++
		}
		if e.kind == evAccepted {
			if e.node != "lb2" {
				t.Fatalf("accepted a frame of %s", e.node)
			}
			break
		}
	}
	if dropped != len(frames) {
		t.Errorf("%d frames dropped, want %d", dropped, len(frames))
	}
	if got := memberNodes(h.status()); !slices.Equal(got, []string{"lb1", "lb2"}) {
		t.Fatalf("members %v, want [lb1 lb2]", got)
	}
	if h.log.count("failed authentication") != 1 {
		t.Error("a frame under another key is not warned about")
	}
	if h.log.count("two directors share a name") != 1 {
		t.Error("our own name from another director is not warned about")
	}
}

func TestStatusWhenNotRunning(t *testing.T) {
	b, c := &bus{}, newClock()
	h := start(t, b, c, "lb1", Local{})
	h.stop()
	if _, err := h.g.Status(context.Background()); err == nil {
		t.Fatal("Status of a stopped group answered")
	}
}

func TestNewRefuses(t *testing.T) {
	b := &bus{}
	for name, cfg := range map[string]Config{
		"no key":   {Node: "lb1"},
		"no name":  {Key: testKey},
		"bad name": {Node: "a\nb", Key: testKey},
	} {
		if _, err := newGroup(cfg, func() Local { return Local{} }, []heartbeat.Link{b.link(name)}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := newGroup(Config{Node: "lb1", Key: testKey}, func() Local { return Local{} }, nil); err == nil {
		t.Error("no links: accepted")
	}
	if _, err := newGroup(Config{Node: "lb1", Key: testKey}, nil, []heartbeat.Link{b.link("nil local")}); err == nil {
		t.Error("no local: accepted")
	}
	if _, err := New(Config{Node: "lb1", Key: testKey, Links: []heartbeat.LinkSpec{{Serial: "/dev/ttyS0"}}}, nil); err == nil {
		t.Error("a serial link: accepted")
	}
}

func TestDigest(t *testing.T) {
	cfg := &config.Config{Services: []config.Service{{Name: "web"}}}
	d := Digest(cfg, "6.1.0-18-amd64")
	if d != Digest(cfg, "6.1.0-18-amd64") {
		t.Fatal("Digest is not a function of its input")
	}
	if d == Digest(cfg, "6.1.0-19-amd64") {
		t.Error("another kernel, the same digest")
	}
	other := &config.Config{Services: []config.Service{{Name: "web2"}}}
	if d == Digest(other, "6.1.0-18-amd64") {
		t.Error("other services, the same digest")
	}
	if sd := cfg.ServicesDigest(); d == sd {
		t.Error("the group digest is the plain services digest")
	}
	if KernelRelease() == "" {
		t.Error("no kernel release")
	}
}
