// Package config is directord's configuration: the YAML schema of
// ../shared/contract.md, its defaults, and its validation. Load returns a
// Config only when the whole file is valid; otherwise it returns every
// problem found, each as FILE:LINE:COL: key: what is wrong.
package config

import (
	"net/netip"
	"time"
)

// Config is a loaded, defaulted and validated configuration.
type Config struct {
	Path     string // the file it was read from
	Node     string // default: the host name
	Control  Control
	Metrics  Metrics
	IPVS     IPVS
	Defaults Defaults
	Services []Service
	Failover *Failover // nil: a single director that always owns its VIPs
	// BGP makes this director one of a group behind the routers, each
	// announcing the VIPs; nil: none. Never set with Failover.
	BGP *BGP
	// StateDir keeps what must outlive a reboot: the drains.
	StateDir string // default DefaultStateDir
	// AllowNoServices lets a file with no service load; without it such a
	// file is refused, as a truncated copy would empty the kernel's table.
	AllowNoServices bool

	// where is the position of each value Where reports.
	where map[string]Pos

	// Warnings are problems that do not stop the file from loading:
	// settings the kernel accepts but ignores or overrides, as ipvsadm
	// does. Same format as Errors, in file order; check-config and a
	// (re)load should print them.
	Warnings []*Error
}

// Control is the control socket directorctl talks to.
type Control struct {
	Socket string // default DefaultSocket
}

// Metrics is the Prometheus endpoint.
type Metrics struct {
	Listen string // default DefaultMetricsListen; "" (explicitly) disables it
}

// IPVS holds settings of the kernel table as a whole.
type IPVS struct {
	// Timeouts, as `ipvsadm --set`; nil leaves the kernel's alone, and a
	// zero field leaves that one timeout alone.
	Timeouts *Timeouts
	// CleanupOnExit removes the services directord owns when it stops.
	CleanupOnExit bool
	// ReconcileInterval is how often the kernel is compared with the
	// config to repair drift (key reconcile_interval, default 5s).
	ReconcileInterval time.Duration
}

// Timeouts are the kernel's connection timeouts (whole seconds).
type Timeouts struct {
	TCP, TCPFin, UDP time.Duration
}

// Defaults are inherited by every service that does not override them.
type Defaults struct {
	Check Check
}

// Protocol is a virtual service's transport protocol.
type Protocol string

// Protocols.
const (
	TCP  Protocol = "tcp"
	UDP  Protocol = "udp"
	SCTP Protocol = "sctp"
)

// Forward is how packets reach a real server.
type Forward string

// Forwarding methods.
const (
	NAT    Forward = "nat"
	Direct Forward = "dr"
	Tunnel Forward = "tun"
)

// TunnelType is the encapsulation used with Forward Tunnel.
type TunnelType string

// Tunnel types.
const (
	IPIP TunnelType = "ipip"
	GUE  TunnelType = "gue"
	GRE  TunnelType = "gre"
)

// TunnelChecksum is how a tunnel's packets are checksummed; the names
// are ipvsadm's (--tun-nocsum, --tun-csum, --tun-remcsum).
type TunnelChecksum string

// Tunnel checksums.
const (
	NoCsum  TunnelChecksum = "nocsum"
	Csum    TunnelChecksum = "csum"
	RemCsum TunnelChecksum = "remcsum" // remote checksum offload: gue only
)

// OnFailure is what happens to a real server that fails its checks.
type OnFailure string

// Failure actions.
const (
	Quiesce OnFailure = "quiesce" // weight 0: existing connections finish
	Remove  OnFailure = "remove"  // the destination is deleted
)

// Pos is a place in the configuration file, for messages that refer to an
// object after loading (the reconciler's, say).
type Pos struct {
	File      string
	Line, Col int
}

// Service is one virtual service and its real servers.
type Service struct {
	Name string
	Pos  Pos `json:"-"` // where it was written; not part of what is served

	// Either VIP, Port and Protocol, or FWMark (with Family).
	VIP      netip.Addr // invalid for fwmark services; with vips, the first
	Port     uint16     // 0 only with persistence: all ports
	Protocol Protocol   // default tcp; empty for fwmark services
	FWMark   uint32
	// IPv6 reports the family: the VIP's (with vips, the first one's),
	// or for a fwmark service the family key (ipv4, the default, or ipv6).
	IPv6 bool

	// VIPs is every VIP of a service written with `vips:` of two or more,
	// VIP being the first; nil otherwise (one VIP, or fwmark), so that a
	// one-VIP service and its digest read as before. Each VIP is a kernel
	// service of its own, with the real servers of its family (KernelVIPs).
	VIPs []netip.Addr `json:",omitempty"`

	Scheduler      string   // default wlc
	SchedulerFlags []string // sh-port sh-fallback mh-port mh-fallback
	OnePacket      bool     // key one_packet: schedule each UDP datagram (ipvsadm -o)
	// Persistence is the persistence timeout; 0 means none.
	Persistence time.Duration
	// PersistenceMask is the prefix length clients are grouped by: 0..32
	// for IPv4 (from a dotted mask or a length), 0..128 for IPv6. Default
	// 32 or 128.
	PersistenceMask int

	Forward Forward // default nat, inherited by real servers
	Tunnel  TunnelSpec

	Check     Check
	OnFailure OnFailure // default quiesce
	// SlowStart, if set, ramps a recovered real server's weight from a
	// small share up to its full weight over this time, instead of
	// sending it a full share of new connections at once.
	SlowStart time.Duration
	// Announce is when the VIP is announced in bgp mode; zero (and left
	// out of the digest) without a bgp block, unless the file set it.
	Announce Announce `json:",omitzero"`

	SorryServer *RealServer // nil: none
	RealServers []RealServer
}

