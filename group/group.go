// Package group lets the directors of a bgp group see one another. Each
// says, every interval and at once when it changes, its node name, its
// group digest (services and kernel: directors with equal digests build
// the same mh tables), the VIPs it announces to its routers now, and
// whether it is drained; each keeps a table of the others from what it
// hears. The frames are signed heartbeats of package heartbeat (a
// GroupMessage, which a pair's director never takes for its own) on the
// links of bgp.group.
//
// Nothing is elected and nothing is decided here: the routers spread the
// flows, and consistent hashing keeps a moved flow on its real server as
// long as the digests match. A mismatch breaks that, so it is loud: a
// warning per change, and a count in Status.
package group

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/directorlb/director/config"
	"github.com/directorlb/director/control"
	"github.com/directorlb/director/heartbeat"
)

const (
	// DefaultInterval is how often a director speaks when nothing
	// changes: a member is seen gone within deadIntervals of it. The
	// routers' BFD, not this, moves the flows away from a dead
	// director; the group's view is for the operator, so a second is
	// quick enough and costs a frame a second per link.
	DefaultInterval = time.Second
	// deadIntervals of the sender's own interval without a frame make a
	// member dead: two frames lost in a row are not enough.
	deadIntervals = 3
	// maxMembers bounds the table. Only a holder of the key adds to it,
	// but a mistake (a script renaming nodes) must not grow it forever;
	// the member heard least recently among the dead makes room.
	maxMembers = 256
)

// Config is a director's part in the group.
type Config struct {
	Node string // this director's node name
	// Links are the group's network links (bgp.group.links). A link
	// with Port 0 uses config.DefaultHeartbeatPort.
	Links []heartbeat.LinkSpec
	Key   []byte // the shared key (heartbeat.ReadAuthKey)
	// Interval between heartbeats; 0: DefaultInterval.
	Interval time.Duration
	Logger   *slog.Logger // nil: slog.Default()
}

// Local is what this director says of itself now.
type Local struct {
	Digest    [16]byte       // Digest(cfg, KernelRelease())
	Announced []netip.Prefix // the VIPs announced to the routers now, /32 or /128
	Drained   bool           // directorctl drain-node
}

// Group is this director's view of its group. Run owns the member table;
// Changed and Status may be called from any goroutine.
type Group struct {
	cfg   Config
	local func() Local
	links []heartbeat.Link
	log   *slog.Logger
	boot  uint64

	poke      chan struct{}
	statusReq chan chan control.GroupStatus
	done      chan struct{} // closed when Run returns
	closeOnce sync.Once

	// now is the clock; a test replaces it.
	now func() time.Time
	// observe, when set (by a test), hears what the loop did.
	observe func(event)
}

// New opens the links of cfg. local says what this director announces;
// it is called from Run's goroutine, at every heartbeat. Run closes the
// links when it returns; Close does if Run is never called.
func New(cfg Config, local func() Local) (*Group, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	var links []heartbeat.Link
	for i, spec := range cfg.Links {
		if spec.Port == 0 {
			spec.Port = config.DefaultHeartbeatPort
		}
		if spec.Serial != "" {
			closeLinks(links)
			return nil, fmt.Errorf("group link %d: a serial line joins two directors, not a group", i)
		}
		l, err := spec.Open(log)
		if err != nil {
			closeLinks(links)
			return nil, fmt.Errorf("group link %d: %w", i, err)
		}
		links = append(links, l)
	}
	g, err := newGroup(cfg, local, links)
	if err != nil {
		closeLinks(links)
		return nil, err
	}
	return g, nil
}

// newGroup makes a Group on links already open.
func newGroup(cfg Config, local func() Local, links []heartbeat.Link) (*Group, error) {
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if len(links) == 0 {
		return nil, errors.New("group: no links")
	}
	if local == nil {
		return nil, errors.New("group: no local state")
	}
	// Whatever cannot be encoded is refused now, not at every heartbeat.
	probe := heartbeat.GroupMessage{Node: cfg.Node, Time: time.Now(), Interval: cfg.Interval}
	if _, err := heartbeat.EncodeGroup(cfg.Key, probe); err != nil {
		return nil, fmt.Errorf("group: %w", err)
	}
	return &Group{
		cfg:       cfg,
		local:     local,
		links:     links,
		log:       cfg.Logger,
		boot:      heartbeat.NewBoot(),
		poke:      make(chan struct{}, 1),
		statusReq: make(chan chan control.GroupStatus),
		done:      make(chan struct{}),
		now:       time.Now,
	}, nil
}

