package bgp

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	gbgp "github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"
	"golang.org/x/sys/unix"
)

// The tests run a plain gobgp server as "the router" on loopback aliases
// (127.0.0.0/8 needs no configuration on Linux lo) and on ::1. Its import
// policy is gobgp's default, accept, so it shows what the speaker sends.

var (
	directorV4 = netip.MustParseAddr("127.0.0.1")
	routerV4   = netip.MustParseAddr("127.0.0.2")
	loopV6     = netip.MustParseAddr("::1")
	vip4       = netip.MustParsePrefix("192.0.2.10/32")
	vip6       = netip.MustParsePrefix("2001:db8::10/128")
	routerNet4 = netip.MustParsePrefix("198.51.100.0/24")
	routerNet6 = netip.MustParsePrefix("2001:db8:ff::/48")
)

const (
	directorASN = 65001
	routerASN   = 65000
)

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

func freePort(t *testing.T, addr netip.Addr) uint16 {
	t.Helper()
	l, err := net.Listen("tcp", netip.AddrPortFrom(addr, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return uint16(l.Addr().(*net.TCPAddr).Port)
}

func hasIPv6Loopback() bool {
	l, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// router is a passive gobgp server that accepts every route.
type router struct {
	srv  *server.BgpServer
	port uint16
}

func startRouter(t *testing.T, listen []netip.Addr, port uint16, neighbors map[netip.Addr]string) *router {
	t.Helper()
	srv := server.NewBgpServer(server.LoggerOption(quietLogger(testLogger(t)), nil))
	go srv.Serve()
	t.Cleanup(srv.Stop)
	var addrs []string
	for _, a := range listen {
		addrs = append(addrs, a.String())
	}
	ctx := context.Background()
	if err := srv.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn: routerASN, RouterId: "10.0.0.1", ListenPort: int32(port), ListenAddresses: addrs,
	}}); err != nil {
		t.Fatal(err)
	}
	for addr, password := range neighbors {
		if err := srv.AddPeer(ctx, &api.AddPeerRequest{Peer: &api.Peer{
			Conf:      &api.PeerConf{NeighborAddress: addr.String(), PeerAsn: directorASN, AuthPassword: password},
			Timers:    &api.Timers{Config: &api.TimersConfig{HoldTime: 3, KeepaliveInterval: 1, ConnectRetry: 2}},
			Transport: &api.Transport{PassiveMode: true},
			AfiSafis:  []*api.AfiSafi{{Config: &api.AfiSafiConfig{Family: family(addr), Enabled: true}}},
		}}); err != nil {
			t.Fatal(err)
		}
	}
	return &router{srv: srv, port: port}
}

// announce makes the router send prefix to its neighbours.
func (r *router) announce(t *testing.T, prefix netip.Prefix, nexthop netip.Addr) {
	t.Helper()
	p, err := path(prefix)
	if err != nil {
		t.Fatal(err)
	}
	for i, a := range p.Attrs {
		switch a.(type) {
		case *gbgp.PathAttributeNextHop:
			p.Attrs[i], _ = gbgp.NewPathAttributeNextHop(nexthop)
		case *gbgp.PathAttributeMpReachNLRI:
			p.Attrs[i], _ = gbgp.NewPathAttributeMpReachNLRI(p.Family, []gbgp.PathNLRI{{NLRI: p.Nlri}}, nexthop)
		}
	}
	if _, err := r.srv.AddPath(apiutil.AddPathRequest{Paths: []*apiutil.Path{p}}); err != nil {
		t.Fatal(err)
	}
}

