// Package bgp is the director's BGP speaker: it embeds gobgp
// (github.com/osrg/gobgp/v4) to announce each VIP as a /32 or /128 with next
// hop self to the routers, so that every director of a group is active behind
// the routers' equal-cost multipath.
//
// The speaker only originates routes: a global import policy rejects every
// route a peer sends, so nothing a router says can reach the director's RIB.
// gobgp's own goroutine owns the BGP state; Speaker keeps only the set of
// announced prefixes and the peer list, under a mutex.
package bgp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"sync"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	gbgp "github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"
)

// Speaker announces VIPs to a set of BGP peers.
type Speaker struct {
	cfg Config
	log *slog.Logger

	mu        sync.Mutex
	srv       *server.BgpServer // nil before Start and after Stop
	peers     map[netip.Addr]Peer
	announced map[netip.Prefix]bool
}

// New validates cfg and returns a speaker that is not yet running.
func New(cfg Config) (*Speaker, error) {
	cfg.Peers = slices.Clone(cfg.Peers)
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Speaker{
		cfg:       cfg,
		log:       cfg.Logger,
		peers:     make(map[netip.Addr]Peer),
		announced: make(map[netip.Prefix]bool),
	}, nil
}

// Start starts gobgp, installs the reject-all import policy and adds the
// configured peers. Prefixes announced before Start are announced now.
func (s *Speaker) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return errors.New("bgp: speaker already started")
	}
	srv := server.NewBgpServer(server.LoggerOption(quietLogger(s.log), nil))
	go srv.Serve()
	err := srv.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn:        s.cfg.ASN,
		RouterId:   s.cfg.RouterID.String(),
		ListenPort: s.cfg.ListenPort,
	}})
	if err == nil {
		err = refuseImports(ctx, srv)
	}
	if err != nil {
		srv.Stop()
		return fmt.Errorf("bgp: start: %w", err)
	}
	s.srv = srv
	for _, p := range s.cfg.Peers {
		if err := s.addPeerLocked(ctx, p); err != nil {
			s.stopLocked()
			return err
		}
	}
	for prefix := range s.announced {
		if err := s.addPathLocked(prefix); err != nil {
			s.stopLocked()
			return err
		}
	}
	return nil
}

// Stop stops gobgp at once: peers get a CEASE notification and drop the
// routes. For a graceful stop call WithdrawAll first and wait.
func (s *Speaker) Stop(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv == nil {
		return nil
	}
	srv := s.srv
	s.srv = nil
	clear(s.peers)
	done := make(chan struct{})
	go func() {
		srv.Stop()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("bgp: stop: %w", ctx.Err())
	}
}

func (s *Speaker) stopLocked() {
	s.srv.Stop()
	s.srv = nil
	clear(s.peers)
}

// refuseImports makes the global RIB refuse every route a peer sends. The
// import side of the global RIB is the only policy point for peers that are
// not route-server clients, and gobgp runs the director's own routes through
// it too (server.go propagateUpdate), so the policy accepts local routes
// explicitly and rejects everything else by default.
func refuseImports(ctx context.Context, srv *server.BgpServer) error {
	const name = "director-import"
	err := srv.AddPolicy(ctx, &api.AddPolicyRequest{Policy: &api.Policy{
		Name: name,
		Statements: []*api.Statement{{
			Name:       name + "-local",
			Conditions: &api.Conditions{RouteType: api.Conditions_ROUTE_TYPE_LOCAL},
			Actions:    &api.Actions{RouteAction: api.RouteAction_ROUTE_ACTION_ACCEPT},
		}},
	}})
	if err != nil {
		return err
	}
	return srv.SetPolicyAssignment(ctx, &api.SetPolicyAssignmentRequest{Assignment: &api.PolicyAssignment{
		Name:          "global",
		Direction:     api.PolicyDirection_POLICY_DIRECTION_IMPORT,
		Policies:      []*api.Policy{{Name: name}},
		DefaultAction: api.RouteAction_ROUTE_ACTION_REJECT,
	}})
}

func (s *Speaker) addPeerLocked(ctx context.Context, p Peer) error {
	if err := s.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: s.cfg.apiPeer(p)}); err != nil {
		return fmt.Errorf("bgp: add peer %v: %w", p.Address, err)
	}
	s.peers[p.Address] = p
	return nil
}

func (s *Speaker) deletePeerLocked(ctx context.Context, addr netip.Addr) error {
	if err := s.srv.DeletePeer(ctx, &api.DeletePeerRequest{Address: addr.String()}); err != nil {
		return fmt.Errorf("bgp: delete peer %v: %w", addr, err)
	}
	delete(s.peers, addr)
	return nil
}

