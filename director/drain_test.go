package director

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/directorlb/director/rootfile/rootfiletest"
)

// The peer's records win when newer, lose when older, are ignored for
// servers this config lacks, and each merge that changes something is
// saved and passed on.
func TestMergeDrains(t *testing.T) {
	ctx := context.Background()
	k := newFakeKernel()
	path := filepath.Join(t.TempDir(), "state", "drains.json")
	var mu sync.Mutex
	var told [][]DrainRecord
	opts := Options{Kernel: k, Logger: quietLog(), DrainPath: path, OnDrains: func(r []DrainRecord) {
		mu.Lock()
		told = append(told, r)
		mu.Unlock()
	}}
	cfg := cfgOf(svc("web", "192.0.2.10", 80, rs("10.0.0.1:80", 5), rs("10.0.0.2:80", 5)))
	d, _ := startDirectorWith(t, k, opts, cfg)
	key := KeyOf(ServiceOf(&cfg.Services[0]))
	weight := func(addr string) uint32 {
		ap := netip.MustParseAddrPort(addr)
		d, _ := k.table[key].Dests.Get(DestKey{ap.Addr(), ap.Port()})
		return d.Weight
	}
	now := time.Now()
	one := netip.MustParseAddrPort("10.0.0.1:80")
	err := d.MergeDrains(ctx, []DrainRecord{
		{Service: "web", Server: one, Drained: true, At: now},
		{Service: "web", Server: netip.MustParseAddrPort("10.0.0.9:80"), Drained: true, At: now},
		{Service: "nope", Server: one, Drained: true, At: now},
	})
	if err != nil {
		t.Fatal(err)
	}
	if weight("10.0.0.1:80") != 0 {
		t.Fatal("the peer's drain did not take the server out")
	}
	recs, _ := d.Drains(ctx)
	if len(recs) != 1 || recs[0].Server != one || !recs[0].Drained {
		t.Fatalf("records %+v, want the one configured server", recs)
	}
	if len(told) != 1 {
		t.Fatalf("told the peer %d times, want once", len(told))
	}
	// Older news changes nothing and is not passed on.
	if err := d.MergeDrains(ctx, []DrainRecord{{Service: "web", Server: one, Drained: false, At: now.Add(-time.Second)}}); err != nil {
		t.Fatal(err)
	}
	if weight("10.0.0.1:80") != 0 || len(told) != 1 {
		t.Fatalf("an older enable won: weight %d, told %d", weight("10.0.0.1:80"), len(told))
	}
	// An enable made here after the peer's drain wins, even though this
	// host's clock is behind the drain's time.
	ahead := []DrainRecord{{Service: "web", Server: one, Drained: true, At: time.Now().Add(time.Hour)}}
	if err := d.MergeDrains(ctx, ahead); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Drain(ctx, "web", "10.0.0.1", false); err != nil {
		t.Fatal(err)
	}
	recs, _ = d.Drains(ctx)
	if recs[0].Drained || !recs[0].At.After(ahead[0].At) || weight("10.0.0.1:80") != 5 {
		t.Fatalf("the enable after a drain from a clock ahead: %+v, weight %d", recs[0], weight("10.0.0.1:80"))
	}
	if err := d.MergeDrains(ctx, ahead); err != nil {
		t.Fatal(err)
	}
	if weight("10.0.0.1:80") != 5 {
		t.Fatal("the peer's older drain came back after the enable")
	}
	// What was merged is saved: a restart keeps it.
	d2 := New(Options{Kernel: newFakeKernel(), Logger: quietLog(), DrainPath: path})
	if m := d2.drained[DrainKey{"web", one}]; m.drained || !m.at.Equal(recs[0].At) {
		t.Fatalf("after a restart: %+v, want the enable", m)
	}
}

// A drains file another user could have written is not trusted: a
// world-writable directory would let anyone drain a server.
func TestDrainsFileUntrusted(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to own the files")
	}
	rec := `[{"service":"web","server":"10.0.0.1:80","drained":true,"at":"2026-01-01T00:00:00Z"}]`
	for _, tt := range rootfiletest.Spoilers() {
		t.Run(tt.Name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "state")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(dir, "drains.json")
			if err := os.WriteFile(file, []byte(rec), 0o600); err != nil {
				t.Fatal(err)
			}
			tt.Spoil(t, dir, file)
			d := New(Options{Kernel: newFakeKernel(), Logger: quietLog(), DrainPath: file})
			if len(d.drained) != 0 {
				t.Fatalf("trusted %v", d.drained)
			}
		})
	}
	// The same file, root's alone, is read.
	dir := filepath.Join(t.TempDir(), "state")
	os.Mkdir(dir, 0o700)
	file := filepath.Join(dir, "drains.json")
	os.WriteFile(file, []byte(rec), 0o600)
	if d := New(Options{Kernel: newFakeKernel(), Logger: quietLog(), DrainPath: file}); len(d.drained) != 1 {
		t.Fatal("a sound drains file was not read")
	}
}

// The rule that merges the pair's records: the later word wins; at the
// same instant the drain, the safe side.
func TestDrainMarkNewer(t *testing.T) {
	at := time.Unix(100, 0)
	drained, enabled := drainMark{drained: true, at: at}, drainMark{drained: false, at: at}
	if !drained.newer(enabled) || enabled.newer(drained) {
		t.Error("at the same instant a drain must win")
	}
	later := drainMark{drained: false, at: at.Add(time.Nanosecond)}
	if !later.newer(drained) || drained.newer(later) {
		t.Error("the later decision must win")
	}
}
