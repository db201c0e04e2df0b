// Package ipvsdump reads the kernel's IPVS table fast. cloudflare/ipvs
// programs the table, but its dumps go through the runtime's network
// poller and allocate per message and per attribute; on a table of
// 100,000 destinations, one destination dump per service, that is most of
// the cost of a reconcile or a scrape. Client keeps cloudflare/ipvs for
// everything else and answers Services and Destinations itself, over a
// blocking generic-netlink socket with one reused buffer, returning the
// same values. Batch (batch.go) makes many table changes in one sendmsg,
// each still answered on its own: one request per change was most of the
// cost of a cold start.
package ipvsdump

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/cloudflare/ipvs"
	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

const (
	cmdGetService = 4
	cmdGetDest    = 8
	genlVersion   = 1

	// recvTimeout bounds a kernel that stops answering mid-dump; no
	// healthy dump pauses for anything like it.
	recvTimeout = 30 * time.Second
	// bufSize holds the largest skb a netlink dump sends (32 KiB on
	// current kernels) with room to spare.
	bufSize = 64 << 10
)

// Client is an ipvs.Client whose dumps are read by this package. It
// belongs to the network namespace it was opened in.
type Client struct {
	ipvs.Client
	family uint16

	mu  sync.Mutex // one dump at a time on the socket
	fd  int
	seq uint32
	buf []byte
}

// New opens a Client in the calling thread's network namespace.
func New() (*Client, error) {
	inner, err := ipvs.New()
	if err != nil {
		return nil, err
	}
	c := &Client{Client: inner, fd: -1, buf: make([]byte, bufSize)}
	if err := c.open(); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func (c *Client) open() error {
	conn, err := genetlink.Dial(nil)
	if err != nil {
		return fmt.Errorf("generic netlink: %w", err)
	}
	fam, err := conn.GetFamily("IPVS")
	conn.Close()
	if err != nil {
		return fmt.Errorf("IPVS generic netlink family: %w", err)
	}
	c.family = fam.ID
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_GENERIC)
	if err != nil {
		return fmt.Errorf("netlink socket: %w", err)
	}
	c.fd = fd
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("netlink bind: %w", err)
	}
	tv := unix.NsecToTimeval(recvTimeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return fmt.Errorf("netlink receive timeout: %w", err)
	}
	return nil
}

// Close closes both sockets.
func (c *Client) Close() error {
	var errs []error
	if cl, ok := c.Client.(interface{ Close() error }); ok {
		errs = append(errs, cl.Close())
	}
	if c.fd >= 0 {
		errs = append(errs, unix.Close(c.fd))
		c.fd = -1
	}
	return errors.Join(errs...)
}