// TunnelSpec is the tunnel of a tun service or real server.
type TunnelSpec struct {
	Type     TunnelType     // default ipip
	Port     uint16         // required for gue, refused for the others
	Checksum TunnelChecksum // default nocsum
}

// RealServer is one destination. Forward and Tunnel are resolved: a real
// server that does not override them has its service's.
type RealServer struct {
	Address netip.Addr
	Port    uint16 // default: the service's port
	Weight  int    // 0..65535, default 1
	Forward Forward
	Tunnel  TunnelSpec
	// Connection thresholds (ipvsadm -x, -y); 0 means none.
	UpperThreshold uint32
	LowerThreshold uint32
	Pos            Pos `json:"-"` // where it was written; not part of what is served
}

// AddrPort is the real server's address and port.
func (r RealServer) AddrPort() netip.AddrPort { return netip.AddrPortFrom(r.Address, r.Port) }

// CheckType is what a check probes with.
type CheckType string

// Check types.
const (
	CheckTCP      CheckType = "tcp"
	CheckHTTP     CheckType = "http"
	CheckHTTPS    CheckType = "https"
	CheckMySQL    CheckType = "mysql"
	CheckPostgres CheckType = "postgres"
	CheckDNS      CheckType = "dns"
	CheckExec     CheckType = "exec"
	CheckNone     CheckType = "none" // always healthy: nothing is probed
)

// Check types udp, icmp and sip (package checks: udp.go, icmp.go, sip.go).
// udp uses Send and Expect as tcp does; icmp and sip have no keys of
// their own.
const (
	CheckUDP  CheckType = "udp"
	CheckICMP CheckType = "icmp"
	CheckSIP  CheckType = "sip"
)

// Check types smtp, banner and file (package checks: mail.go, filecheck.go).
const (
	CheckSMTP   CheckType = "smtp"
	CheckBanner CheckType = "banner" // ftp, pop3, imap, nntp: see BannerProtocol
	CheckFile   CheckType = "file"
)

// Check types ldap and radius (package checks: ldap.go, radius.go). Both
// read a password from PasswordFile as mysql does; radius logs in as User.
const (
	CheckLDAP   CheckType = "ldap"
	CheckRADIUS CheckType = "radius"
)

// Check is how real servers are health-checked. The check engine (package
// checks) interprets the type-specific fields. A check is merged field by
// field over the one it inherits, so a field of another type may be set
// (inherited) and is then ignored; a file can write a type-specific key
// only on a check of that type.
type Check struct {
	Type     CheckType
	Interval time.Duration
	// FastInterval, if not 0, replaces Interval while a server's state is
	// changing (some successes while down, some failures while up). It is
	// never longer than Interval.
	FastInterval time.Duration
	Timeout      time.Duration
	Rise         int
	Fall         int
	// StartHealthy makes a server healthy from the start instead of after
	// Rise successes.
	StartHealthy bool

	// Address and Port, where set (valid, not 0), replace the real
	// server's address and port as the probe's target: DR and TUN servers
	// often answer checks elsewhere than on the service port.
	Address netip.Addr
	Port    uint16

	// tcp: Send is written after connecting; Expect must then be read.
	Send   string
	Expect string

	// http and https
	Path         string
	ExpectStatus []StatusRange
	Method       string // upper case; "" means GET
	Host         string // the Host header; "" means the target address
	Body         string // a regular expression (Go syntax) the body must match; "" means any
	// https only
	ServerName         string // TLS server name; "" means Host, else the target address
	CAFile             string // PEM CA bundle instead of the system roots; read by the check, not at load
	InsecureSkipVerify bool

	// exec: Command is the argv (no shell); Command[0] is an absolute
	// path. {address} and {port} in any element are replaced by the
	// target's. With DynamicWeight the first line of output, a percentage,
	// scales the server's weight.
	Command       []string
	DynamicWeight bool

	// mysql and postgres: User logs in with the password read from
	// PasswordFile or the environment variable PasswordEnv (never written
	// in the config); Query (default SELECT 1) runs in Database, and with
	// Expect its first value must equal Expect.
	User         string
	PasswordFile string
	PasswordEnv  string
	Database     string
	Query        string

	// dns: the question QueryName/QueryType (default A) must be answered
	// with Rcode (default NOERROR) and, if set, a record containing Answer.
	QueryName string
	QueryType string
	Rcode     string
	Answer    string

	// smtp, banner, file, and the http digest and exec weight_from_exit
	// (check_native.go). smtp: HeloName is sent with EHLO ("" means the
	// host name). banner: BannerProtocol (ftp, pop3, imap, nntp) picks the
	// greeting and, with User, the login (password as mysql's). file: File
	// holds an integer, 0 failed, else healthy at that percentage of the
	// weight (at most 100). http, https: Digest is "md5:HEX" or
	// "sha256:HEX" of the body. exec: WeightFromExit is keepalived's
	// misc_dynamic (exit 2-255 sets the weight percentage to exit - 2).
	HeloName       string `json:",omitempty"`
	BannerProtocol string `json:",omitempty"`
	File           string `json:",omitempty"`
	Digest         string `json:",omitempty"`
	WeightFromExit bool   `json:",omitempty"`

	// ldap: a bind as BindDN with the password in PasswordFile (none of
	// the two: an anonymous bind), then a base-scope search of BaseDN
	// ("", the root DSE, by default) that must return the entry. TLS is
	// "starttls", "ldaps" or "" (none); ServerName, CAFile and
	// InsecureSkipVerify then apply as for https.
	BindDN string
	BaseDN string
	TLS    string
	// radius: an Access-Request for User with the password in
	// PasswordFile, authenticated with the shared secret in SecretFile.
	SecretFile string
}

