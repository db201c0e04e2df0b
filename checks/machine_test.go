package checks

import "testing"

func TestMachine(t *testing.T) {
	tests := []struct {
		name       string
		rise, fall int
		start      bool
		results    string // o = success, x = failure
		want       string // h/u after each result, ^ marks a transition
	}{
		{"starts unhealthy, rise 2", 2, 3, false, "oo", "u h^"},
		{"rise needs consecutive", 2, 3, false, "oxoxoo", "u u u u u h^"},
		{"fall 3 consecutive", 1, 3, true, "xxoxxx", "h h h h h u^"},
		{"start healthy stays", 2, 2, true, "ooo", "h h h"},
		{"flap both ways", 1, 1, false, "oxo", "h^ u^ h^"},
		{"zero thresholds mean one", 0, 0, false, "ox", "h^ u^"},
		{"failures while unhealthy", 2, 2, false, "xxx", "u u u"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMachine(tt.rise, tt.fall, tt.start)
			got := ""
			for i, r := range tt.results {
				if i > 0 {
					got += " "
				}
				changed := m.observe(r == 'o')
				if m.healthy {
					got += "h"
				} else {
					got += "u"
				}
				if changed {
					got += "^"
				}
			}
			if got != tt.want {
				t.Errorf("results %s: got %q, want %q", tt.results, got, tt.want)
			}
		})
	}
}

func TestMachineTransitional(t *testing.T) {
	m := newMachine(3, 3, false)
	if m.transitional() {
		t.Fatal("fresh unhealthy machine is not transitional")
	}
	m.observe(true)
	if !m.transitional() {
		t.Fatal("unhealthy with a success is transitional")
	}
	m.observe(true)
	m.observe(true)
	if !m.healthy || m.transitional() {
		t.Fatalf("after rise: healthy=%v transitional=%v, want true false", m.healthy, m.transitional())
	}
	m.observe(false)
	if !m.transitional() {
		t.Fatal("healthy with a failure is transitional")
	}
	m.observe(true)
	if m.transitional() {
		t.Fatal("a success resets the failure count")
	}
}
