package bgp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	api "github.com/osrg/gobgp/v4/api"
)

// PeerStatus is one peer's state, for status output and metrics.
type PeerStatus struct {
	Address netip.Addr
	ASN     uint32
	// State is the BGP FSM state: idle, connect, active, opensent,
	// openconfirm or established.
	State string
	// Since is when the session was last established; zero if it is not.
	Since time.Time
	// Uptime is time.Since(Since) when established, else 0.
	Uptime time.Duration
	// Flops counts the times the session went down after being established.
	Flops uint32
	// PrefixesSent is the number of prefixes advertised on the session.
	PrefixesSent uint64
	// BFD is the BFD session state (up, down, init, admindown); "" if the
	// peer has no BFD.
	BFD string
	// LastError is gobgp's reason for the last disconnect, if any.
	LastError string
	// Received counts the messages received from the peer on every
	// session. A graceful stop takes one received after its withdrawal
	// was sent as the peer's word that it has read the withdrawal: BGP
	// has no acknowledgement, but a peer reads its session in order.
	Received uint64
	// Sent counts the messages sent to the peer.
	Sent uint64
}

// Established reports whether the BGP session is up.
func (p PeerStatus) Established() bool { return p.State == "established" }

var errNotRunning = errors.New("bgp: speaker not running")

// Peers returns the state of every configured peer, sorted by address.
func (s *Speaker) Peers(ctx context.Context) ([]PeerStatus, error) {
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	if srv == nil {
		return nil, errNotRunning
	}
	bfd := make(map[string]string)
	srv.ListBfdPeer(ctx, func(addr string, st *api.BfdPeerState) {
		bfd[addr] = bfdState(st.SessionState)
	})
	var out []PeerStatus
	err := srv.ListPeer(ctx, &api.ListPeerRequest{EnableAdvertised: true}, func(p *api.Peer) {
		st := PeerStatus{}
		if p.Conf != nil {
			st.Address, _ = netip.ParseAddr(p.Conf.NeighborAddress)
			st.ASN = p.Conf.PeerAsn
		}
		if ps := p.State; ps != nil {
			st.State = sessionState(ps.SessionState)
			st.Flops = ps.Flops
			st.LastError = ps.DisconnectMessage
			st.Received = ps.GetMessages().GetReceived().GetTotal()
			st.Sent = ps.GetMessages().GetSent().GetTotal()
		}
		if st.Established() && p.Timers != nil && p.Timers.State != nil && p.Timers.State.Uptime != nil {
			st.Since = p.Timers.State.Uptime.AsTime()
			st.Uptime = time.Since(st.Since)
		}
		for _, af := range p.AfiSafis {
			if af.State != nil {
				st.PrefixesSent += af.State.Advertised
			}
		}
		st.BFD = bfd[st.Address.String()]
		out = append(out, st)
	})
	if err != nil {
		return nil, fmt.Errorf("bgp: list peers: %w", err)
	}
	slices.SortFunc(out, func(a, b PeerStatus) int { return a.Address.Compare(b.Address) })
	return out, nil
}

func sessionState(s api.PeerState_SessionState) string {
	if s == api.PeerState_SESSION_STATE_UNSPECIFIED {
		return "idle"
	}
	return strings.ToLower(strings.TrimPrefix(s.String(), "SESSION_STATE_"))
}

func bfdState(s api.BfdSessionState) string {
	switch s {
	case api.BfdSessionState_BFD_SESSION_STATE_UP:
		return "up"
	case api.BfdSessionState_BFD_SESSION_STATE_INIT:
		return "init"
	case api.BfdSessionState_BFD_SESSION_STATE_ADMIN_DOWN:
		return "admindown"
	default:
		return "down"
	}
}
