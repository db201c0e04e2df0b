package ipvssync

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"time"

	"github.com/directorlb/director/mcast"
)

// The kernel's master sync daemon tells the backup of a TCP connection
// only once it is established, and sends what it gathered when a message
// fills up or 2s after its first entry (IPVS_SYNC_FLUSH_TIME); stopping
// it drops what it has not sent. So a connection whose handshake
// straddles a switchover, or that was established in the last 2s, is
// unknown to the new director, whose own stack answers the client's next
// packet for the now-local VIP with a reset. A director that steps down
// while its peer is alive therefore sends the peer's backup daemon its
// whole connection table itself, in the kernel's own sync format
// (version 1), once before its VIPs leave the kernel and once after, so
// the peer holds every connection it will be sent before it answers for
// the VIPs.

// Conn is one connection of the kernel's IPVS table.
type Conn struct {
	Protocol uint8 // IPPROTO_TCP, IPPROTO_UDP or IPPROTO_SCTP
	Client   netip.AddrPort
	Virtual  netip.AddrPort
	Dest     netip.AddrPort
	// State is the protocol's state, numbered as the kernel numbers it.
	State uint16
}

// ForwardMethod is how a service reaches its destination, numbered as the
// kernel's IP_VS_CONN_F_* forwarding methods.
type ForwardMethod uint8

// The forwarding methods a configured service may use.
const (
	ForwardMasq   ForwardMethod = 0
	ForwardTunnel ForwardMethod = 2
	ForwardRoute  ForwardMethod = 3
)

// ConnRoute tells, for one connection, the fwmark of the configured
// service that holds it (0 for a service by address) and how that service
// forwards; ok is false for a connection no configured service holds,
// which is not handed over: the peer has no service to bind it to.
type ConnRoute func(c Conn) (fwmark uint32, fwd ForwardMethod, ok bool)

// HandoverStats is what one handover did.
type HandoverStats struct {
	Read     int // connections read from the kernel's table
	Sent     int // connections sent: new, or changed since the last call
	Skipped  int // templates, unknown protocols or states, no service
	Messages int
	// Cut is set when the deadline came before the whole table was read.
	Cut bool
}

// syncSender sends one sync message to the peer's backup daemon.
type syncSender interface {
	Send(msg []byte) error
	Close() error
}

// Handover sends this director's IPVS connections to the peer's backup
// sync daemon (Hand). Only the state goroutine uses it.
type Handover struct {
	table  func() (io.ReadCloser, error)
	open   func() (syncSender, int, error) // the sender and the largest message
	routes func() ConnRoute
	syncID uint8
	// What the handover under way, from its fresh call on, has opened,
	// built and sent: the calls that follow a fresh one come while the
	// VIPs are out of the kernel, and do no more than they must.
	sender syncSender
	maxLen int
	route  ConnRoute
	sent   map[connKey]connSent
}

type connKey struct {
	protocol        uint8
	client, virtual netip.AddrPort
}

type connSent struct {
	dest  netip.AddrPort
	state uint16
}

// NewHandover sends to the backup daemons that d names (its interface,
// sync id, group, port and TTL; the kernel's defaults for those unset);
// routes gives, at each call of Hand, how the configured services route
// connections.
func NewHandover(d SyncDaemon, routes func() ConnRoute) (*Handover, error) {
	d.State = SyncBackup
	if err := d.validate(); err != nil {
		return nil, err
	}
	return &Handover{
		table:  func() (io.ReadCloser, error) { return os.Open("/proc/net/ip_vs_conn") },
		open:   func() (syncSender, int, error) { return openSyncSender(d) },
		routes: routes,
		syncID: uint8(d.SyncID),
	}, nil
}

