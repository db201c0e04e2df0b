package announce

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/directorlb/director/bgp"
	"github.com/directorlb/director/config"
	"github.com/directorlb/director/director"
)

// fakeSpeaker records what it was told; its peers confirm a withdrawal
// when confirm is set.
type fakeSpeaker struct {
	mu        sync.Mutex
	announced map[netip.Prefix]bool
	log       []string
	confirm   bool
	received  uint64
}

func (s *fakeSpeaker) Announce(_ context.Context, p netip.Prefix) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.announced[p] = true
	s.log = append(s.log, "announce "+p.String())
	return nil
}

func (s *fakeSpeaker) Withdraw(_ context.Context, p netip.Prefix) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.announced, p)
	s.log = append(s.log, "withdraw "+p.String())
	return nil
}

func (s *fakeSpeaker) Peers(context.Context) ([]bgp.PeerStatus, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.confirm {
		s.received++ // the router's next keepalive
	}
	return []bgp.PeerStatus{{Address: netip.MustParseAddr("10.0.1.1"), State: "established",
		PrefixesSent: uint64(len(s.announced)), Received: s.received}}, nil
}

func (s *fakeSpeaker) now() map[netip.Prefix]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[netip.Prefix]bool{}
	for p := range s.announced {
		out[p] = true
	}
	return out
}

type fakeAddrs struct {
	mu   sync.Mutex
	held map[string]bool
	fail error
}

func (a *fakeAddrs) Hold(iface string, p netip.Prefix) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.fail != nil {
		return a.fail
	}
	a.held[iface+" "+p.String()] = true
	return nil
}

func (a *fakeAddrs) Drop(iface string, p netip.Prefix) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.held, iface+" "+p.String())
	return nil
}

// rig runs an announcer over fakes; view is what the director reports.
type rig struct {
	sp      *fakeSpeaker
	addrs   *fakeAddrs
	ann     *Announcer
	changed chan struct{}
	mu      sync.Mutex
	view    director.Status
	cfg     *config.Config
	stop    func()
}

func newRig(t *testing.T, statePath string, fail error) *rig {
	t.Helper()
	r := &rig{
		sp:      &fakeSpeaker{announced: map[netip.Prefix]bool{}},
		addrs:   &fakeAddrs{held: map[string]bool{}, fail: fail},
		changed: make(chan struct{}, 16),
		cfg:     parse(t, testConfig),
	}
	r.view = status(r.cfg, map[string]servers{"web": {up(1), up(1), up(1)}, "tls": {up(1), up(1)}, "dns6": {up(1)}})
	r.ann = New(Options{
		Speaker: r.sp,
		View: func(context.Context) (director.Status, error) {
			r.mu.Lock()
			defer r.mu.Unlock()
			return r.view, nil
		},
		Config:    func() *config.Config { return r.cfg },
		Addrs:     r.addrs,
		StatePath: statePath,
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnChange:  func() { r.changed <- struct{}{} },
		Every:     time.Hour, // only pokes decide, so each step is awaited
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = r.ann.Run(ctx); close(done) }()
	r.stop = func() { cancel(); <-done }
	t.Cleanup(r.stop)
	return r
}

func (r *rig) setView(svcs map[string]servers) {
	r.mu.Lock()
	r.view = status(r.cfg, svcs)
	r.mu.Unlock()
	r.ann.Poke()
}

func (r *rig) await(t *testing.T) {
	t.Helper()
	select {
	case <-r.changed:
	case <-time.After(5 * time.Second):
		t.Fatal("no change of announcements")
	}
}

var (
	v4 = netip.MustParsePrefix("192.0.2.10/32")
	v6 = netip.MustParsePrefix("2001:db8::53/128")
)

func TestAnnouncerFollowsHealth(t *testing.T) {
	r := newRig(t, "", nil)
	r.await(t)
	if got := r.sp.now(); !got[v4] || !got[v6] {
		t.Fatalf("announced %v, want both VIPs", got)
	}
	if !r.addrs.held["lo "+v4.String()] || !r.addrs.held["lo "+v6.String()] {
		t.Errorf("VIPs held %v, want both on lo", r.addrs.held)
	}
	r.setView(map[string]servers{"web": {down, down, down}, "tls": {down, down}, "dns6": {up(1)}})
	r.await(t)
	if got := r.sp.now(); got[v4] || !got[v6] {
		t.Errorf("announced %v, want only %v", got, v6)
	}
	// Withdrawn, the VIP stays on lo: flows still arriving are forwarded.
	if !r.addrs.held["lo "+v4.String()] {
		t.Error("the withdrawn VIP was taken off lo")
	}
	r.setView(map[string]servers{"web": {up(1), down, down}, "tls": {down, down}, "dns6": {up(1)}})
	r.await(t)
	if got := r.sp.now(); !got[v4] {
		t.Errorf("announced %v after a recovery, want %v back", got, v4)
	}
	if l := r.ann.Local(); len(l.Announced) != 2 {
		t.Errorf("Local().Announced = %v", l.Announced)
	}
}

func TestAnnouncerWithdrawsBeforeAnnouncing(t *testing.T) {
	r := newRig(t, "", nil)
	r.await(t)
	r.sp.mu.Lock()
	r.sp.log = nil
	r.sp.mu.Unlock()
	// A reload moves the service to a new VIP: the old one goes first.
	r.cfg = parse(t, strings.ReplaceAll(testConfig, "2001:db8::53", "2001:db8::54"))
	r.setView(map[string]servers{"web": {up(1), up(1), up(1)}, "tls": {up(1), up(1)}, "dns6": {up(1)}})
	r.await(t)
	r.sp.mu.Lock()
	defer r.sp.mu.Unlock()
	want := []string{"withdraw 2001:db8::53/128", "announce 2001:db8::54/128"}
	if strings.Join(r.sp.log, ",") != strings.Join(want, ",") {
		t.Errorf("speaker told %v, want %v", r.sp.log, want)
	}
	if r.addrs.held["lo 2001:db8::53/128"] {
		t.Error("the VIP no longer configured is still held on lo")
	}
}

func TestDrainNodeSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "node-drain.json")
	r := newRig(t, path, nil)
	r.await(t)
	ctx := context.Background()
	if err := r.ann.SetDrained(ctx, true); err != nil {
		t.Fatal(err)
	}
	if got := r.sp.now(); len(got) != 0 {
		t.Errorf("drained, still announcing %v", got)
	}
	st, err := r.ann.Status(ctx)
	if err != nil || !st.Drained {
		t.Fatalf("status %+v, %v: want drained", st, err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("drain record: %v %v, want 0600", fi, err)
	}
	r.stop()

	// A restart comes back drained, announcing nothing.
	r2 := newRig(t, path, nil)
	st, err = r2.ann.Status(ctx)
	if err != nil || !st.Drained {
		t.Fatalf("after a restart: %+v, %v: want drained", st, err)
	}
	if got := r2.sp.now(); len(got) != 0 {
		t.Errorf("after a restart, drained, announcing %v", got)
	}
	if err := r2.ann.SetDrained(ctx, false); err != nil {
		t.Fatal(err)
	}
	if got := r2.sp.now(); !got[v4] || !got[v6] {
		t.Errorf("enabled, announcing %v, want both", got)
	}
}

