// Package ipvssync keeps the pair's IPVS connection tables in step: it
// starts and stops the kernel's sync daemons (SyncConn), and hands a
// director's whole connection table to the peer's backup daemon when it
// steps down (Handover), in the kernel's own sync format. It knows
// nothing of roles: the caller says when to be master and when to hand
// over.
package ipvssync

import (
	"errors"
	"fmt"
	"net/netip"
	"syscall"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"
)

// The kernel's IPVS generic netlink interface for sync daemons, from
// linux/ip_vs.h. cloudflare/ipvs speaks the same family but has no
// daemon commands.
const (
	ipvsGenlName    = "IPVS"
	ipvsGenlVersion = 1

	ipvsCmdNewDaemon = 9
	ipvsCmdDelDaemon = 10
	ipvsCmdGetDaemon = 11

	ipvsCmdAttrDaemon = 3

	ipvsDaemonAttrState       = 1
	ipvsDaemonAttrMcastIfn    = 2
	ipvsDaemonAttrSyncID      = 3
	ipvsDaemonAttrSyncMaxLen  = 4
	ipvsDaemonAttrMcastGroup  = 5
	ipvsDaemonAttrMcastGroup6 = 6
	ipvsDaemonAttrMcastPort   = 7
	ipvsDaemonAttrMcastTTL    = 8

	// The kernel's policy takes IP_VS_IFNAME_MAXLEN-1 bytes plus a NUL.
	ipvsIfNameMax = 15
	// The sync protocol carries the sync id in one byte: a larger id
	// would be truncated on the wire and match another pair's.
	ipvsSyncIDMax = 255
)

// SyncState is a sync daemon's state as the kernel reports it.
type SyncState uint32

// The kernel's IP_VS_STATE_MASTER and IP_VS_STATE_BACKUP. A namespace
// runs at most one daemon of each, and may run both at once.
const (
	SyncMaster SyncState = 1
	SyncBackup SyncState = 2
)

func (s SyncState) String() string {
	switch s {
	case SyncMaster:
		return "master"
	case SyncBackup:
		return "backup"
	}
	return fmt.Sprintf("state(%d)", uint32(s))
}

// SyncDaemon is one running kernel sync daemon.
//
// To start one, State, Interface and SyncID are required; the zero value
// of the others asks for the kernel's default (group 224.0.0.81, port
// 8848, TTL 1, a payload that fits the interface's MTU). A backup with
// SyncID 0 accepts every master's messages. The kernel reports the
// values in effect, defaults filled in.
type SyncDaemon struct {
	State     SyncState
	Interface string // the multicast interface, 1 to 15 bytes
	SyncID    uint32 // 0 to 255: the wire carries one byte
	MaxLen    uint16 // UDP payload size
	Group     netip.Addr
	Port      uint16
	TTL       uint8
}

// label names a daemon in errors, the way an operator would say it.
func (d SyncDaemon) label() string {
	return fmt.Sprintf("%s on %s, syncid %d", d.State, d.Interface, d.SyncID)
}

func (d SyncDaemon) validate() error {
	if d.State != SyncMaster && d.State != SyncBackup {
		return fmt.Errorf("sync daemon state %d is neither master nor backup", uint32(d.State))
	}
	if d.Interface == "" || len(d.Interface) > ipvsIfNameMax {
		return fmt.Errorf("sync daemon interface %q: want 1 to %d bytes", d.Interface, ipvsIfNameMax)
	}
	for i := 0; i < len(d.Interface); i++ {
		if d.Interface[i] == 0 {
			return fmt.Errorf("sync daemon interface %q holds a NUL byte", d.Interface)
		}
	}
	if d.SyncID > ipvsSyncIDMax {
		return fmt.Errorf("sync id %d is out of range 0 to %d", d.SyncID, ipvsSyncIDMax)
	}
	if d.Group.IsValid() && !d.Group.IsMulticast() {
		return fmt.Errorf("sync group %s is not a multicast address", d.Group)
	}
	return nil
}

// encodeSyncDaemon builds the attributes of an IPVS_CMD_NEW_DAEMON
// request.
func encodeSyncDaemon(d SyncDaemon) ([]byte, error) {
	if err := d.validate(); err != nil {
		return nil, err
	}
	ae := netlink.NewAttributeEncoder()
	ae.Nested(ipvsCmdAttrDaemon, func(nae *netlink.AttributeEncoder) error {
		nae.Uint32(ipvsDaemonAttrState, uint32(d.State))
		nae.String(ipvsDaemonAttrMcastIfn, d.Interface)
		nae.Uint32(ipvsDaemonAttrSyncID, d.SyncID)
		if d.MaxLen != 0 {
			nae.Uint16(ipvsDaemonAttrSyncMaxLen, d.MaxLen)
		}
		if g := d.Group.Unmap(); g.Is4() {
			a := g.As4() // network byte order, as nla_get_in_addr reads it
			nae.Bytes(ipvsDaemonAttrMcastGroup, a[:])
		} else if g.Is6() {
			a := g.As16()
			nae.Bytes(ipvsDaemonAttrMcastGroup6, a[:])
		}
		if d.Port != 0 {
			nae.Uint16(ipvsDaemonAttrMcastPort, d.Port)
		}
		if d.TTL != 0 {
			nae.Uint8(ipvsDaemonAttrMcastTTL, d.TTL)
		}
		return nil
	})
	return ae.Encode()
}

