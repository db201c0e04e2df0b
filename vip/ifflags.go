package vip

import (
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// IfFlags reads an interface's up and carrier flags with one ioctl
// (SIOCGIFFLAGS), as ifconfig does. The node reads its VIP interfaces
// every keepalive; a netlink request would build, send and parse a
// message carrying every attribute and counter of the link each time,
// and net.InterfaceByName dumps every interface of the host.
type IfFlags struct{ fd int }

// OpenIfFlags opens the socket the ioctl goes through. Interfaces are
// looked up in the network namespace of the calling thread.
func OpenIfFlags() (*IfFlags, error) {
	// Any socket reaches the interface ioctls; a unix one needs no
	// address family the host might lack.
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socket for interface flags: %w", err)
	}
	return &IfFlags{fd: fd}, nil
}

// Flags reports whether the interface is up (FlagUp) and has a carrier
// (FlagRunning).
func (f *IfFlags) Flags(name string) (net.Flags, error) {
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return 0, err
	}
	if err := unix.IoctlIfreq(f.fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return 0, err
	}
	raw := ifr.Uint16()
	var fl net.Flags
	if raw&unix.IFF_UP != 0 {
		fl |= net.FlagUp
	}
	if raw&unix.IFF_RUNNING != 0 {
		fl |= net.FlagRunning
	}
	return fl, nil
}

// Close closes the socket.
func (f *IfFlags) Close() error { return unix.Close(f.fd) }