func TestNoAnnouncementWithoutTheVIPHeld(t *testing.T) {
	r := newRig(t, "", errors.New("no such interface"))
	st, err := r.ann.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := r.sp.now(); len(got) != 0 {
		t.Errorf("announced %v without holding the VIPs", got)
	}
	for _, v := range st.VIPs {
		if v.Announced || !strings.Contains(v.Reason, "no such interface") {
			t.Errorf("%+v: want not announced, saying why", v)
		}
	}
}

func TestLeave(t *testing.T) {
	t.Run("peers confirm", func(t *testing.T) {
		r := newRig(t, "", nil)
		r.await(t)
		r.sp.mu.Lock()
		r.sp.confirm = true
		r.sp.mu.Unlock()
		start := time.Now()
		if err := r.ann.Leave(context.Background(), time.Minute); err != nil {
			t.Fatal(err)
		}
		if time.Since(start) > 30*time.Second {
			t.Error("Leave waited for drain_time though the peer confirmed")
		}
		if got := r.sp.now(); len(got) != 0 {
			t.Errorf("left, still announcing %v", got)
		}
		st, _ := r.ann.Status(context.Background())
		if !st.Stopping {
			t.Error("status does not say stopping")
		}
	})
	t.Run("silent peer: drain_time", func(t *testing.T) {
		r := newRig(t, "", nil)
		r.await(t)
		// The peer never sends anything after the withdrawal.
		const drain = 300 * time.Millisecond
		start := time.Now()
		if err := r.ann.Leave(context.Background(), drain); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took < drain {
			t.Errorf("Leave returned after %v, before drain_time %v with no confirmation", took, drain)
		}
	})
}

// peerSpeaker answers Peers with a state the test sets.
type peerSpeaker struct {
	fakeSpeaker
	state string
}

func (s *peerSpeaker) Peers(context.Context) ([]bgp.PeerStatus, error) {
	return []bgp.PeerStatus{{Address: netip.MustParseAddr("10.0.1.1"), State: s.state}}, nil
}

// Sessions are logged when they come up and go down, and once when one
// has not come up within the grace after the start; not at every look.
func TestWatchPeersLogs(t *testing.T) {
	var buf strings.Builder
	now := time.Unix(1000, 0)
	sp := &peerSpeaker{fakeSpeaker: fakeSpeaker{announced: map[netip.Prefix]bool{}}, state: "active"}
	a := New(Options{Speaker: sp, Logger: slog.New(slog.NewTextHandler(&buf, nil)), Now: func() time.Time { return now }})
	st := &state{peers: map[netip.Addr]string{}, peerWarned: map[netip.Addr]bool{}, started: now}
	ctx := context.Background()
	look := func(state string, after time.Duration) string {
		sp.state = state
		now = now.Add(after)
		buf.Reset()
		a.watchPeers(ctx, st)
		return buf.String()
	}
	if out := look("active", time.Second); out != "" {
		t.Errorf("within the grace: logged %q", out)
	}
	if out := look("active", sessionGrace); !strings.Contains(out, "session not established") || !strings.Contains(out, "is it up") {
		t.Errorf("after the grace: logged %q, want the session not established, with what to check", out)
	}
	if out := look("active", time.Second); out != "" {
		t.Errorf("still down: logged again %q", out)
	}
	if out := look("established", time.Second); !strings.Contains(out, "session established") {
		t.Errorf("up: logged %q", out)
	}
	if out := look("established", time.Second); out != "" {
		t.Errorf("still up: logged again %q", out)
	}
	if out := look("idle", time.Second); !strings.Contains(out, "level=WARN") || !strings.Contains(out, "session down") {
		t.Errorf("down: logged %q", out)
	}
}
