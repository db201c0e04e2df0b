package bgp

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	api "github.com/osrg/gobgp/v4/api"
)

// DefaultHoldTime is the BGP hold time when Config.HoldTime is zero; the
// keepalive interval is always a third of the hold time.
const DefaultHoldTime = 3 * time.Second

// connectRetry and idleHoldAfterReset are in seconds, gobgp's unit. gobgp's
// defaults (120 s and 30 s) would leave a router that was down at start, or a
// session BFD just reset, unannounced for minutes; 2 s is gobgp's floor.
const (
	connectRetry       = 2
	idleHoldAfterReset = 1
)

// Config mirrors the `bgp` block of the director's configuration.
type Config struct {
	ASN      uint32
	RouterID netip.Addr    // IPv4, required
	HoldTime time.Duration // 0: DefaultHoldTime; whole seconds, at least 3 s
	// ListenPort is the TCP port to accept sessions on: 0 means 179, -1 means
	// do not listen and only dial.
	ListenPort int32
	Peers      []Peer
	Logger     *slog.Logger // nil: slog.Default()
}

// Peer is one BGP neighbour, normally a router.
//
// A peer carries the address family of its own address only: an IPv4 peer
// receives the IPv4 VIPs and an IPv6 peer the IPv6 ones. gobgp would
// otherwise send an IPv6 route over an IPv4 session with an IPv4-mapped next
// hop (::ffff:a.b.c.d), which routers do not install.
type Peer struct {
	Address  netip.Addr
	ASN      uint32
	Port     uint16 // TCP port to dial; 0: 179
	Password string // TCP MD5 (RFC 2385) key; "" for none
	BFD      *BFD   // nil: no BFD
}

// BFD asks for RFC 5880 asynchronous mode on a peer's session: a BFD
// failure resets the BGP session at once instead of after the hold time.
type BFD struct {
	Interval   time.Duration // desired transmit and required receive interval
	Multiplier int           // detection multiplier, 1..255
}

func (b *BFD) equal(o *BFD) bool {
	if b == nil || o == nil {
		return b == o
	}
	return *b == *o
}

func (p Peer) equal(o Peer) bool {
	return p.Address == o.Address && p.ASN == o.ASN && p.Port == o.Port &&
		p.Password == o.Password && p.BFD.equal(o.BFD)
}

// onlyBFDDiffers reports whether p and o differ in their BFD settings only,
// a change gobgp applies without resetting the BGP session.
func (p Peer) onlyBFDDiffers(o Peer) bool {
	return !p.BFD.equal(o.BFD) && p.Address == o.Address && p.ASN == o.ASN &&
		p.Port == o.Port && p.Password == o.Password
}

func (c *Config) validate() error {
	if c.ASN == 0 {
		return errors.New("bgp: asn is required")
	}
	if !c.RouterID.Is4() {
		return fmt.Errorf("bgp: router id %v must be an IPv4 address", c.RouterID)
	}
	if c.HoldTime == 0 {
		c.HoldTime = DefaultHoldTime
	}
	if c.HoldTime < 3*time.Second || c.HoldTime%time.Second != 0 || c.HoldTime > 65535*time.Second {
		return fmt.Errorf("bgp: hold time %v must be whole seconds from 3s to 65535s", c.HoldTime)
	}
	if c.ListenPort < -1 || c.ListenPort > 65535 {
		return fmt.Errorf("bgp: listen port %d out of range", c.ListenPort)
	}
	return validatePeers(c.Peers)
}

func validatePeers(peers []Peer) error {
	seen := make(map[netip.Addr]bool, len(peers))
	for _, p := range peers {
		if !p.Address.IsValid() || p.Address.Zone() != "" || p.Address.Is4In6() {
			return fmt.Errorf("bgp: peer address %v must be a plain IPv4 or IPv6 address", p.Address)
		}
		if seen[p.Address] {
			return fmt.Errorf("bgp: peer %v listed twice", p.Address)
		}
		seen[p.Address] = true
		if p.ASN == 0 {
			return fmt.Errorf("bgp: peer %v: asn is required", p.Address)
		}
		if len(p.Password) > 80 { // TCP_MD5SIG_MAXKEYLEN
			return fmt.Errorf("bgp: peer %v: md5 password longer than 80 bytes", p.Address)
		}
		if b := p.BFD; b != nil {
			if b.Interval < time.Millisecond || b.Interval > time.Hour {
				return fmt.Errorf("bgp: peer %v: bfd interval %v out of range", p.Address, b.Interval)
			}
			if b.Multiplier < 1 || b.Multiplier > 255 {
				return fmt.Errorf("bgp: peer %v: bfd multiplier %d must be 1..255", p.Address, b.Multiplier)
			}
		}
	}
	return nil
}

// family is the one address family a session with addr carries.
func family(addr netip.Addr) *api.Family {
	if addr.Is4() {
		return &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
	}
	return &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}
}

// apiPeer builds gobgp's peer configuration. The same Peer always builds the
// same configuration, which UpdatePeer relies on to change only BFD.
func (c *Config) apiPeer(p Peer) *api.Peer {
	hold := uint64(c.HoldTime / time.Second)
	ap := &api.Peer{
		Conf: &api.PeerConf{
			NeighborAddress: p.Address.String(),
			PeerAsn:         p.ASN,
			AuthPassword:    p.Password,
		},
		Timers: &api.Timers{Config: &api.TimersConfig{
			HoldTime:               hold,
			KeepaliveInterval:      max(hold/3, 1),
			ConnectRetry:           connectRetry,
			IdleHoldTimeAfterReset: idleHoldAfterReset,
		}},
		Transport: &api.Transport{RemotePort: uint32(p.Port)},
		AfiSafis: []*api.AfiSafi{{
			Config: &api.AfiSafiConfig{Family: family(p.Address), Enabled: true},
		}},
	}
	if b := p.BFD; b != nil {
		us := uint32(b.Interval / time.Microsecond)
		ap.Bfd = &api.BfdPeerConfig{
			Enabled:                  true,
			DesiredMinimumTxInterval: us,
			RequiredMinimumReceive:   us,
			DetectionMultiplier:      uint32(b.Multiplier),
		}
	}
	return ap
}
