package ipvsdump

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/cloudflare/ipvs"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Cmd is an IPVS generic-netlink command that changes the table.
type Cmd uint8

// The kernel's numbers (IPVS_CMD_*).
const (
	NewService Cmd = 1
	SetService Cmd = 2
	DelService Cmd = 3
	NewDest    Cmd = 5
	SetDest    Cmd = 6
	DelDest    Cmd = 7
)

// Change is one change to the table: Cmd on Service, and on Dest for the
// destination commands.
type Change struct {
	Cmd     Cmd
	Service ipvs.Service
	Dest    ipvs.Destination
}

const (
	// batchMsgs and batchBytes bound one send. The kernel runs every
	// message of a send before sendmsg returns and queues one error per
	// failed message: batchMsgs of them must fit the receive buffer
	// (set to batchRcvBuf), or some outcomes are lost.
	batchMsgs  = 256
	batchBytes = 96 << 10 // under the default 208 KiB send buffer
	// batchRcvBuf holds batchMsgs error messages (each under 4 KiB of
	// socket memory) with room to spare.
	batchRcvBuf = 4 << 20

	nlmFAck = 0x4
	// netlinkCapAck (NETLINK_CAP_ACK) keeps an error message to the
	// failed request's header, without its payload.
	netlinkCapAck = 10
)

// ErrOutcomeLost is a change whose outcome the kernel's answer did not
// carry (its receive buffer overflowed): it may or may not have been
// made.
var ErrOutcomeLost = errors.New("the kernel's answer to this change was lost")

// Batch makes each change in order and returns each one's error, nil for
// success, as cloudflare/ipvs's methods would (a kernel refusal is a
// *netlink.OpError wrapping the unix.Errno). Unlike them, it sends many
// changes in one sendmsg and asks the kernel to acknowledge only the last
// of each send: a failed change still gets its own error, and a run of
// successes costs two system calls instead of three or more each. The
// kernel makes the changes of one send one after the other, exactly as
// if they had been sent one by one, and goes on after a failure.
func (c *Client) Batch(changes []Change) []error {
	errs := make([]error, len(changes))
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fd < 0 {
		err := errors.New("ipvsdump: client closed")
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	// Best effort, on every call (the socket may have been reopened;
	// two system calls for up to thousands of changes): without
	// CAP_NET_ADMIN the buffer may stay too small for a send whose every
	// change fails, and the outcomes lost are reported, change by change,
	// as ErrOutcomeLost.
	if err := unix.SetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, batchRcvBuf); err != nil {
		_ = unix.SetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_RCVBUF, batchRcvBuf)
	}
	_ = unix.SetsockoptInt(c.fd, unix.SOL_NETLINK, netlinkCapAck, 1)
	var req []byte
	for start := 0; start < len(changes); {
		req = req[:0]
		end, lastOff := start, 0
		for end < len(changes) && end-start < batchMsgs && len(req) < batchBytes {
			lastOff = len(req)
			req = appendChange(req, c.family, c.seq+1+uint32(end-start), changes[end])
			end++
		}
		// The last message of the send asks for an acknowledgement: its
		// answer ends the kernel's answers to the send.
		last := req[lastOff:]
		binary.NativeEndian.PutUint16(last[6:8], binary.NativeEndian.Uint16(last[6:8])|nlmFAck)
		first := c.seq + 1
		c.seq += uint32(end - start)
		c.sendBatch(req, first, errs[start:end])
		start = end
	}
	return errs
}

// sendBatch sends req, messages with sequence numbers first, first+1...,
// and fills errs from the kernel's answers.
func (c *Client) sendBatch(req []byte, first uint32, errs []error) {
	n := uint32(len(errs))
	if err := unix.Sendto(c.fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		for i := range errs {
			errs[i] = fmt.Errorf("netlink send: %w", err)
		}
		return
	}
	for {
		m, _, _, _, err := unix.Recvmsg(c.fd, c.buf, nil, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			// ENOBUFS: some answers were dropped. Those still queued
			// are read; the rest of the send's outcomes are unknown.
			// Anything else (the timeout): nothing more can be known.
			lost := err
			if errors.Is(err, unix.ENOBUFS) {
				c.drainBatch(first, errs)
				lost = fmt.Errorf("%w: %w", ErrOutcomeLost, err)
			}
			for i := range errs {
				if errs[i] == nil {
					errs[i] = lost
				}
			}
			return
		}
		if done := batchAnswers(c.buf[:m], first, n, errs); done {
			return
		}
	}
}

