package control

import "time"

// CmdDrainNode and CmdEnableNode take this director out of a bgp group's
// announcements, keeping it forwarding, and put it back.
const (
	CmdDrainNode  Command = "drain-node"
	CmdEnableNode Command = "enable-node"
)

// BGPStatus is a director's part in a bgp group: its sessions with the
// routers, what it announces and why, and the group it sees. The types
// are plain data, so that directorctl does not link the BGP speaker.
type BGPStatus struct {
	// Drained is true after `directorctl drain-node`: nothing is
	// announced, and the kernel keeps forwarding what still arrives.
	Drained bool `json:"drained"`
	// Stopping is true during a graceful stop's drain_time.
	Stopping bool      `json:"stopping,omitempty"`
	Peers    []BGPPeer `json:"peers"`
	VIPs     []BGPVIP  `json:"vips"`
	// Group is nil without bgp.group.
	Group *GroupStatus `json:"group,omitempty"`
}

// BGPPeer is one BGP session with a router.
type BGPPeer struct {
	Address string `json:"address"`
	ASN     uint32 `json:"asn"`
	// State is the BGP FSM state: idle, connect, active, opensent,
	// openconfirm or established.
	State string `json:"state"`
	// Since is when the session was last established; zero if it is not.
	Since        time.Time `json:"since,omitzero"`
	Flops        uint32    `json:"flops"`
	PrefixesSent uint64    `json:"prefixes_sent"`
	// BFD is up, down, init or admindown; "" without BFD.
	BFD string `json:"bfd,omitempty"`
	// LastError is why the session last went down, if it did.
	LastError string `json:"last_error,omitempty"`
}

// BGPVIP is one VIP of a service and whether it is announced.
type BGPVIP struct {
	Service   string `json:"service"`
	VIP       string `json:"vip"` // a prefix: 192.0.2.10/32, 2001:db8::10/128
	Announced bool   `json:"announced"`
	// Reason says why a VIP is not announced ("node drained", "1 of 2
	// real servers healthy, announce.min_healthy is 2", ...); "" when it is.
	Reason string `json:"reason,omitempty"`
	// Healthy real servers now, of Servers configured.
	Healthy int `json:"healthy"`
	Servers int `json:"servers"`
}

// GroupStatus is the group of directors as this one sees it through
// their heartbeats.
type GroupStatus struct {
	// Digest is this director's group digest (services and kernel),
	// in hex.
	Digest  string        `json:"digest"`
	Members []GroupMember `json:"members"` // this director first, then by node
	// Mismatched counts live members whose digest differs from ours.
	Mismatched int `json:"mismatched"`
}

// GroupMember is one director of the group.
type GroupMember struct {
	Node string `json:"node"`
	Self bool   `json:"self,omitempty"`
	// Alive: heard from within the dead time.
	Alive    bool      `json:"alive"`
	LastSeen time.Time `json:"last_seen,omitzero"`
	// Announced are the VIP prefixes the member says it announces.
	Announced []string `json:"announced"`
	Drained   bool     `json:"drained,omitempty"`
	// DigestMatch: its service config digest equals ours.
	DigestMatch bool   `json:"digest_match"`
	Digest      string `json:"digest"`
}
