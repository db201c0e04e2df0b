package daemon

import (
	"context"
	"log/slog"
	"sync"

	"github.com/directorlb/director/director"
	"github.com/directorlb/director/failover"
	"github.com/directorlb/director/heartbeat"
)

// drainRelay carries drain records between the director and the pair,
// which each own a goroutine that must never wait on the other: the
// director offers its records after each change, the node offers the
// peer's as they arrive, and the relay's goroutine delivers them.
type drainRelay struct {
	mu      sync.Mutex
	latest  []director.DrainRecord // the director's, not yet given to the node
	pending bool
	wake    chan struct{}
	// fromPeer holds the peer's records for the director. A full buffer
	// drops a message: the peer sends again while the digests differ.
	fromPeer chan []heartbeat.DrainRecord
}

func newDrainRelay() *drainRelay {
	return &drainRelay{wake: make(chan struct{}, 1), fromPeer: make(chan []heartbeat.DrainRecord, 64)}
}

// fromDirector is the director's OnDrains: it keeps only the latest.
func (r *drainRelay) fromDirector(recs []director.DrainRecord) {
	r.mu.Lock()
	r.latest, r.pending = recs, true
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// peerSent is the node's OnDrains.
func (r *drainRelay) peerSent(recs []heartbeat.DrainRecord) {
	select {
	case r.fromPeer <- recs:
	default:
	}
}

// run delivers until ctx ends.
func (r *drainRelay) run(ctx context.Context, d *director.Director, node *failover.Node, log *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.wake:
			r.mu.Lock()
			recs, pending := r.latest, r.pending
			r.latest, r.pending = nil, false
			r.mu.Unlock()
			if pending {
				if err := node.SetDrains(ctx, toPair(recs)); err != nil && ctx.Err() == nil {
					log.Warn("failover: cannot tell the peer about the drains", "err", err)
				}
			}
		case recs := <-r.fromPeer:
			if err := d.MergeDrains(ctx, fromPair(recs)); err != nil && ctx.Err() == nil {
				log.Warn("failover: cannot take the peer's drains", "err", err)
			}
		}
	}
}

func toPair(recs []director.DrainRecord) []heartbeat.DrainRecord {
	out := make([]heartbeat.DrainRecord, len(recs))
	for i, r := range recs {
		out[i] = heartbeat.DrainRecord{Service: r.Service, Server: r.Server, Drained: r.Drained, At: r.At}
	}
	return out
}

func fromPair(recs []heartbeat.DrainRecord) []director.DrainRecord {
	out := make([]director.DrainRecord, len(recs))
	for i, r := range recs {
		out[i] = director.DrainRecord{Service: r.Service, Server: r.Server, Drained: r.Drained, At: r.At}
	}
	return out
}
