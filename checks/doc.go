// Package checks is directord's health-check engine: native probers (tcp,
// http, https, exec, none), a rise/fall state machine per probe, and an
// Engine that schedules one goroutine per distinct probe and fans its
// results out to every (service, real server) that asked for it.
//
// # Concurrency
//
// Each distinct probe (see ProbeSpec.Key) runs in its own goroutine, so a
// hung target only ever delays its own next probe. Engine state (the probe
// set, subscribers, state machines, last results) is guarded by one mutex
// that is held only for short, non-blocking bookkeeping: never across a
// probe, never while calling the OnChange callback. A probe's immutable
// parts (spec, prober) are read without the lock.
//
// # Weights
//
// A healthy probe carries a dynamic weight percentage (100 unless an exec
// check prints one). Weights turns that into the kernel weight:
// configured × percent / 100, 0 while unhealthy (quiesce) or drained, and
// absent while unhealthy with on_failure: remove.
package checks