// drainBatch reads what is left queued without waiting, after an
// overflow, and keeps the outcomes of the send that starts at first.
// Successes are left nil here and made ErrOutcomeLost by the caller:
// without an acknowledgement each, they are not told from lost errors.
func (c *Client) drainBatch(first uint32, errs []error) {
	known := make([]error, len(errs))
	for {
		m, _, _, _, err := unix.Recvmsg(c.fd, c.buf, nil, unix.MSG_DONTWAIT)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			break
		}
		batchAnswers(c.buf[:m], first, uint32(len(errs)), known)
	}
	for i, err := range known {
		if err != nil {
			errs[i] = err
		}
	}
}

// batchAnswers reads one datagram of answers to a send of n messages
// from first: each error goes to its message's slot. It reports the
// answer to the last message, which ends them.
func batchAnswers(b []byte, first, n uint32, errs []error) (done bool) {
	for len(b) >= nlmsgHdrLen {
		l := int(binary.NativeEndian.Uint32(b[0:4]))
		if l < nlmsgHdrLen || l > len(b) {
			return false
		}
		typ := binary.NativeEndian.Uint16(b[4:6])
		body := b[nlmsgHdrLen:l]
		b = b[min(align4(l), len(b)):]
		// nlmsgerr: the error, then the request's header, whose
		// sequence number says which change it answers.
		if typ != nlmsgError || len(body) < 4+nlmsgHdrLen {
			continue
		}
		seq := binary.NativeEndian.Uint32(body[4+8 : 4+12])
		i := seq - first
		if i >= n {
			continue // an answer to an earlier request
		}
		if e := int32(binary.NativeEndian.Uint32(body[0:4])); e < 0 {
			errs[i] = &netlink.OpError{Op: "receive", Err: unix.Errno(-e)}
		}
		if i == n-1 {
			return true
		}
	}
	return false
}

// appendChange appends ch as one netlink message, its attributes laid
// out exactly as cloudflare/ipvs lays out the same call's (batch_test.go
// checks it against a transcription of its encoder).
func appendChange(b []byte, family uint16, seq uint32, ch Change) []byte {
	start := len(b)
	b = append(b, make([]byte, nlmsgHdrLen+genlHdrLen)...)
	h := b[start:]
	binary.NativeEndian.PutUint16(h[4:6], family)
	binary.NativeEndian.PutUint16(h[6:8], nlmFRequest)
	binary.NativeEndian.PutUint32(h[8:12], seq)
	h[16], h[17] = byte(ch.Cmd), genlVersion
	b = appendNest(b, cmdAttrService, func(b []byte) []byte { return appendService(b, ch.Service) })
	switch ch.Cmd {
	case NewDest, SetDest, DelDest:
		b = appendNest(b, cmdAttrDest, func(b []byte) []byte { return appendDest(b, ch.Dest) })
	}
	binary.NativeEndian.PutUint32(b[start:start+4], uint32(len(b)-start))
	return b
}

// appendNest appends an attribute whose value is what fill appends.
// cloudflare/ipvs does not set the nested flag on these; neither does
// this.
func appendNest(b []byte, typ uint16, fill func([]byte) []byte) []byte {
	start := len(b)
	b = append(b, 0, 0, 0, 0)
	b = fill(b)
	binary.NativeEndian.PutUint16(b[start:], uint16(len(b)-start))
	binary.NativeEndian.PutUint16(b[start+2:], typ)
	return b
}

// pad is the zeros that pad an attribute to a multiple of four bytes.
const pad = "\x00\x00\x00"

