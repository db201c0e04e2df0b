package liveness

import (
	"testing"
	"time"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestStalledLoopFailsUntilItBeatsAgain(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	ls := New()
	ls.now = c.now
	rec := ls.Register("reconcile", 10*time.Second)
	hb := ls.Register("heartbeat", 2*time.Second)

	c.t = c.t.Add(time.Second)
	if _, ok := ls.Check(); !ok {
		t.Fatal("fresh loops reported stalled")
	}
	c.t = c.t.Add(2 * time.Second)
	rec.Beat()
	states, ok := ls.Check()
	if ok {
		t.Fatal("heartbeat silent for 3s with a 2s bound, yet all ok")
	}
	if len(states) != 2 || states[0].Name != "heartbeat" || !states[0].Stalled || states[1].Stalled {
		t.Fatalf("states %+v, want heartbeat stalled and reconcile not", states)
	}
	if states[0].Age != 3*time.Second {
		t.Errorf("heartbeat age %v, want 3s", states[0].Age)
	}
	hb.Beat()
	if _, ok := ls.Check(); !ok {
		t.Error("still stalled after a beat")
	}
	ls.Remove(hb)
	c.t = c.t.Add(5 * time.Second)
	if states, ok := ls.Check(); !ok || len(states) != 1 {
		t.Errorf("after removing heartbeat: %+v ok=%v", states, ok)
	}
}

func TestNilLoopBeats(t *testing.T) {
	var l *Loop
	l.Beat() // must not panic: loops beat whether or not anybody watches
	New().Remove(nil)
}