// SetPeers replaces the peer list, touching only what changed: a peer that
// is unchanged keeps its session, a peer whose BFD settings alone changed is
// updated in place, any other change deletes and re-adds the peer.
func (s *Speaker) SetPeers(ctx context.Context, peers []Peer) error {
	if err := validatePeers(peers); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cfg.Peers = slices.Clone(peers)
	if s.srv == nil {
		return nil
	}
	want := make(map[netip.Addr]Peer, len(peers))
	for _, p := range peers {
		want[p.Address] = p
	}
	var errs []error
	for _, addr := range slices.Collect(maps.Keys(s.peers)) {
		if _, ok := want[addr]; !ok {
			errs = append(errs, s.deletePeerLocked(ctx, addr))
		}
	}
	for _, p := range peers {
		old, ok := s.peers[p.Address]
		switch {
		case !ok:
			errs = append(errs, s.addPeerLocked(ctx, p))
		case old.equal(p):
		case old.onlyBFDDiffers(p):
			if _, err := s.srv.UpdatePeer(ctx, &api.UpdatePeerRequest{Peer: s.cfg.apiPeer(p)}); err != nil {
				errs = append(errs, fmt.Errorf("bgp: update peer %v: %w", p.Address, err))
				continue
			}
			s.peers[p.Address] = p
		default:
			if err := s.deletePeerLocked(ctx, p.Address); err != nil {
				errs = append(errs, err)
				continue
			}
			errs = append(errs, s.addPeerLocked(ctx, p))
		}
	}
	return errors.Join(errs...)
}

func checkPrefix(prefix netip.Prefix) error {
	if !prefix.IsValid() || prefix.Addr().Zone() != "" || prefix.Addr().Is4In6() ||
		prefix.Bits() != prefix.Addr().BitLen() {
		return fmt.Errorf("bgp: %v is not a /32 or /128", prefix)
	}
	return nil
}

// path builds the route for prefix with an unspecified next hop, which gobgp
// replaces with the session's local address ("next hop self") for eBGP and
// iBGP peers alike (UpdatePathAttrs in gobgp's internal/pkg/table/path.go).
func path(prefix netip.Prefix) (*apiutil.Path, error) {
	nlri, err := gbgp.NewIPAddrPrefix(prefix)
	if err != nil {
		return nil, err
	}
	attrs := []gbgp.PathAttributeInterface{gbgp.NewPathAttributeOrigin(gbgp.BGP_ORIGIN_ATTR_TYPE_IGP)}
	fam := gbgp.RF_IPv4_UC
	if prefix.Addr().Is4() {
		nh, err := gbgp.NewPathAttributeNextHop(netip.IPv4Unspecified())
		if err != nil {
			return nil, err
		}
		attrs = append(attrs, nh)
	} else {
		fam = gbgp.RF_IPv6_UC
		mp, err := gbgp.NewPathAttributeMpReachNLRI(fam, []gbgp.PathNLRI{{NLRI: nlri}}, netip.IPv6Unspecified())
		if err != nil {
			return nil, err
		}
		attrs = append(attrs, mp)
	}
	return &apiutil.Path{Family: fam, Nlri: nlri, Attrs: attrs}, nil
}

func (s *Speaker) addPathLocked(prefix netip.Prefix) error {
	p, err := path(prefix)
	if err == nil {
		_, err = s.srv.AddPath(apiutil.AddPathRequest{Paths: []*apiutil.Path{p}})
	}
	if err != nil {
		return fmt.Errorf("bgp: announce %v: %w", prefix, err)
	}
	return nil
}

// Announce announces prefix, a /32 or /128, to every peer of its address
// family. Announcing an announced prefix does nothing. Before Start the
// prefix is only recorded.
func (s *Speaker) Announce(ctx context.Context, prefix netip.Prefix) error {
	if err := checkPrefix(prefix); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.announced[prefix] {
		return nil
	}
	if s.srv != nil {
		if err := s.addPathLocked(prefix); err != nil {
			return err
		}
	}
	s.announced[prefix] = true
	return nil
}

// Withdraw withdraws prefix from every peer. Withdrawing a prefix that is
// not announced does nothing.
func (s *Speaker) Withdraw(ctx context.Context, prefix netip.Prefix) error {
	if err := checkPrefix(prefix); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.announced[prefix] {
		return nil
	}
	if s.srv != nil {
		p, err := path(prefix)
		if err == nil {
			err = s.srv.DeletePath(apiutil.DeletePathRequest{Paths: []*apiutil.Path{p}})
		}
		if err != nil {
			return fmt.Errorf("bgp: withdraw %v: %w", prefix, err)
		}
	}
	delete(s.announced, prefix)
	return nil
}

// WithdrawAll withdraws every announced prefix and keeps the sessions up:
// the first step of a graceful stop or a drain.
func (s *Speaker) WithdrawAll(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil && len(s.announced) > 0 {
		if err := s.srv.DeletePath(apiutil.DeletePathRequest{DeleteAll: true}); err != nil {
			return fmt.Errorf("bgp: withdraw all: %w", err)
		}
	}
	clear(s.announced)
	return nil
}

// Announced returns the announced prefixes, sorted.
func (s *Speaker) Announced() []netip.Prefix {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.Collect(maps.Keys(s.announced))
	slices.SortFunc(out, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	return out
}
