package daemon

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/directorlb/director/checks"
	"github.com/directorlb/director/config"
	"github.com/directorlb/director/control"
	"github.com/directorlb/director/director"
	"github.com/directorlb/director/failover"
	"github.com/directorlb/director/statuspage"
)

// readStatus is what `directorctl status` answers and the status page
// shows: the director's table annotated with the checks' view, the bgp
// group's part and the pair's. bgp and pair are nil when the director
// has none.
func readStatus(ctx context.Context, dir *director.Director, eng *checks.Engine,
	bgp func(context.Context) (*control.BGPStatus, error), pair func(context.Context) (*failover.Status, error)) (*control.Status, error) {
	st, err := dir.Status(ctx)
	if err != nil {
		return nil, err
	}
	annotate(&st, eng.Snapshot())
	out := &control.Status{Status: st, Role: "active"}
	if bgp != nil {
		if out.BGP, err = bgp(ctx); err != nil {
			return nil, err
		}
	}
	if pair != nil {
		fs, err := pair(ctx)
		if err != nil {
			return nil, err
		}
		if fs != nil {
			out.Failover, out.Role = fs, fs.Role
		}
	}
	return out, nil
}

// status is the status of this director, for the control socket and
// the status page alike. It answers from before the pair and the speaker
// start, as the metrics do: the pair then shows in init, and the bgp
// part is left out (the control socket answers only once they run).
func (d *daemon) status(ctx context.Context) (*control.Status, error) {
	var bgp func(context.Context) (*control.BGPStatus, error)
	if d.bgp != nil {
		bgp = d.bgpStatus
	}
	var pair func(context.Context) (*failover.Status, error)
	if d.cfg.Failover != nil {
		pair = d.pairStatus
	}
	return readStatus(ctx, d.dir, d.eng, bgp, pair)
}

// statusPage makes the page the metrics listener serves at /.
func (d *daemon) statusPage(k statuspage.Kernel) http.Handler {
	return statuspage.Handler(statuspage.Source{Status: d.status, Kernel: k, Events: d.events.ring, Log: d.log})
}

// events records the state changes the status page lists, from the
// parts that own the state: the checks' transitions (checkChanged), the
// announcer's decisions (announced) and the pair's role (rolesSeen).
type events struct {
	ring *statuspage.Events
	mu   sync.Mutex
	// health is each checked real server's health as last recorded.
	health map[healthKey]bool
	// byName indexes cfg's services; rebuilt when a reload changes cfg.
	cfg    *config.Config
	byName map[string]*config.Service
	// announced and drained are the announcer's last decision.
	announced map[netip.Prefix]bool
	drained   bool
	// role, peerAlive and changes are the pair as last read.
	role      string
	peerAlive bool
	changes   uint64
}

type healthKey struct {
	service string
	rs      netip.AddrPort
}

func newEvents() *events {
	return &events{ring: statuspage.NewEvents(0), health: map[healthKey]bool{}, announced: map[netip.Prefix]bool{}}
}

// seedHealth records the checks' starting state (unhealthy, or healthy
// for the servers the kernel already served), which is no change.
func (e *events) seedHealth(snap []checks.Status) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range snap {
		e.health[healthKey{s.Service, s.RealServer}] = s.Healthy
	}
}

// checkChanged is the checks' OnChange: the transition goes to the
// director (changes.add), and each real server of the service whose
// health differs from the last recorded is an event, dated by the
// engine's transition time. A server first seen after the start (added
// by a reload) starts unhealthy, as the engine starts it.
func (d *daemon) checkChanged(service string) {
	d.changes.add(service)
	e := d.events
	cfg := d.srv.cfg.Load()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cfg != cfg {
		e.cfg, e.byName = cfg, make(map[string]*config.Service, len(cfg.Services))
		for i := range cfg.Services {
			e.byName[cfg.Services[i].Name] = &cfg.Services[i]
		}
	}
	s := e.byName[service]
	if s == nil {
		return
	}
	for _, rs := range s.RealServers {
		k := healthKey{service, rs.AddrPort()}
		healthy, since, known := d.eng.Transition(service, k.rs)
		if !known || e.health[k] == healthy {
			continue
		}
		e.health[k] = healthy
		what := "down"
		if healthy {
			what = "up"
		}
		e.ring.Add(statuspage.Event{Time: since, Kind: "check", Subject: service + " " + k.rs.String(), What: what})
	}
}

// announced is the announcer's OnChange: the group hears of it, and each
// VIP announced or withdrawn, and the node's drain, is an event.
func (d *daemon) announced() {
	d.bgp.groupChanged()
	l := d.bgp.ann.Local()
	e := d.events
	now := time.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	if l.Drained != e.drained {
		e.drained = l.Drained
		what := "enabled (enable-node)"
		if l.Drained {
			what = "drained (drain-node)"
		}
		e.ring.Add(statuspage.Event{Time: now, Kind: "node", Subject: d.cfg.Node, What: what})
	}
	why := map[netip.Prefix]string{}
	for _, v := range l.VIPs {
		if p, err := netip.ParsePrefix(v.VIP); err == nil && v.Reason != "" {
			why[p] = v.Reason
		}
	}
	for _, p := range l.Announced {
		if !e.announced[p] {
			e.announced[p] = true
			e.ring.Add(statuspage.Event{Time: now, Kind: "vip", Subject: p.String(), What: "announced"})
		}
	}
	for p := range e.announced {
		if !slices.Contains(l.Announced, p) {
			delete(e.announced, p)
			what := "withdrawn"
			if why[p] != "" {
				what += ": " + why[p]
			}
			e.ring.Add(statuspage.Event{Time: now, Kind: "vip", Subject: p.String(), What: what})
		}
	}
}

// rolesSeen records the pair's role changes. The failover node has no
// callback for them, so they are seen when its status is read: at every
// scrape, page load and directorctl status. The time is the node's own
// (the role's start), and changes between two reads are counted from
// the node's transition counters rather than lost.
func (e *events) rolesSeen(st *failover.Status) {
	if st == nil || st.Node == "" {
		return // the pair has not started
	}
	var n uint64
	for _, k := range st.Transitions {
		n += k
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if n != e.changes || st.Role != e.role {
		what := st.Role
		if missed := n - e.changes; n > e.changes && missed > 1 && e.role != "" {
			what = fmt.Sprintf("%s (after %d role changes since the last look)", st.Role, missed)
		}
		at := time.Now().Add(-time.Duration(st.SinceMS) * time.Millisecond)
		e.ring.Add(statuspage.Event{Time: at, Kind: "role", Subject: st.Node, What: what})
		e.role, e.changes = st.Role, n
	}
	if p := st.Peer; p != nil && p.Alive != e.peerAlive {
		e.peerAlive = p.Alive
		what := "peer dead"
		if p.Alive {
			what = "peer alive"
		}
		e.ring.Add(statuspage.Event{Time: time.Now(), Kind: "peer", Subject: p.Node, What: what})
	}
}
