package checks

import (
	"context"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"
)

// snapshotHandler calls Engine.Snapshot, which takes the engine's lock,
// from every log call, and counts the calls in which it could not: those
// made with the lock held.
type snapshotHandler struct {
	e       atomic.Pointer[Engine]
	records atomic.Int32
	blocked atomic.Int32
}

func (h *snapshotHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *snapshotHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *snapshotHandler) WithGroup(string) slog.Handler            { return h }

func (h *snapshotHandler) Handle(context.Context, slog.Record) error {
	h.records.Add(1)
	done := make(chan struct{})
	go func() { h.e.Load().Snapshot(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Second):
		// The goroutine finishes once the logger releases the lock.
		h.blocked.Add(1)
	}
	return nil
}

// TestEngineLogsWithoutLock: a slow log writer must not hold up every
// probe, Health and Snapshot, so the engine logs with its lock released:
// a transition (record) and a reload carrying health over (Set).
func TestEngineLogsWithoutLock(t *testing.T) {
	h := &snapshotHandler{}
	e, ch := testEngineLog(t, slog.New(h), func(ProbeSpec) Prober {
		return funcProber(func(context.Context, netip.AddrPort) Result { return Result{OK: true, Weight: NoWeight} })
	})
	h.e.Store(e)
	spec := tcpSpec(rsA, 20*time.Millisecond, 1, 1)
	e.Set([]Spec{{"web", rsA, spec}})
	await(t, ch, spec.Key(), 2*time.Second) // healthy: logged
	edited := spec
	edited.Send = "PING\r\n" // another check: the server's health is carried over, logged
	e.Set([]Spec{{"web", rsA, edited}})
	if n := h.records.Load(); n < 2 {
		t.Fatalf("%d log records, want a transition and a reload", n)
	}
	if n := h.blocked.Load(); n > 0 {
		t.Fatalf("%d of %d log records were written with the engine's lock held", n, h.records.Load())
	}
}
