package statuspage

import (
	"slices"
	"sync"
	"time"
)

// Event is one state change the page lists.
type Event struct {
	Time time.Time
	// Kind is what changed: "check", "role", "vip", "node".
	Kind string
	// Subject is what it happened to: "web 10.0.0.1:80", a node, a VIP.
	Subject string
	// What is the change in a few words: "down: connection refused",
	// "up", "active", "announced", "withdrawn".
	What string
}

// DefaultEvents is how many events a page lists: enough for a flap or
// a failover and what led to it, few enough to read at a glance.
const DefaultEvents = 50

// Events keeps the last events in a ring: the parts that own the state
// add to it as it changes, and the page reads it. Safe for concurrent
// use; the zero value is not usable, use NewEvents.
type Events struct {
	mu   sync.Mutex
	ring []Event
	next int // where the next event goes
	full bool
}

// NewEvents keeps the last n events (DefaultEvents if n <= 0).
func NewEvents(n int) *Events {
	if n <= 0 {
		n = DefaultEvents
	}
	return &Events{ring: make([]Event, n)}
}

// Add records an event; the oldest is dropped once the ring is full.
func (e *Events) Add(ev Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.ring[e.next] = ev
	e.next++
	if e.next == len(e.ring) {
		e.next, e.full = 0, true
	}
}

// Recent returns the events kept, newest first. Events are added as
// they are seen, which is not always in the order they happened (a
// check's transition time is its probe's), so they are sorted by time.
func (e *Events) Recent() []Event {
	e.mu.Lock()
	out := slices.Clone(e.ring[:e.next])
	if e.full {
		out = append(slices.Clone(e.ring[e.next:]), out...)
	}
	e.mu.Unlock()
	slices.Reverse(out)
	slices.SortStableFunc(out, func(a, b Event) int { return b.Time.Compare(a.Time) })
	return out
}