func closeLinks(links []heartbeat.Link) {
	for _, l := range links {
		l.Close()
	}
}

// Close closes the links. Run does it when it returns.
func (g *Group) Close() {
	g.closeOnce.Do(func() { closeLinks(g.links) })
}

// Changed says that what local returns changed: this director says so
// at once instead of at the next interval.
func (g *Group) Changed() {
	select {
	case g.poke <- struct{}{}:
	default: // one is pending; it will read local afresh
	}
}

// Status is the group as this director sees it: itself first, then the
// others by node. It is answered by Run's goroutine: before Run starts it
// waits (as long as ctx lets it), after Run returns it fails.
func (g *Group) Status(ctx context.Context) (control.GroupStatus, error) {
	ch := make(chan control.GroupStatus, 1)
	select {
	case g.statusReq <- ch:
	case <-g.done:
		return control.GroupStatus{}, errors.New("group: not running")
	case <-ctx.Done():
		return control.GroupStatus{}, ctx.Err()
	}
	return <-ch, nil
}

// Run speaks and listens until ctx ends; then it says this director is
// leaving, closes the links and returns nil.
func (g *Group) Run(ctx context.Context) error {
	t := time.NewTicker(g.cfg.Interval)
	defer t.Stop()
	return g.run(ctx, t.C)
}

// received is an authenticated frame, with when it came.
type received struct {
	link int
	msg  heartbeat.GroupMessage
	at   time.Time
}

func (g *Group) run(ctx context.Context, ticks <-chan time.Time) error {
	defer close(g.done)
	rctx, stop := context.WithCancel(ctx)
	frames := make(chan received, 64)
	var wg sync.WaitGroup
	for i, l := range g.links {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g.read(rctx, i, l, frames)
		}()
	}
	defer func() {
		stop()
		g.Close()
		wg.Wait()
	}()
	s := newState(g)
	s.send(false)
	for {
		select {
		case <-ctx.Done():
			s.send(true)
			return nil
		case <-ticks:
			s.sweep(g.now())
			s.send(false)
			g.note(event{kind: evTick})
		case <-g.poke:
			s.send(false)
			g.note(event{kind: evSent})
		case f := <-frames:
			s.heard(f)
		case ch := <-g.statusReq:
			s.sweep(g.now())
			ch <- s.status()
		}
	}
}

// read decodes the frames of one link. Authentication happens here, so
// a flood of forged frames costs the member table nothing.
func (g *Group) read(ctx context.Context, i int, l heartbeat.Link, out chan<- received) {
	// One byte more than a frame may be, so that a longer datagram is
	// seen too long rather than cut to size.
	buf := make([]byte, heartbeat.MaxGroupFrameSize+1)
	var lastWarn time.Time
	for {
		n, err := l.Recv(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			g.log.Debug("group: link receive", "link", l.Name(), "err", err)
			continue
		}
		m, err := heartbeat.DecodeGroup(g.cfg.Key, buf[:n])
		if err != nil {
			// A wrong key hides a member from the group: worth a
			// warning, but not one per frame.
			if errors.Is(err, heartbeat.ErrBadMAC) && time.Since(lastWarn) >= time.Minute {
				lastWarn = time.Now()
				g.log.Warn("group: a heartbeat failed authentication; does every director of the group have the same auth_key_file?", "link", l.Name())
			} else {
				g.log.Debug("group: frame refused", "link", l.Name(), "err", err)
			}
			g.note(event{kind: evDropped, err: err})
			continue
		}
		select {
		case out <- received{link: i, msg: m, at: g.now()}:
		case <-ctx.Done():
			return
		}
	}
}

// eventKind is what a test waits for.
type eventKind int

const (
	evTick     eventKind = iota // a tick was handled: swept and sent
	evSent                      // a heartbeat went out on a poke
	evAccepted                  // a member's frame was taken
	evRefused                   // an authenticated frame was refused (replay, skew, own name)
	evDropped                   // a frame failed decoding (reader goroutine)
)

type event struct {
	kind eventKind
	node string
	err  error
}

func (g *Group) note(e event) {
	if g.observe != nil {
		g.observe(e)
	}
}
