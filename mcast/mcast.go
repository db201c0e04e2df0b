// Package mcast sets a UDP socket to send multicast. The heartbeat's
// links, the VIP guard's senders and the connection handover all send to
// a group on one interface, and must neither leave the segment nor hear
// themselves.
package mcast

import (
	"errors"
	"net"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// SetSend makes conn send multicast out of ifi with ttl (the hop limit
// for IPv6), and not loop it back to this host's own sockets.
func SetSend(conn *net.UDPConn, ifi *net.Interface, v6 bool, ttl int) error {
	if v6 {
		p := ipv6.NewPacketConn(conn)
		return errors.Join(p.SetMulticastInterface(ifi), p.SetMulticastHopLimit(ttl), p.SetMulticastLoopback(false))
	}
	p := ipv4.NewPacketConn(conn)
	return errors.Join(p.SetMulticastInterface(ifi), p.SetMulticastTTL(ttl), p.SetMulticastLoopback(false))
}
