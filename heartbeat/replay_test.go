package heartbeat

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

var replayNow = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func replayHB(node string, boot, seq uint64, at time.Time) Message {
	m := wireTestMessage()
	m.Node, m.Boot, m.Seq, m.Time = node, boot, seq, at
	return m
}

// replayStep is one Check and the error it must wrap (nil: accepted).
type replayStep struct {
	m    Message
	now  time.Time
	want error
}

func replayRun(t *testing.T, g *ReplayGuard, steps []replayStep) {
	t.Helper()
	for i, s := range steps {
		err := g.Check(s.m, s.now)
		if s.want == nil && err != nil {
			t.Fatalf("step %d: Check(%s boot %d seq %d at %s) = %v, want it accepted", i, s.m.Node, s.m.Boot, s.m.Seq, s.m.Time, err)
		}
		if s.want != nil && !errors.Is(err, s.want) {
			t.Fatalf("step %d: Check(%s boot %d seq %d at %s) = %v, want %v", i, s.m.Node, s.m.Boot, s.m.Seq, s.m.Time, err, s.want)
		}
	}
}

func TestReplayGuard(t *testing.T) {
	now := replayNow
	sec := func(n int) time.Time { return now.Add(time.Duration(n) * time.Second) }
	tests := []struct {
		name    string
		maxSkew time.Duration
		steps   []replayStep
	}{
		{"increasing sequence", 0, []replayStep{
			{replayHB("a", 1, 1, sec(0)), sec(0), nil},
			{replayHB("a", 1, 2, sec(1)), sec(1), nil},
			{replayHB("a", 1, 10, sec(2)), sec(2), nil},
		}},
		{"same sequence again", 0, []replayStep{
			{replayHB("a", 1, 5, sec(0)), sec(0), nil},
			{replayHB("a", 1, 5, sec(0)), sec(0), ErrReplay},
		}},
		{"older sequence", 0, []replayStep{
			{replayHB("a", 1, 5, sec(0)), sec(0), nil},
			{replayHB("a", 1, 4, sec(1)), sec(1), ErrReplay},
		}},
		// Within a boot, the sequence decides, not the sender's clock,
		// which may be stepped back.
		{"same boot, later sequence, earlier time", 0, []replayStep{
			{replayHB("a", 1, 5, sec(3)), sec(3), nil},
			{replayHB("a", 1, 6, sec(1)), sec(3), nil},
		}},
		{"restart: new boot, sequence from 1, later time", 0, []replayStep{
			{replayHB("a", 1, 900, sec(0)), sec(0), nil},
			{replayHB("a", 2, 1, sec(5)), sec(5), nil},
			{replayHB("a", 2, 2, sec(6)), sec(6), nil},
		}},
		{"old boot replayed after a restart", 0, []replayStep{
			{replayHB("a", 1, 900, sec(0)), sec(0), nil},
			{replayHB("a", 2, 1, sec(5)), sec(5), nil},
			{replayHB("a", 1, 901, sec(1)), sec(6), ErrReplay},
		}},
		{"new boot at the same time", 0, []replayStep{
			{replayHB("a", 1, 1, sec(0)), sec(0), nil},
			{replayHB("a", 2, 1, sec(0)), sec(0), ErrReplay},
		}},
		{"time ahead of ours beyond the default skew", 0, []replayStep{
			{replayHB("a", 1, 1, sec(31)), sec(0), ErrClockSkew},
		}},
		{"time behind ours beyond the default skew", 0, []replayStep{
			{replayHB("a", 1, 1, sec(-31)), sec(0), ErrClockSkew},
		}},
		{"time exactly the default skew away", 0, []replayStep{
			{replayHB("a", 1, 1, sec(30)), sec(0), nil},
			{replayHB("a", 1, 2, sec(0)), sec(30), nil},
		}},
		{"configured skew", 2 * time.Second, []replayStep{
			{replayHB("a", 1, 1, sec(3)), sec(0), ErrClockSkew},
			{replayHB("a", 1, 2, sec(-3)), sec(0), ErrClockSkew},
			{replayHB("a", 1, 3, sec(2)), sec(0), nil},
		}},
		{"skewed message is not recorded", 0, []replayStep{
			{replayHB("a", 1, 5, sec(0)), sec(0), nil},
			{replayHB("a", 1, 10, sec(100)), sec(1), ErrClockSkew},
			{replayHB("a", 1, 6, sec(1)), sec(1), nil},
		}},
		{"replay is not recorded", 0, []replayStep{
			{replayHB("a", 1, 5, sec(10)), sec(10), nil},
			{replayHB("a", 2, 1, sec(9)), sec(10), ErrReplay},
			// Had boot 2 been recorded, boot 1 would now be a new boot
			// needing a time after 9s; it is still boot 1 by sequence.
			{replayHB("a", 1, 6, sec(8)), sec(10), nil},
		}},
		{"senders are independent", 0, []replayStep{
			{replayHB("a", 1, 5, sec(0)), sec(0), nil},
			{replayHB("b", 1, 1, sec(0)), sec(0), nil},
			{replayHB("b", 1, 2, sec(0)), sec(0), nil},
			{replayHB("a", 1, 5, sec(0)), sec(0), ErrReplay},
			{replayHB("a", 1, 6, sec(0)), sec(0), nil},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			replayRun(t, &ReplayGuard{MaxSkew: tt.maxSkew}, tt.steps)
		})
	}
}

func TestReplayGuardForgetsLeastRecentSender(t *testing.T) {
	var g ReplayGuard
	now := replayNow
	for i := range replaySenders {
		replayRun(t, &g, []replayStep{{replayHB(fmt.Sprint("n", i), 1, 10, now), now, nil}})
	}
	// n0 is the oldest by insertion, but accepting it again makes n1
	// the least recently accepted.
	replayRun(t, &g, []replayStep{
		{replayHB("n0", 1, 11, now), now, nil},
		{replayHB("newcomer", 1, 1, now), now, nil},
		{replayHB("n1", 1, 10, now), now, nil},       // forgotten: accepted afresh
		{replayHB("n0", 1, 11, now), now, ErrReplay}, // remembered
		{replayHB("newcomer", 1, 1, now), now, ErrReplay},
	})
}

func TestReplayGuardBoundsSenders(t *testing.T) {
	var g ReplayGuard
	for i := range 1000 {
		if err := g.Check(replayHB(fmt.Sprint("forged-", i), 1, 1, replayNow), replayNow); err != nil {
			t.Fatalf("sender %d: %v", i, err)
		}
	}
	if len(g.senders) > replaySenders {
		t.Fatalf("guard holds %d senders, at most %d", len(g.senders), replaySenders)
	}
	// The latest are still remembered.
	if err := g.Check(replayHB("forged-999", 1, 1, replayNow), replayNow); !errors.Is(err, ErrReplay) {
		t.Fatalf("latest sender forgotten: %v", err)
	}
}

// TestReplayGuardConcurrent: the same message arriving on several links
// at once is accepted exactly once.
func TestReplayGuardConcurrent(t *testing.T) {
	var g ReplayGuard
	for seq := uint64(1); seq <= 50; seq++ {
		m := replayHB("a", 7, seq, replayNow)
		var wg sync.WaitGroup
		var mu sync.Mutex
		accepted := 0
		for range 4 {
			wg.Go(func() {
				if g.Check(m, replayNow) == nil {
					mu.Lock()
					accepted++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if accepted != 1 {
			t.Fatalf("seq %d accepted %d times, want once", seq, accepted)
		}
	}
}