// Services dumps every service. Like cloudflare/ipvs, an empty table is
// os.ErrNotExist.
func (c *Client) Services() ([]ipvs.ServiceExtended, error) {
	var out []ipvs.ServiceExtended
	err := c.dump(cmdGetService, nil, func(b []byte) error {
		s, err := decodeService(b)
		if err == nil {
			out = append(out, s)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("dump IPVS services: %w", err)
	}
	if len(out) == 0 {
		return nil, os.ErrNotExist
	}
	return out, nil
}

// Destinations dumps one service's destinations; none (or no such
// service) is os.ErrNotExist, as with cloudflare/ipvs.
func (c *Client) Destinations(svc ipvs.Service) ([]ipvs.DestinationExtended, error) {
	var out []ipvs.DestinationExtended
	err := c.dump(cmdGetDest, serviceAttr(svc), func(b []byte) error {
		d, err := decodeDestination(b, svc.Family)
		if err == nil {
			out = append(out, d)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("dump IPVS destinations: %w", err)
	}
	if len(out) == 0 {
		return nil, os.ErrNotExist
	}
	return out, nil
}

// serviceAttr names a service the way the kernel looks it up.
func serviceAttr(svc ipvs.Service) []byte {
	ae := netlink.NewAttributeEncoder()
	ae.Nested(cmdAttrService, func(ae *netlink.AttributeEncoder) error {
		ae.Uint16(svcAttrAF, uint16(svc.Family))
		if svc.FWMark != 0 {
			ae.Uint32(svcAttrFWMark, svc.FWMark)
			return nil
		}
		ae.Uint16(svcAttrProtocol, uint16(svc.Protocol))
		addr := svc.Address.As16()
		if svc.Address.Is4() {
			// The kernel reads 16 bytes; IPv4 uses the first 4.
			a4 := svc.Address.As4()
			addr = [16]byte{}
			copy(addr[:], a4[:])
		}
		ae.Bytes(svcAttrAddr, addr[:])
		ae.Bytes(svcAttrPort, binary.BigEndian.AppendUint16(nil, svc.Port))
		return nil
	})
	b, _ := ae.Encode() // only fails on a callback's error; there is none
	return b
}

const (
	nlmsgHdrLen  = 16
	genlHdrLen   = 4
	nlmsgError   = 2
	nlmsgDone    = 3
	nlmFRequest  = 0x1
	nlmFDump     = 0x300
	nlmFDumpIntr = 0x10
)

// dump sends one dump request and hands each answer's payload (after the
// generic-netlink header) to each.
func (c *Client) dump(cmd uint8, attrs []byte, each func([]byte) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fd < 0 {
		return errors.New("ipvsdump: client closed")
	}
	c.seq++
	seq := c.seq
	req := make([]byte, nlmsgHdrLen+genlHdrLen+len(attrs))
	binary.NativeEndian.PutUint32(req[0:4], uint32(len(req)))
	binary.NativeEndian.PutUint16(req[4:6], c.family)
	binary.NativeEndian.PutUint16(req[6:8], nlmFRequest|nlmFDump)
	binary.NativeEndian.PutUint32(req[8:12], seq)
	req[16], req[17] = cmd, genlVersion
	copy(req[20:], attrs)
	if err := unix.Sendto(c.fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("netlink send: %w", err)
	}
	var failed error
	var intr bool
	for {
		n, _, flags, _, err := unix.Recvmsg(c.fd, c.buf, nil, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err == nil && flags&unix.MSG_TRUNC != 0 {
			err = fmt.Errorf("%w: a netlink message larger than %d bytes", ErrMalformed, len(c.buf))
		}
		var done bool
		if err == nil {
			done, err = walk(c.buf[:n], seq, &intr, func(b []byte) {
				// After a message fails to decode, the rest of the dump
				// is still read, so the socket is ready for the next.
				if failed == nil {
					failed = each(b)
				}
			})
		}
		switch {
		case done && err != nil:
			return err
		case done:
			return failed
		case err != nil:
			// The rest of this dump cannot be found in the stream: a
			// fresh socket is the only clean state for the next one.
			c.reopen()
			return fmt.Errorf("netlink receive: %w", err)
		}
	}
}

// reopen replaces a socket left in an unknown state; if that fails, the
// next dump says the client is closed.
func (c *Client) reopen() {
	unix.Close(c.fd)
	c.fd = -1
	_ = c.open()
}

// errDumpIntr is the kernel saying its table changed during the dump.
var errDumpIntr = errors.New("the kernel's table changed during the dump")

// walk goes through the messages of one datagram. It reports the end of
// the dump, the kernel's error (a unix.Errno), or a framing error.
// Messages of an earlier request (another sequence number) are skipped.
// intr carries the kernel's "interrupted" flag from datagram to datagram
// until the end of the dump reports it.
func walk(b []byte, seq uint32, intr *bool, each func([]byte)) (done bool, err error) {
	for len(b) > 0 {
		if len(b) < nlmsgHdrLen {
			return false, fmt.Errorf("%w: %d-byte netlink header", ErrMalformed, len(b))
		}
		l := int(binary.NativeEndian.Uint32(b[0:4]))
		if l < nlmsgHdrLen || l > len(b) {
			return false, fmt.Errorf("%w: netlink message length %d of %d bytes", ErrMalformed, l, len(b))
		}
		typ := binary.NativeEndian.Uint16(b[4:6])
		flags := binary.NativeEndian.Uint16(b[6:8])
		mseq := binary.NativeEndian.Uint32(b[8:12])
		body := b[nlmsgHdrLen:l]
		b = b[min(align4(l), len(b)):]
		if mseq != seq {
			continue
		}
		*intr = *intr || flags&nlmFDumpIntr != 0
		switch typ {
		case nlmsgDone, nlmsgError:
			if len(body) < 4 {
				return false, fmt.Errorf("%w: short netlink status", ErrMalformed)
			}
			if e := int32(binary.NativeEndian.Uint32(body[0:4])); e < 0 {
				return true, unix.Errno(-e)
			}
			if *intr {
				return true, errDumpIntr
			}
			return true, nil
		}
		if len(body) < genlHdrLen {
			return false, fmt.Errorf("%w: short generic netlink header", ErrMalformed)
		}
		each(body[genlHdrLen:])
	}
	return false, nil
}