// StatusRange is an inclusive range of HTTP status codes; a single code
// is a range of one.
type StatusRange struct{ Min, Max int }

// Failover is the director pair's configuration.
type Failover struct {
	Priority     int
	AutoFailback bool
	Keepalive    time.Duration
	Deadtime     time.Duration
	Initdead     time.Duration
	AuthKeyFile  string
	Port         uint16
	Links        []Link
	VIPs         []VIP
	PingNodes    []netip.Addr
	Sync         *Sync
	Notify       string
	// Fence runs as `fence PEER` and must succeed before this director
	// takes over from a peer it declared dead.
	Fence       string
	HookTimeout time.Duration
}

// Link is one heartbeat path: unicast to Peer or multicast to Multicast
// on Interface, or a serial line.
type Link struct {
	Interface string
	Peer      netip.Addr
	Multicast netip.Addr
	Serial    string
}

// VIP is an address the active director holds.
type VIP struct {
	Address   netip.Prefix
	Interface string
}

// Sync is the kernel's IPVS connection sync between the pair.
type Sync struct {
	Interface string
	SyncID    uint8
}

// BGP is this director's BGP speaker (key bgp): it announces the VIPs of
// its services to Peers, each as a /32 or /128.
type BGP struct {
	ASN          uint32
	RouterID     netip.Addr    // IPv4
	HoldTime     time.Duration // whole seconds, 0 or 3s to 65535s; default DefaultHoldTime
	Peers        []BGPPeer     // at least one, unique addresses
	VIPInterface string        // where the VIPs are held; default DefaultVIPInterface
	DrainTime    time.Duration // graceful stop: withdraw, wait this long, stop; default DefaultDrainTime
	Sync         *Sync         // nil: no connection sync
	Group        *BGPGroup     // nil: no heartbeats among the directors
}

// BGPPeer is one router.
type BGPPeer struct {
	Address netip.Addr
	ASN     uint32
	BFD     *BFD // nil: no BFD
	// PasswordFile holds the TCP MD5 password; "" for none. Read (and
	// judged) by package preflight, not here.
	PasswordFile string
}

// BFD is a peer's fast failure detection: the peer is down after
// Multiplier intervals without a BFD packet.
type BFD struct {
	Interval   time.Duration // 10ms to 1m; default DefaultBFDInterval
	Multiplier int           // 1 to 255; default DefaultBFDMultiplier
}

// BGPGroup is the directors' heartbeats to one another.
type BGPGroup struct {
	Links       []Link // network links only, no serial
	AuthKeyFile string
}

// Announce is when a service's VIP is announced.
type Announce struct {
	// MinHealthy real servers must pass their checks; DefaultMinHealthy
	// in bgp mode.
	MinHealthy int
}

// Defaults that are not zero values.
const (
	DefaultSocket            = "/run/director/director.sock"
	DefaultMetricsListen     = "127.0.0.1:9474"
	DefaultScheduler         = "wlc"
	DefaultReconcileInterval = 5 * time.Second
	DefaultHeartbeatPort     = 694
	// DefaultStateDir outlives a reboot, unlike the control socket's
	// directory under /run: a drain must hold after one.
	DefaultStateDir = "/var/lib/director"
)

// DefaultCheck applies where neither a service nor defaults.check says
// otherwise: a TCP connect every 2s, as keepalived and ldirectord default.
var DefaultCheck = Check{Type: CheckTCP, Interval: 2 * time.Second, Timeout: time.Second, Rise: 2, Fall: 3}

// Schedulers are the kernel's IPVS schedulers.
var Schedulers = []string{"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh", "twos"}