// encodeSyncState builds the attributes of an IPVS_CMD_DEL_DAEMON
// request: the kernel finds the daemon by its state alone.
func encodeSyncState(s SyncState) ([]byte, error) {
	if s != SyncMaster && s != SyncBackup {
		return nil, fmt.Errorf("sync daemon state %d is neither master nor backup", uint32(s))
	}
	ae := netlink.NewAttributeEncoder()
	ae.Nested(ipvsCmdAttrDaemon, func(nae *netlink.AttributeEncoder) error {
		nae.Uint32(ipvsDaemonAttrState, uint32(s))
		return nil
	})
	return ae.Encode()
}

// errMalformedDaemon marks a daemon message that cannot be understood.
var errMalformedDaemon = errors.New("malformed IPVS sync daemon message")

// decodeSyncDaemon parses the attributes of one message of an
// IPVS_CMD_GET_DAEMON dump. Attributes it does not know are skipped, so
// a newer kernel's additions do not break it; anything truncated,
// mis-sized or missing is an error.
func decodeSyncDaemon(b []byte) (SyncDaemon, error) {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return SyncDaemon{}, fmt.Errorf("%w: %w", errMalformedDaemon, err)
	}
	var d SyncDaemon
	found := false
	for ad.Next() {
		if ad.Type() != ipvsCmdAttrDaemon {
			continue
		}
		if found {
			return SyncDaemon{}, fmt.Errorf("%w: two daemons in one message", errMalformedDaemon)
		}
		found = true
		ad.Nested(func(nad *netlink.AttributeDecoder) error {
			return decodeDaemonAttrs(nad, &d)
		})
	}
	if err := ad.Err(); err != nil {
		return SyncDaemon{}, fmt.Errorf("%w: %w", errMalformedDaemon, err)
	}
	if !found {
		return SyncDaemon{}, fmt.Errorf("%w: no daemon attribute", errMalformedDaemon)
	}
	return d, nil
}

func decodeDaemonAttrs(nad *netlink.AttributeDecoder, d *SyncDaemon) error {
	var haveState, haveIfn, haveID bool
	for nad.Next() {
		switch nad.Type() {
		case ipvsDaemonAttrState:
			d.State, haveState = SyncState(nad.Uint32()), true
		case ipvsDaemonAttrMcastIfn:
			d.Interface, haveIfn = nad.String(), true
		case ipvsDaemonAttrSyncID:
			d.SyncID, haveID = nad.Uint32(), true
		case ipvsDaemonAttrSyncMaxLen:
			d.MaxLen = nad.Uint16()
		case ipvsDaemonAttrMcastGroup:
			b := nad.Bytes()
			if len(b) != 4 {
				return fmt.Errorf("multicast group is %d bytes, want 4", len(b))
			}
			d.Group = netip.AddrFrom4([4]byte(b))
		case ipvsDaemonAttrMcastGroup6:
			b := nad.Bytes()
			if len(b) != 16 {
				return fmt.Errorf("IPv6 multicast group is %d bytes, want 16", len(b))
			}
			d.Group = netip.AddrFrom16([16]byte(b))
		case ipvsDaemonAttrMcastPort:
			d.Port = nad.Uint16()
		case ipvsDaemonAttrMcastTTL:
			d.TTL = nad.Uint8()
		}
	}
	if err := nad.Err(); err != nil {
		return err
	}
	switch {
	case !haveState || !haveIfn || !haveID:
		return errors.New("daemon lacks state, interface or sync id")
	case d.State != SyncMaster && d.State != SyncBackup:
		return fmt.Errorf("unknown daemon state %d", uint32(d.State))
	case d.Interface == "":
		return errors.New("daemon has an empty interface name")
	}
	return nil
}

// syncNetlink is the part of a generic netlink connection SyncConn
// needs, so its error handling can be tested without a kernel.
type syncNetlink interface {
	Execute(m genetlink.Message, family uint16, flags netlink.HeaderFlags) ([]genetlink.Message, error)
	Close() error
}

// SyncConn talks to the kernel's IPVS sync daemons in the network
// namespace it was opened in. It is safe for concurrent use.
type SyncConn struct {
	nl     syncNetlink
	family uint16
}