// Hand reads the kernel's connection table and sends the peer every
// connection a configured service holds: all of them when fresh is set,
// else only those that are new or changed since the calls before, back to
// the last fresh one. It stops reading at deadline: the state goroutine
// waits for it.
func (h *Handover) Hand(fresh bool, deadline time.Time) (HandoverStats, error) {
	var st HandoverStats
	if fresh || h.sender == nil {
		if h.sender != nil {
			h.sender.Close()
			h.sender = nil
		}
		sender, maxLen, err := h.open()
		if err != nil {
			return st, err
		}
		h.sender, h.maxLen, h.route, h.sent = sender, maxLen, h.routes(), map[connKey]connSent{}
	}
	table, err := h.table()
	if err != nil {
		return st, fmt.Errorf("read the IPVS connection table: %w", err)
	}
	defer table.Close()
	w := syncWriter{syncID: h.syncID, maxLen: h.maxLen, send: h.sender.Send}
	cut, err := readConns(table, deadline, func(c Conn) {
		st.Read++
		fwmark, fwd, ok := h.route(c)
		if !ok {
			st.Skipped++
			return
		}
		k := connKey{c.Protocol, c.Client, c.Virtual}
		if was, ok := h.sent[k]; ok && was == (connSent{c.Dest, c.State}) {
			return
		}
		if w.add(c, fwmark, fwd) {
			h.sent[k] = connSent{c.Dest, c.State}
			st.Sent++
		}
	}, func() { st.Skipped++ })
	w.flush()
	st.Cut, st.Messages = cut, w.messages
	return st, errors.Join(err, w.err)
}

// readConns calls conn for each connection of the kernel's table text
// (/proc/net/ip_vs_conn), and skip for each entry it does not hand over:
// a persistence template (client port 0), another protocol, a state it
// does not know, or a destination of another family than the client
// (the sync protocol carries one family per entry). cut reports that
// deadline came first.
func readConns(r io.Reader, deadline time.Time, conn func(Conn), skip func()) (cut bool, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	var f [9][]byte
	for line := 0; sc.Scan(); line++ {
		if line&255 == 255 && !time.Now().Before(deadline) {
			return true, nil
		}
		if fieldsInto(sc.Bytes(), f[:]) < len(f) || string(f[0]) == "Pro" {
			continue // the header, or nothing
		}
		if c, ok := parseConn(f[:]); ok {
			conn(c)
		} else {
			skip()
		}
	}
	if err := sc.Err(); err != nil {
		return false, fmt.Errorf("read the IPVS connection table: %w", err)
	}
	return false, nil
}

// fieldsInto splits line at spaces into f without allocating, and returns
// how many fields it found, at most len(f).
func fieldsInto(line []byte, f [][]byte) int {
	n := 0
	for n < len(f) {
		line = bytes.TrimLeft(line, " ")
		if len(line) == 0 {
			break
		}
		end := bytes.IndexByte(line, ' ')
		if end < 0 {
			end = len(line)
		}
		f[n], line = line[:end], line[end:]
		n++
	}
	return n
}

// parseConn reads one line's fields: Pro FromIP FPrt ToIP TPrt DestIP
// DPrt State Expires. IPv4 addresses are 8 hex digits in network order,
// IPv6 ones the kernel's %pI6; ports are 4 hex digits.
func parseConn(f [][]byte) (Conn, bool) {
	var c Conn
	switch string(f[0]) {
	case "TCP":
		c.Protocol = 6
	case "UDP":
		c.Protocol = 17
	case "SCTP":
		c.Protocol = 132
	default:
		return c, false
	}
	client, ok1 := parseEndpoint(f[1], f[2])
	virtual, ok2 := parseEndpoint(f[3], f[4])
	dest, ok3 := parseEndpoint(f[5], f[6])
	state, ok4 := connState(c.Protocol, string(f[7]))
	if !ok1 || !ok2 || !ok3 || !ok4 || client.Port() == 0 ||
		client.Addr().Is4() != virtual.Addr().Is4() || client.Addr().Is4() != dest.Addr().Is4() {
		return c, false
	}
	c.Client, c.Virtual, c.Dest, c.State = client, virtual, dest, state
	return c, true
}

