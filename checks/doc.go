// Package checks is directord's health-check engine: native probers (tcp,
// http, https, mysql, postgres, dns, exec, none), a rise/fall state
// machine per probe, and an Engine that runs each distinct probe once and
// fans its results out to every (service, real server) that asked for it.
//
// # Concurrency
//
// One scheduler goroutine keeps the distinct probes (see ProbeSpec.Key) in
// a heap by due time and hands each due run to a worker goroutine, so a
// hung target only ever holds its own run's worker. Engine state (the probe
// set, subscribers, state machines, last results) is guarded by one mutex
// that is held only for short, non-blocking bookkeeping: never across a
// probe, never while calling the OnChange callback. A probe's immutable
// parts (key, timing, prober) are read without the lock.
//
// # Weights
//
// A healthy probe carries a dynamic weight percentage (100 unless an exec
// check prints one). Weights turns that into the kernel weight:
// configured × percent / 100, 0 while unhealthy (quiesce) or drained, and
// absent while unhealthy with on_failure: remove.
package checks