// OpenSync opens a generic netlink connection in the calling thread's
// network namespace (lock the thread to choose one) and resolves the
// IPVS family, which needs the ip_vs module loaded.
func OpenSync() (*SyncConn, error) {
	c, err := genetlink.Dial(nil)
	if err != nil {
		return nil, fmt.Errorf("open generic netlink for IPVS sync daemons: %w", err)
	}
	f, err := c.GetFamily(ipvsGenlName)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("resolve generic netlink family %s (is ip_vs loaded?): %w", ipvsGenlName, err)
	}
	return &SyncConn{nl: c, family: f.ID}, nil
}

func (c *SyncConn) execute(cmd uint8, data []byte, flags netlink.HeaderFlags) ([]genetlink.Message, error) {
	return c.nl.Execute(genetlink.Message{
		Header: genetlink.Header{Command: cmd, Version: ipvsGenlVersion},
		Data:   data,
	}, c.family, flags)
}

// Start starts a sync daemon. One already running with the same state,
// interface and sync id (and the same group, port and TTL where both
// sides name one) counts as started; one running with another
// configuration is an error that matches syscall.EEXIST, since the
// kernel runs one daemon per state: Stop it first.
func (c *SyncConn) Start(d SyncDaemon) error {
	data, err := encodeSyncDaemon(d)
	if err != nil {
		return fmt.Errorf("start IPVS sync daemon (%s): %w", d.label(), err)
	}
	_, err = c.execute(ipvsCmdNewDaemon, data, netlink.Request|netlink.Acknowledge)
	if errors.Is(err, syscall.EEXIST) {
		return c.alreadyRunning(d, err)
	}
	if err != nil {
		return fmt.Errorf("start IPVS sync daemon (%s): %w", d.label(), err)
	}
	return nil
}

// alreadyRunning decides whether the daemon the kernel says exists is
// the one asked for.
func (c *SyncConn) alreadyRunning(want SyncDaemon, exists error) error {
	running, err := c.Daemons()
	if err != nil {
		return fmt.Errorf("start IPVS sync daemon (%s): %w; and reading the running one: %w", want.label(), exists, err)
	}
	for _, got := range running {
		if got.State != want.State {
			continue
		}
		if sameSyncConfig(want, got) {
			return nil
		}
		return fmt.Errorf("start IPVS sync daemon (%s): a %s already runs on %s, syncid %d (group %v, port %d, ttl %d): %w",
			want.label(), got.State, got.Interface, got.SyncID, got.Group, got.Port, got.TTL, exists)
	}
	// It stopped between the two requests: report the kernel's answer
	// rather than guess.
	return fmt.Errorf("start IPVS sync daemon (%s): %w", want.label(), exists)
}

// sameSyncConfig compares what was asked for with what runs. The kernel
// fills in defaults and clamps the payload size, so optional values are
// compared only when both sides state one.
func sameSyncConfig(want, got SyncDaemon) bool {
	if want.Interface != got.Interface || want.SyncID != got.SyncID {
		return false
	}
	if want.Group.IsValid() && got.Group.IsValid() && want.Group.Unmap() != got.Group.Unmap() {
		return false
	}
	if want.Port != 0 && got.Port != 0 && want.Port != got.Port {
		return false
	}
	if want.TTL != 0 && got.TTL != 0 && want.TTL != got.TTL {
		return false
	}
	return true
}

// Stop stops the sync daemon in the given state. Stopping one that is
// not running (the kernel's ESRCH) is not an error.
func (c *SyncConn) Stop(state SyncState) error {
	data, err := encodeSyncState(state)
	if err != nil {
		return fmt.Errorf("stop IPVS sync daemon (%s): %w", state, err)
	}
	_, err = c.execute(ipvsCmdDelDaemon, data, netlink.Request|netlink.Acknowledge)
	if err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stop IPVS sync daemon (%s): %w", state, err)
	}
	return nil
}

// Daemons lists the running sync daemons: an empty slice when none runs.
func (c *SyncConn) Daemons() ([]SyncDaemon, error) {
	msgs, err := c.execute(ipvsCmdGetDaemon, nil, netlink.Request|netlink.Dump)
	if err != nil {
		return nil, fmt.Errorf("list IPVS sync daemons: %w", err)
	}
	ds := make([]SyncDaemon, 0, len(msgs))
	for _, m := range msgs {
		// The kernel answers each daemon as IPVS_CMD_NEW_DAEMON; anything
		// else is not a daemon.
		if m.Header.Command != ipvsCmdNewDaemon {
			continue
		}
		d, err := decodeSyncDaemon(m.Data)
		if err != nil {
			return nil, fmt.Errorf("list IPVS sync daemons: %w", err)
		}
		ds = append(ds, d)
	}
	return ds, nil
}

// Close closes the netlink connection; running daemons keep running.
func (c *SyncConn) Close() error {
	if err := c.nl.Close(); err != nil {
		return fmt.Errorf("close IPVS sync daemon connection: %w", err)
	}
	return nil
}