func parseEndpoint(addr, port []byte) (netip.AddrPort, bool) {
	p, err := strconv.ParseUint(string(port), 16, 16)
	if err != nil || len(port) != 4 {
		return netip.AddrPort{}, false
	}
	if len(addr) == 8 {
		v, err := strconv.ParseUint(string(addr), 16, 32)
		if err != nil {
			return netip.AddrPort{}, false
		}
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], uint32(v))
		return netip.AddrPortFrom(netip.AddrFrom4(b), uint16(p)), true
	}
	a, err := netip.ParseAddr(string(addr))
	if err != nil || !a.Is6() || a.Is4In6() || a.Zone() != "" {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(a, uint16(p)), true
}

// The kernel's state names, indexed by its state numbers
// (ip_vs_proto_tcp.c, ip_vs_proto_sctp.c; UDP has one state).
var (
	tcpStates  = [...]string{"NONE", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT", "TIME_WAIT", "CLOSE", "CLOSE_WAIT", "LAST_ACK", "LISTEN", "SYNACK"}
	sctpStates = [...]string{"NONE", "INIT1", "INIT", "C-SENT", "C-REPLIED", "C-WAIT", "COOKIE", "C-ECHOED", "ESTABLISHED", "S-SENT", "S-RECEIVED", "S-ACK-SENT", "REJECTED", "CLOSED"}
)

const (
	tcpEstablished  = 1
	sctpEstablished = 8
)

func connState(protocol uint8, name string) (uint16, bool) {
	var names []string
	switch protocol {
	case 6:
		names = tcpStates[:]
	case 132:
		names = sctpStates[:]
	default:
		return 0, name == "UDP"
	}
	for i, n := range names {
		if n == name {
			return uint16(i), true
		}
	}
	return 0, false
}

// The sync protocol's version 1 (ip_vs_sync.c): an 8-byte message header,
// then entries of 36 bytes (IPv4) or 72 (IPv6), each 32-bit aligned.
const (
	syncHeaderLen  = 8
	syncEntryLen4  = 36
	syncEntryLen6  = 72
	syncVersion    = 1
	syncTypeInet6  = 1
	syncMaxEntries = 255 // the header counts them in one byte

	connFlagNoOutput = 0x0080 // IP_VS_CONN_F_NOOUTPUT: not NAT
	connFlagInactive = 0x0100 // IP_VS_CONN_F_INACTIVE: not established
)

// syncWriter packs connections into sync messages and sends each full
// one. After a send error it sends nothing more.
type syncWriter struct {
	syncID   uint8
	maxLen   int
	send     func([]byte) error
	buf      []byte
	entries  int
	messages int
	err      error
}

// add queues one connection, and tells whether it will be sent.
func (w *syncWriter) add(c Conn, fwmark uint32, fwd ForwardMethod) bool {
	if w.err != nil {
		return false
	}
	size := syncEntryLen4
	if c.Client.Addr().Is6() {
		size = syncEntryLen6
	}
	if w.entries == syncMaxEntries || len(w.buf)+size > w.maxLen {
		w.flush()
		if w.err != nil {
			return false
		}
	}
	if len(w.buf) == 0 {
		w.buf = append(w.buf[:0], 0, w.syncID, 0, 0, 0, syncVersion, 0, 0)
	}
	flags := uint32(fwd)
	if fwd != ForwardMasq {
		flags |= connFlagNoOutput
	}
	if (c.Protocol == 6 && c.State != tcpEstablished) || (c.Protocol == 132 && c.State != sctpEstablished) || c.Protocol == 17 {
		flags |= connFlagInactive
	}
	var e [syncEntryLen6]byte
	if size == syncEntryLen6 {
		e[0] = syncTypeInet6
	}
	e[1] = c.Protocol
	binary.BigEndian.PutUint16(e[2:], uint16(size)) // version 0 in the top 4 bits
	binary.BigEndian.PutUint32(e[4:], flags)
	binary.BigEndian.PutUint16(e[8:], c.State)
	binary.BigEndian.PutUint16(e[10:], c.Client.Port())
	binary.BigEndian.PutUint16(e[12:], c.Virtual.Port())
	binary.BigEndian.PutUint16(e[14:], c.Dest.Port())
	binary.BigEndian.PutUint32(e[16:], fwmark)
	// The timeout stays 0: the peer takes its own for the state, as it
	// would for a connection it scheduled itself.
	addrs := e[24:]
	for _, a := range []netip.Addr{c.Client.Addr(), c.Virtual.Addr(), c.Dest.Addr()} {
		addrs = addrs[copy(addrs, a.AsSlice()):]
	}
	w.buf = append(w.buf, e[:size]...)
	w.entries++
	return true
}

// flush sends the message under way, if it holds anything.
func (w *syncWriter) flush() {
	if w.entries == 0 || w.err != nil {
		return
	}
	binary.BigEndian.PutUint16(w.buf[2:], uint16(len(w.buf)))
	w.buf[4] = uint8(w.entries)
	if err := w.send(w.buf); err != nil {
		w.err = fmt.Errorf("send connections to the peer's sync daemon: %w", err)
	}
	w.messages++
	w.buf, w.entries = w.buf[:0], 0
}

// The kernel's defaults for a sync daemon's port and TTL; its group is
// 224.0.0.81.
const (
	defaultSyncPort = 8848
	defaultSyncTTL  = 1
)

// udpSyncSender sends to the backup daemons' multicast group, out of one
// interface, without looping back to this director's own backup daemon.
type udpSyncSender struct {
	conn *net.UDPConn
	dst  *net.UDPAddr
}

func (s *udpSyncSender) Send(msg []byte) error {
	_, err := s.conn.WriteToUDP(msg, s.dst)
	return err
}

func (s *udpSyncSender) Close() error { return s.conn.Close() }

// openSyncSender opens a socket to d's group and returns it with the
// largest message the peer's daemon takes: d.MaxLen, or as the kernel
// sizes it, the interface's MTU less the IP and UDP headers.
func openSyncSender(d SyncDaemon) (syncSender, int, error) {
	ifi, err := net.InterfaceByName(d.Interface)
	if err != nil {
		return nil, 0, fmt.Errorf("sync interface %s: %w", d.Interface, err)
	}
	group, port, ttl := d.Group, d.Port, int(d.TTL)
	if !group.IsValid() {
		group = netip.AddrFrom4([4]byte{224, 0, 0, 81})
	}
	if port == 0 {
		port = defaultSyncPort
	}
	if ttl == 0 {
		ttl = defaultSyncTTL
	}
	network, headers := "udp4", 20+8
	if group.Unmap().Is6() {
		network, headers = "udp6", 40+8
	}
	maxLen := int(d.MaxLen)
	if maxLen == 0 {
		maxLen = ifi.MTU - headers
	}
	if maxLen < syncHeaderLen+syncEntryLen6 {
		return nil, 0, fmt.Errorf("sync interface %s: MTU %d is too small for a sync message", d.Interface, ifi.MTU)
	}
	conn, err := net.ListenUDP(network, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("open a socket to the sync group: %w", err)
	}
	if err := mcast.SetSend(conn, ifi, network == "udp6", ttl); err != nil {
		conn.Close()
		return nil, 0, fmt.Errorf("sync group %s on %s: %w", group.Unmap(), d.Interface, err)
	}
	dst := &net.UDPAddr{IP: group.Unmap().AsSlice(), Port: int(port)}
	if group.Unmap().Is6() {
		dst.Zone = d.Interface
	}
	return &udpSyncSender{conn: conn, dst: dst}, maxLen, nil
}
