package checks

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// connect opens a TCP connection to target, waiting in the runtime's
// network poller until it is established, deadline passes (none if zero)
// or ctx is done. Until the caller calls stop, cancelling ctx also ends every
// read and write on the connection.
//
// It stands in for net.Dialer because a TCP check is mostly dial, ten
// thousand times a second: the dialer's address parsing, resolver path,
// local and remote address lookups (getsockname, getpeername) and
// connection objects cost as much CPU as the kernel's handshake itself.
// The socket is bound by the kernel at connect, so ephemeral ports are
// chosen per destination (an explicit bind to port 0 would not be).
func connect(ctx context.Context, deadline time.Time, target netip.AddrPort) (conn *os.File, stop func() bool, err error) {
	sa, family, err := sockaddr(target)
	if err != nil {
		return nil, nil, err
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		return nil, nil, os.NewSyscallError("socket", err)
	}
	switch err := unix.Connect(fd, sa); err {
	case nil, unix.EINPROGRESS, unix.EINTR:
	default:
		unix.Close(fd)
		return nil, nil, err
	}
	// A non-blocking descriptor: os registers it with the poller, so the
	// waits below park the goroutine, not a thread.
	f := os.NewFile(uintptr(fd), "tcp")
	if !deadline.IsZero() {
		if err := f.SetDeadline(deadline); err != nil {
			f.Close()
			return nil, nil, err
		}
	}
	// ctx ending (the engine stopping, or a deadline of its own) wakes
	// every wait on f, here and in the caller's reads and writes.
	stop = context.AfterFunc(ctx, func() { _ = f.SetDeadline(time.Unix(1, 0)) })
	rc, err := f.SyscallConn()
	if err != nil {
		stop()
		f.Close()
		return nil, nil, err
	}
	var cerr error
	werr := rc.Write(func(fd uintptr) bool {
		// Connected is the usual answer, and getpeername alone gives it.
		// Otherwise the outcome is in SO_ERROR; an empty one on a
		// socket not yet connected is a wake-up too early.
		if err := peer(int(fd)); err == nil {
			return true
		} else if err != unix.ENOTCONN {
			cerr = os.NewSyscallError("getpeername", err)
			return true
		}
		switch v, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR); {
		case err != nil:
			cerr = os.NewSyscallError("getsockopt", err)
		case v == 0:
			return false
		default:
			switch e := unix.Errno(v); e {
			case unix.EINPROGRESS, unix.EALREADY, unix.EINTR:
				return false
			default:
				cerr = e
			}
		}
		return true
	})
	if err := cmp.Or(werr, cerr); err != nil {
		stop()
		f.Close()
		return nil, nil, err
	}
	return f, stop, nil
}

// closeReset closes f with a TCP reset instead of a FIN, as HAProxy's
// checks do: the check has what it came for, and an orderly close would
// leave a TIME_WAIT socket on the director for every probe, 60 s each
// (600,000 of them at ten thousand checks a second).
func closeReset(f *os.File) {
	if rc, err := f.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) {
			_ = unix.SetsockoptLinger(int(fd), unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
		})
	}
	f.Close()
}

// errBadZone is a target whose IPv6 zone names no interface.
var errBadZone = errors.New("unknown IPv6 zone")

// sockaddr converts target for connect(2).
func sockaddr(target netip.AddrPort) (unix.Sockaddr, int, error) {
	addr := target.Addr().Unmap()
	switch {
	case addr.Is4():
		return &unix.SockaddrInet4{Port: int(target.Port()), Addr: addr.As4()}, unix.AF_INET, nil
	case addr.Is6():
		sa := &unix.SockaddrInet6{Port: int(target.Port()), Addr: addr.As16()}
		if zone := addr.Zone(); zone != "" {
			if n, err := strconv.ParseUint(zone, 10, 32); err == nil {
				sa.ZoneId = uint32(n)
			} else if ifi, err := net.InterfaceByName(zone); err == nil {
				sa.ZoneId = uint32(ifi.Index)
			} else {
				return nil, 0, fmt.Errorf("%w %q: %w", errBadZone, zone, err)
			}
		}
		return sa, unix.AF_INET6, nil
	default:
		return nil, 0, fmt.Errorf("invalid target address %v", target)
	}
}

// peer is getpeername(2) for its error alone: nil once fd is connected,
// ENOTCONN before. unix.Getpeername would also decode and allocate the
// address, on every probe.
func peer(fd int) error {
	var sa unix.RawSockaddrAny
	n := uint32(unsafe.Sizeof(sa))
	_, _, errno := unix.RawSyscall(unix.SYS_GETPEERNAME, uintptr(fd), uintptr(unsafe.Pointer(&sa)), uintptr(unsafe.Pointer(&n)))
	if errno != 0 {
		return errno
	}
	return nil
}