// appendString appends s NUL-terminated.
func appendString(b []byte, typ uint16, s string) []byte {
	b = binary.NativeEndian.AppendUint16(b, uint16(4+len(s)+1))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, s...)
	b = append(b, 0)
	return append(b, pad[:align4(len(s)+1)-(len(s)+1)]...)
}

// appendAttr appends one attribute and its padding.
func appendAttr(b []byte, typ uint16, v ...byte) []byte {
	b = binary.NativeEndian.AppendUint16(b, uint16(4+len(v)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, v...)
	return append(b, pad[:align4(len(v))-len(v)]...)
}

func appendU16(b []byte, typ, v uint16) []byte {
	var x [2]byte
	binary.NativeEndian.PutUint16(x[:], v)
	return appendAttr(b, typ, x[:]...)
}

func appendU32(b []byte, typ uint16, v uint32) []byte {
	var x [4]byte
	binary.NativeEndian.PutUint32(x[:], v)
	return appendAttr(b, typ, x[:]...)
}

// appendPort appends a port in network order, as the kernel reads it.
func appendPort(b []byte, typ, port uint16) []byte {
	var x [2]byte
	binary.BigEndian.PutUint16(x[:], port)
	return appendAttr(b, typ, x[:]...)
}

// appendAddr appends an address as long as it is (4 or 16 bytes; none
// for the zero Addr), as cloudflare/ipvs does.
func appendAddr(b []byte, typ uint16, a netip.Addr) []byte {
	switch {
	case a.Is4():
		x := a.As4()
		return appendAttr(b, typ, x[:]...)
	case a.IsValid():
		x := a.As16()
		return appendAttr(b, typ, x[:]...)
	}
	return appendAttr(b, typ)
}

// appendService is cloudflare/ipvs's packService: same attributes, same
// order.
func appendService(b []byte, svc ipvs.Service) []byte {
	b = appendU16(b, svcAttrAF, uint16(svc.Family))
	b = appendString(b, svcAttrSched, svc.Scheduler)
	// flags, then the mask of the flags set: all of them.
	var flags [8]byte
	binary.NativeEndian.PutUint32(flags[:4], uint32(svc.Flags))
	binary.NativeEndian.PutUint32(flags[4:], 0xffffffff)
	b = appendAttr(b, svcAttrFlags, flags[:]...)
	b = appendU32(b, svcAttrTimeout, svc.Timeout)
	switch {
	case svc.Netmask.Is4():
		b = appendAttr(b, svcAttrNetmask, svc.Netmask.AsSlice()...)
	case svc.Netmask.Is6():
		if ones := svc.Netmask.Bits(); ones >= 0 {
			b = appendU32(b, svcAttrNetmask, uint32(ones))
		}
	}
	if svc.FWMark != 0 {
		return appendU32(b, svcAttrFWMark, svc.FWMark)
	}
	b = appendU16(b, svcAttrProtocol, uint16(svc.Protocol))
	b = appendAddr(b, svcAttrAddr, svc.Address)
	return appendPort(b, svcAttrPort, svc.Port)
}

// appendDest is cloudflare/ipvs's packDest: same attributes, same order.
func appendDest(b []byte, d ipvs.Destination) []byte {
	b = appendU16(b, destAttrAddrFamily, uint16(d.Family))
	b = appendAddr(b, destAttrAddr, d.Address)
	b = appendPort(b, destAttrPort, d.Port)
	b = appendU32(b, destAttrFwdMethod, uint32(d.FwdMethod))
	b = appendU32(b, destAttrWeight, d.Weight)
	b = appendU32(b, destAttrUThresh, d.UpperThreshold)
	b = appendU32(b, destAttrLThresh, d.LowerThreshold)
	b = appendAttr(b, destAttrTunType, uint8(d.TunnelType))
	b = appendPort(b, destAttrTunPort, d.TunnelPort)
	return appendU16(b, destAttrTunFlags, uint16(d.TunnelFlags))
}
