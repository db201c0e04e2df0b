package metrics

import (
	"bufio"
	"context"
	"errors"
	"io"
	"sync"
	"testing"

	"github.com/directorlb/director/config"
	"github.com/directorlb/director/failover"
	"github.com/directorlb/director/heartbeat"
)

// roles reads director_failover_role for each role, with whether it is there.
func roles(t *testing.T, e *Exporter) map[string]float64 {
	t.Helper()
	mfs, _ := scrape(t, e, false)
	got := map[string]float64{}
	for _, r := range heartbeat.Roles {
		if v, ok := value(t, mfs, "director_failover_role", map[string]string{"role": r.String()}); ok {
			got[r.String()] = v
		}
	}
	return got
}

// A director without a failover block always holds its VIPs: it reports
// itself active, so dashboards and alerts keyed on role="active" see it,
// and says it has no pair.
func TestSingleDirectorIsActive(t *testing.T) {
	e := New(Sources{Config: func() *config.Config { return nil }})
	mfs, _ := scrape(t, e, false)
	for _, r := range heartbeat.Roles {
		want := 0.0
		if r.String() == "active" {
			want = 1
		}
		if v, ok := value(t, mfs, "director_failover_role", map[string]string{"role": r.String()}); !ok || v != want {
			t.Errorf("director_failover_role{role=%q} = %v (present %v), want %v", r, v, ok, want)
		}
	}
	if v, ok := value(t, mfs, "director_failover_configured", nil); !ok || v != 0 {
		t.Errorf("director_failover_configured = %v (present %v), want 0", v, ok)
	}
	// A single director has no peer: nothing may say it is dead.
	for _, name := range []string{"director_failover_peer_alive", "director_failover_peer_role",
		"director_failover_link_up", "director_failover_heartbeats_rejected_total"} {
		if _, ok := value(t, mfs, name, nil); ok {
			t.Errorf("%s is exported by a single director, want absent", name)
		}
	}
}

// With a failover block the role is the node's, and the pair is said to be
// configured even while the node cannot be read.
func TestPairRoleAndConfigured(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status func(context.Context) (*failover.Status, error)
		roles  map[string]float64
	}{
		{"standby", func(context.Context) (*failover.Status, error) {
			return &failover.Status{Role: "standby"}, nil
		}, map[string]float64{"active": 0, "standby": 1, "init": 0, "fault": 0}},
		{"fault", func(context.Context) (*failover.Status, error) {
			return &failover.Status{Role: "fault"}, nil
		}, map[string]float64{"active": 0, "standby": 0, "init": 0, "fault": 1}},
		// Not started yet, or unreadable: no role rather than a made-up one.
		{"not started", func(context.Context) (*failover.Status, error) { return nil, nil }, map[string]float64{}},
		{"unreadable", func(context.Context) (*failover.Status, error) {
			return nil, errors.New("node stopped")
		}, map[string]float64{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := New(Sources{Config: func() *config.Config { return nil }})
			e.SetPair(tc.status)
			mfs, _ := scrape(t, e, false)
			if v, ok := value(t, mfs, "director_failover_configured", nil); !ok || v != 1 {
				t.Errorf("director_failover_configured = %v (present %v), want 1", v, ok)
			}
			got := roles(t, e)
			if len(got) != len(tc.roles) {
				t.Errorf("roles %v, want %v", got, tc.roles)
			}
			for r, want := range tc.roles {
				if v, ok := got[r]; !ok || v != want {
					t.Errorf("director_failover_role{role=%q} = %v (present %v), want %v", r, v, ok, want)
				}
			}
		})
	}
}

// Scrapes may run while the pair is set (a scrape during start-up).
func TestSetPairDuringScrapes(t *testing.T) {
	e := New(Sources{Config: func() *config.Config { return nil }})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				_ = e.WriteTo(bufio.NewWriter(io.Discard))
			}
		}()
	}
	e.SetPair(func(context.Context) (*failover.Status, error) { return &failover.Status{Role: "init"}, nil })
	wg.Wait()
	if got := roles(t, e); got["init"] != 1 || got["active"] != 0 {
		t.Errorf("after SetPair: roles %v, want init", got)
	}
}
