package announce

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/directorlb/director/bgp"
	"github.com/directorlb/director/control"
)

// SetDrained is drain-node (true) and enable-node (false): it records the
// choice under StatePath, so that it survives a restart, then decides at
// once. It returns when the speaker has been told. A drained director
// keeps its VIPs and its kernel table: what the routers still send it is
// forwarded as before.
func (a *Announcer) SetDrained(ctx context.Context, drained bool) error {
	var err error
	if derr := a.do(ctx, func(st *state) {
		if a.o.StatePath != "" {
			if err = saveNodeDrain(a.o.StatePath, drained, a.o.Now()); err != nil {
				err = fmt.Errorf("cannot record the node's drain, nothing changed: %w", err)
				return
			}
		}
		if st.drained != drained {
			if drained {
				a.log.Warn("bgp: node drained by directorctl drain-node; withdrawing every VIP, forwarding what still arrives")
			} else {
				a.log.Info("bgp: node enabled by directorctl enable-node; announcing again")
			}
		}
		st.drained = drained
		a.decide(ctx, st)
		if a.o.OnChange != nil {
			a.o.OnChange()
		}
	}); derr != nil {
		return derr
	}
	return err
}

// Status is the announcer's part of directorctl status: the drain, the
// stop, each VIP with its reason, and each peer's session.
func (a *Announcer) Status(ctx context.Context) (*control.BGPStatus, error) {
	out := &control.BGPStatus{}
	if err := a.do(ctx, func(st *state) {
		out.Drained, out.Stopping = st.drained, st.stopping
		out.VIPs = slices.Clone(st.vips)
	}); err != nil {
		return nil, err
	}
	peers, err := a.o.Speaker.Peers(ctx)
	if err != nil {
		return nil, err
	}
	for _, p := range peers {
		out.Peers = append(out.Peers, control.BGPPeer{
			Address: p.Address.String(), ASN: p.ASN, State: p.State, Since: p.Since,
			Flops: p.Flops, PrefixesSent: p.PrefixesSent, BFD: p.BFD, LastError: PeerHint(p),
		})
	}
	return out, nil
}

// Leave is a graceful stop's first step: withdraw every VIP, then wait
// until every established peer has confirmed, or drainTime has passed,
// whichever comes first. BGP has no acknowledgement of a withdrawal; a
// peer has confirmed when the speaker counts no prefix sent to it and a
// message from it has arrived since the withdrawal was sent (a peer
// reads its session in order, and the routers here answer keepalives
// every hold_time/3). The VIPs and the kernel table stay: flows the
// routers still send during their convergence are forwarded.
func (a *Announcer) Leave(ctx context.Context, drainTime time.Duration) error {
	if err := a.do(ctx, func(st *state) {
		st.stopping = true
		a.decide(ctx, st)
	}); err != nil {
		return err
	}
	start := a.o.Now()
	deadline := time.NewTimer(drainTime)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	baseline := map[string]uint64{}
	if peers, err := a.o.Speaker.Peers(ctx); err == nil {
		for _, p := range peers {
			baseline[p.Address.String()] = p.Received
		}
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			a.log.Info("bgp: drain_time passed; stopping", "waited", drainTime)
			return nil
		case <-tick.C:
		}
		peers, err := a.o.Speaker.Peers(ctx)
		if err != nil {
			continue
		}
		if confirmed(peers, baseline) {
			a.log.Info("bgp: every peer has the withdrawal; stopping", "waited", a.o.Now().Sub(start).Round(time.Millisecond))
			return nil
		}
	}
}

// confirmed: every established peer has no prefix of ours and has sent a
// message since baseline was taken. A peer that is not established has
// no route of ours either.
func confirmed(peers []bgp.PeerStatus, baseline map[string]uint64) bool {
	for _, p := range peers {
		if !p.Established() {
			continue
		}
		if p.PrefixesSent > 0 || p.Received <= baseline[p.Address.String()] {
			return false
		}
	}
	return true
}