// ribNexthops returns the next hops of prefix in a table of srv ("" name:
// the global RIB; a peer address with api.TableType_TABLE_TYPE_ADJ_IN).
func ribNexthops(t *testing.T, srv *server.BgpServer, tt api.TableType, name string, prefix netip.Prefix) []netip.Addr {
	t.Helper()
	fam := gbgp.RF_IPv4_UC
	if prefix.Addr().Is6() {
		fam = gbgp.RF_IPv6_UC
	}
	var nhs []netip.Addr
	err := srv.ListPath(apiutil.ListPathRequest{TableType: tt, Name: name, Family: fam}, func(nlri gbgp.NLRI, paths []*apiutil.Path) {
		if nlri.String() != prefix.String() {
			return
		}
		for _, p := range paths {
			for _, a := range p.Attrs {
				switch a := a.(type) {
				case *gbgp.PathAttributeNextHop:
					nhs = append(nhs, a.Value)
				case *gbgp.PathAttributeMpReachNLRI:
					nhs = append(nhs, a.Nexthop)
				}
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return nhs
}

// eventually polls cond until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func peerStatus(t *testing.T, s *Speaker, addr netip.Addr) (PeerStatus, bool) {
	t.Helper()
	ps, err := s.Peers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if p.Address == addr {
			return p, true
		}
	}
	return PeerStatus{}, false
}

func routerPeerState(t *testing.T, r *router, addr netip.Addr) api.PeerState_SessionState {
	t.Helper()
	st := api.PeerState_SESSION_STATE_UNSPECIFIED
	err := r.srv.ListPeer(context.Background(), &api.ListPeerRequest{Address: addr.String()}, func(p *api.Peer) {
		st = p.State.SessionState
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func newSpeaker(t *testing.T, peers ...Peer) *Speaker {
	t.Helper()
	s, err := New(Config{ASN: directorASN, RouterID: netip.MustParseAddr("10.0.0.2"), ListenPort: -1,
		Peers: peers, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return s
}

func awaitEstablished(t *testing.T, s *Speaker, addr netip.Addr) PeerStatus {
	t.Helper()
	var st PeerStatus
	eventually(t, 15*time.Second, fmt.Sprintf("session to %v", addr), func() bool {
		st, _ = peerStatus(t, s, addr)
		return st.Established()
	})
	return st
}

func TestValidate(t *testing.T) {
	id := netip.MustParseAddr("10.0.0.2")
	bad := map[string]Config{
		"no asn":       {RouterID: id},
		"v6 router id": {ASN: 1, RouterID: loopV6},
		"short hold":   {ASN: 1, RouterID: id, HoldTime: time.Second},
		"hold ms":      {ASN: 1, RouterID: id, HoldTime: 3500 * time.Millisecond},
		"dup peer":     {ASN: 1, RouterID: id, Peers: []Peer{{Address: routerV4, ASN: 2}, {Address: routerV4, ASN: 2}}},
		"peer no asn":  {ASN: 1, RouterID: id, Peers: []Peer{{Address: routerV4}}},
		"bfd mult":     {ASN: 1, RouterID: id, Peers: []Peer{{Address: routerV4, ASN: 2, BFD: &BFD{Interval: time.Second}}}},
		"mapped peer":  {ASN: 1, RouterID: id, Peers: []Peer{{Address: netip.MustParseAddr("::ffff:10.0.0.1"), ASN: 2}}},
	}
	for name, c := range bad {
		if _, err := New(c); err == nil {
			t.Errorf("%s: New accepted %+v", name, c)
		}
	}
	s, err := New(Config{ASN: 1, RouterID: id})
	if err != nil {
		t.Fatal(err)
	}
	if s.cfg.HoldTime != DefaultHoldTime {
		t.Errorf("hold time %v, want default %v", s.cfg.HoldTime, DefaultHoldTime)
	}
	for _, p := range []string{"192.0.2.0/24", "2001:db8::/64", "::ffff:192.0.2.1/128"} {
		if err := s.Announce(context.Background(), netip.MustParsePrefix(p)); err == nil {
			t.Errorf("Announce(%s) accepted", p)
		}
	}
}

func TestAnnounceWithdrawRefuse(t *testing.T) {
	v6 := hasIPv6Loopback()
	port := freePort(t, routerV4)
	listen := []netip.Addr{routerV4}
	neighbors := map[netip.Addr]string{directorV4: ""}
	peers := []Peer{{Address: routerV4, ASN: routerASN, Port: port}}
	if v6 {
		listen = append(listen, loopV6)
		neighbors[loopV6] = ""
		peers = append(peers, Peer{Address: loopV6, ASN: routerASN, Port: port})
	} else {
		t.Log("no IPv6 loopback: IPv6 part skipped")
	}
	r := startRouter(t, listen, port, neighbors)
	r.announce(t, routerNet4, routerV4)
	if v6 {
		r.announce(t, routerNet6, loopV6)
	}
	s := newSpeaker(t, peers...)
	ctx := context.Background()

	// Announced before the sessions are up: sent once they are.
	if err := s.Announce(ctx, vip4); err != nil {
		t.Fatal(err)
	}
	for _, p := range peers {
		awaitEstablished(t, s, p.Address)
	}
	if v6 {
		if err := s.Announce(ctx, vip6); err != nil {
			t.Fatal(err)
		}
	}
	check := []struct {
		vip, peerNet netip.Prefix
		self, peer   netip.Addr
	}{{vip4, routerNet4, directorV4, routerV4}}
	if v6 {
		check = append(check, struct {
			vip, peerNet netip.Prefix
			self, peer   netip.Addr
		}{vip6, routerNet6, loopV6, loopV6})
	}
	for _, c := range check {
		eventually(t, 5*time.Second, fmt.Sprintf("%v at the router with next hop %v", c.vip, c.self), func() bool {
			nhs := ribNexthops(t, r.srv, api.TableType_TABLE_TYPE_GLOBAL, "", c.vip)
			return len(nhs) == 1 && nhs[0] == c.self
		})
		// The router's route reaches the speaker's Adj-RIB-In and stops there.
		eventually(t, 5*time.Second, fmt.Sprintf("%v received from the router", c.peerNet), func() bool {
			return len(ribNexthops(t, s.srv, api.TableType_TABLE_TYPE_ADJ_IN, c.peer.String(), c.peerNet)) > 0
		})
		if nhs := ribNexthops(t, s.srv, api.TableType_TABLE_TYPE_GLOBAL, "", c.peerNet); len(nhs) > 0 {
			t.Errorf("the speaker accepted the router's %v (next hops %v)", c.peerNet, nhs)
		}
		// A v4 VIP never goes to a v6 peer and the other way round.
		if c.vip.Addr().Is6() {
			if nhs := ribNexthops(t, r.srv, api.TableType_TABLE_TYPE_ADJ_IN, directorV4.String(), vip6); len(nhs) > 0 {
				t.Errorf("%v sent over the IPv4 session", vip6)
			}
		}
	}
	st, _ := peerStatus(t, s, routerV4)
	if st.PrefixesSent != 1 || st.ASN != routerASN || st.Uptime <= 0 || st.BFD != "" {
		t.Errorf("status %+v: want 1 prefix sent, asn %d, uptime > 0, no BFD", st, routerASN)
	}
	if got := s.Announced(); len(got) != len(check) || got[0] != vip4 {
		t.Errorf("Announced() = %v", got)
	}

	if err := s.Withdraw(ctx, vip4); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "withdrawal of "+vip4.String(), func() bool {
		return len(ribNexthops(t, r.srv, api.TableType_TABLE_TYPE_GLOBAL, "", vip4)) == 0
	})
	if v6 {
		if err := s.Announce(ctx, vip4); err != nil {
			t.Fatal(err)
		}
		if err := s.WithdrawAll(ctx); err != nil {
			t.Fatal(err)
		}
		eventually(t, 5*time.Second, "withdrawal of everything", func() bool {
			return len(ribNexthops(t, r.srv, api.TableType_TABLE_TYPE_GLOBAL, "", vip4)) == 0 &&
				len(ribNexthops(t, r.srv, api.TableType_TABLE_TYPE_GLOBAL, "", vip6)) == 0
		})
	}
	if got := s.Announced(); len(got) != 0 {
		t.Errorf("Announced() = %v after withdrawing all", got)
	}
	// The sessions stayed up throughout.
	for _, p := range peers {
		if st, _ := peerStatus(t, s, p.Address); !st.Established() || st.Flops != 0 {
			t.Errorf("peer %v: %+v, want established without flops", p.Address, st)
		}
	}
}

func TestSetPeers(t *testing.T) {
	port := freePort(t, routerV4)
	router3 := netip.MustParseAddr("127.0.0.3")
	r := startRouter(t, []netip.Addr{routerV4}, port, map[netip.Addr]string{directorV4: ""})
	r3 := startRouter(t, []netip.Addr{router3}, port, map[netip.Addr]string{directorV4: ""})
	p2 := Peer{Address: routerV4, ASN: routerASN, Port: port}
	p3 := Peer{Address: router3, ASN: routerASN, Port: port}
	s := newSpeaker(t, p2)
	ctx := context.Background()
	before := awaitEstablished(t, s, routerV4)

	same := func(what string) {
		t.Helper()
		st, ok := peerStatus(t, s, routerV4)
		if !ok || !st.Established() || !st.Since.Equal(before.Since) || st.Flops != before.Flops {
			t.Errorf("%s reset the session to %v: before %+v, after %+v", what, routerV4, before, st)
		}
		if got := routerPeerState(t, r, directorV4); got != api.PeerState_SESSION_STATE_ESTABLISHED {
			t.Errorf("%s: router sees %v", what, got)
		}
	}
	if err := s.SetPeers(ctx, []Peer{p2}); err != nil {
		t.Fatal(err)
	}
	same("SetPeers with the same peers")

	// Add a peer: the new one comes up, the old one is untouched.
	if err := s.SetPeers(ctx, []Peer{p2, p3}); err != nil {
		t.Fatal(err)
	}
	awaitEstablished(t, s, router3)
	same("adding a peer")

	// Only BFD changes: updated in place, no reset (nobody answers BFD here,
	// and a BFD session that never came up does not reset BGP).
	withBFD := p2
	withBFD.BFD = &BFD{Interval: 100 * time.Millisecond, Multiplier: 3}
	if err := s.SetPeers(ctx, []Peer{withBFD, p3}); err != nil {
		t.Fatal(err)
	}
	same("enabling BFD")
	eventually(t, 5*time.Second, "BFD state reported", func() bool {
		st, _ := peerStatus(t, s, routerV4)
		return st.BFD == "down"
	})

	// Remove a peer: its session goes down at the router.
	if err := s.SetPeers(ctx, []Peer{withBFD}); err != nil {
		t.Fatal(err)
	}
	if _, ok := peerStatus(t, s, router3); ok {
		t.Errorf("%v still configured after removal", router3)
	}
	eventually(t, 5*time.Second, "router 3 to lose the session", func() bool {
		return routerPeerState(t, r3, directorV4) != api.PeerState_SESSION_STATE_ESTABLISHED
	})
	same("removing another peer")

	// A changed ASN re-creates the peer: the router refuses the new one.
	wrongAS := withBFD
	wrongAS.ASN = 64999
	if err := s.SetPeers(ctx, []Peer{wrongAS}); err != nil {
		t.Fatal(err)
	}
	if st, _ := peerStatus(t, s, routerV4); st.Established() || st.ASN != 64999 {
		t.Errorf("after changing the peer's ASN: %+v, want a new session with asn 64999", st)
	}
	if err := s.SetPeers(ctx, []Peer{{Address: routerV4}}); err == nil {
		t.Error("SetPeers accepted a peer without ASN")
	}
}

// md5Supported reports whether the kernel accepts TCP_MD5SIG (it needs
// CONFIG_TCP_MD5SIG; setting it on one's own socket needs no privilege). It
// asks on a plain TCP socket: Go's listeners are MPTCP sockets by default
// since Go 1.24, and those refuse TCP_MD5SIG with ENOPROTOOPT (gobgp's own
// listener turns MPTCP off for this reason: internal/pkg/netutils/listener.go).
func md5Supported(t *testing.T) bool {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	sig := unix.TCPMD5Sig{Keylen: 3}
	sig.Addr.Family = unix.AF_INET
	copy(sig.Addr.Data[2:], []byte{127, 0, 0, 2})
	copy(sig.Key[:], "key")
	if err := unix.SetsockoptTCPMD5Sig(fd, unix.IPPROTO_TCP, unix.TCP_MD5SIG, &sig); err != nil {
		t.Logf("TCP_MD5SIG: %v", err)
		return false
	}
	return true
}

func TestMD5(t *testing.T) {
	if !md5Supported(t) {
		t.Skip("kernel refuses TCP_MD5SIG")
	}
	port := freePort(t, routerV4)
	r := startRouter(t, []netip.Addr{routerV4}, port, map[netip.Addr]string{directorV4: "s3cret"})
	ctx := context.Background()

	good := newSpeaker(t, Peer{Address: routerV4, ASN: routerASN, Port: port, Password: "s3cret"})
	awaitEstablished(t, good, routerV4)
	if err := good.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "router to lose the session", func() bool {
		return routerPeerState(t, r, directorV4) != api.PeerState_SESSION_STATE_ESTABLISHED
	})

	for _, pw := range []string{"wrong", ""} {
		bad := newSpeaker(t, Peer{Address: routerV4, ASN: routerASN, Port: port, Password: pw})
		// A wrong or missing key is dropped silently by the kernel: there is
		// no event to wait for, so watch for a bounded time.
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			if st, _ := peerStatus(t, bad, routerV4); st.Established() {
				t.Fatalf("password %q established a session the router keys with another", pw)
			}
			if got := routerPeerState(t, r, directorV4); got == api.PeerState_SESSION_STATE_ESTABLISHED {
				t.Fatalf("password %q: router established", pw)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err := bad.Stop(ctx); err != nil {
			t.Fatal(err)
		}
	}
}
