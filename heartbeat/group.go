package heartbeat

import (
	"crypto/hmac"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// GroupMessage is one heartbeat of a director of a bgp group to the
// others (package group). It is a frame of its own, not a Kind of
// Message: its magic differs, and the MAC covers the magic, so a pair's
// director never takes a group frame for a heartbeat (Decode refuses it)
// and a group's never takes a pair's (DecodeGroup refuses it). The pair's
// frames are untouched by it.
type GroupMessage struct {
	Node string // the sender's node name, as in Message
	// Boot, Seq and Time are as in Message; ReplayGuard.CheckGroup
	// refuses replays with them.
	Boot uint64
	Seq  uint64
	Time time.Time
	// Interval is the sender's heartbeat interval, at millisecond
	// precision: a receiver judges the sender dead after a few of the
	// sender's own intervals, whatever its own is.
	Interval time.Duration
	// Digest summarises the sender's service config and kernel: directors
	// whose digests differ build different mh tables.
	Digest [16]byte
	// Announced are the VIPs the sender announces to its routers now,
	// each an IPv4 /32 or an IPv6 /128, at most MaxGroupPrefixes.
	Announced []netip.Prefix
	// Drained: the operator took the sender out (drain-node).
	Drained bool
	// Leaving: the sender stops (a graceful stop); it is gone at once.
	Leaving bool
	// Truncated: the sender announces more than MaxGroupPrefixes VIPs,
	// and Announced holds the first of them only.
	Truncated bool
}

// The group frame, all integers big-endian:
//
//	magic "DRGP" | version 1 | flags 1 | interval (ms) 4 |
//	boot 8 | seq 8 | time (unix ns) 8 | digest 16 |
//	name length 1 | name | IPv4 count 2 | count × 4 |
//	IPv6 count 2 | count × 16 | HMAC-SHA256 32
//
// Flags: 1 drained, 2 leaving, 4 truncated; other bits must be zero.
// The addresses of each family are in ascending order, without
// duplicates, so that whatever DecodeGroup accepts, EncodeGroup writes
// back byte for byte. Group links are network links only (UDP), so a
// frame may be longer than a serial link's MaxFrameSize.
const (
	groupMagic   = "DRGP"
	groupVersion = 1

	groupOffVersion  = 4
	groupOffFlags    = 5
	groupOffInterval = 6
	groupOffBoot     = 10
	groupOffSeq      = 18
	groupOffTime     = 26
	groupOffDigest   = 34
	groupOffNameLen  = 50
	groupOffName     = 51

	groupFlagDrained   = 1
	groupFlagLeaving   = 2
	groupFlagTruncated = 4
	groupFlagsKnown    = groupFlagDrained | groupFlagLeaving | groupFlagTruncated

	// MaxGroupPrefixes bounds the VIPs one frame carries: all of them
	// IPv6, with the longest name, the frame still fits MaxGroupFrameSize.
	MaxGroupPrefixes = 500
	// MaxGroupFrameSize bounds an encoded group message: a buffer this
	// long always holds a whole one.
	MaxGroupFrameSize = 8192
	// MinGroupFrameSize is the shortest: a one-byte name, no VIPs.
	MinGroupFrameSize = groupOffName + 1 + 2 + 2 + wireMACSize

	// maxGroupInterval bounds Interval, so that a few of them still fit
	// a time.Duration.
	maxGroupInterval = time.Hour
)

// EncodeGroup serialises m and authenticates it with key. Announced is
// written sorted by family and address, without duplicates.
func EncodeGroup(key []byte, m GroupMessage) ([]byte, error) {
	if len(key) == 0 {
		return nil, errors.New("encode group heartbeat: no authentication key")
	}
	if err := groupValidate(m); err != nil {
		return nil, fmt.Errorf("encode group heartbeat: %w", err)
	}
	var v4, v6 []netip.Addr
	for _, p := range m.Announced {
		if err := CheckGroupPrefix(p); err != nil {
			return nil, fmt.Errorf("encode group heartbeat: %w", err)
		}
		if p.Addr().Is4() {
			v4 = append(v4, p.Addr())
		} else {
			v6 = append(v6, p.Addr())
		}
	}
	slices.SortFunc(v4, netip.Addr.Compare)
	slices.SortFunc(v6, netip.Addr.Compare)
	v4, v6 = slices.Compact(v4), slices.Compact(v6)
	if n := len(v4) + len(v6); n > MaxGroupPrefixes {
		return nil, fmt.Errorf("encode group heartbeat: %d VIPs, at most %d", n, MaxGroupPrefixes)
	}
	b := make([]byte, groupOffName, groupOffName+len(m.Node)+4+4*len(v4)+16*len(v6)+wireMACSize)
	copy(b, groupMagic)
	b[groupOffVersion] = groupVersion
	var flags byte
	if m.Drained {
		flags |= groupFlagDrained
	}
	if m.Leaving {
		flags |= groupFlagLeaving
	}
	if m.Truncated {
		flags |= groupFlagTruncated
	}
	b[groupOffFlags] = flags
	binary.BigEndian.PutUint32(b[groupOffInterval:], uint32(m.Interval/time.Millisecond))
	binary.BigEndian.PutUint64(b[groupOffBoot:], m.Boot)
	binary.BigEndian.PutUint64(b[groupOffSeq:], m.Seq)
	binary.BigEndian.PutUint64(b[groupOffTime:], uint64(m.Time.UnixNano()))
	copy(b[groupOffDigest:groupOffNameLen], m.Digest[:])
	b[groupOffNameLen] = byte(len(m.Node))
	b = append(b, m.Node...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(v4)))
	for _, a := range v4 {
		a4 := a.As4()
		b = append(b, a4[:]...)
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(v6)))
	for _, a := range v6 {
		a16 := a.As16()
		b = append(b, a16[:]...)
	}
	return append(b, wireMAC(key, b)...), nil
}

// DecodeGroup authenticates b with key and parses it. Its errors wrap
// ErrMalformed or ErrBadMAC, as Decode's do. Only the name length is read
// before the MAC is verified; the counts after it, which an attacker
// could forge, only once it is.
func DecodeGroup(key []byte, b []byte) (GroupMessage, error) {
	if len(key) == 0 {
		return GroupMessage{}, fmt.Errorf("%w: no authentication key", ErrBadMAC)
	}
	if len(b) < MinGroupFrameSize {
		return GroupMessage{}, fmt.Errorf("%w: group frame of %d bytes, want at least %d", ErrMalformed, len(b), MinGroupFrameSize)
	}
	if string(b[:groupOffVersion]) != groupMagic {
		return GroupMessage{}, fmt.Errorf("%w: bad group magic %q", ErrMalformed, b[:groupOffVersion])
	}
	if len(b) > MaxGroupFrameSize {
		return GroupMessage{}, fmt.Errorf("%w: group frame of %d bytes, at most %d", ErrMalformed, len(b), MaxGroupFrameSize)
	}
	if v := b[groupOffVersion]; v != groupVersion {
		return GroupMessage{}, fmt.Errorf("%w: group version %d, want %d", ErrMalformed, v, groupVersion)
	}
	body, mac := b[:len(b)-wireMACSize], b[len(b)-wireMACSize:]
	if !hmac.Equal(mac, wireMAC(key, body)) {
		return GroupMessage{}, ErrBadMAC
	}
	m, err := groupParse(body)
	if err != nil {
		return GroupMessage{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return m, nil
}

// groupParse reads an authenticated body (the frame without its MAC).
func groupParse(b []byte) (GroupMessage, error) {
	flags := b[groupOffFlags]
	if flags&^groupFlagsKnown != 0 {
		return GroupMessage{}, fmt.Errorf("unknown flags %#02x", flags)
	}
	m := GroupMessage{
		Interval:  time.Duration(binary.BigEndian.Uint32(b[groupOffInterval:])) * time.Millisecond,
		Boot:      binary.BigEndian.Uint64(b[groupOffBoot:]),
		Seq:       binary.BigEndian.Uint64(b[groupOffSeq:]),
		Time:      time.Unix(0, int64(binary.BigEndian.Uint64(b[groupOffTime:]))),
		Drained:   flags&groupFlagDrained != 0,
		Leaving:   flags&groupFlagLeaving != 0,
		Truncated: flags&groupFlagTruncated != 0,
	}
	copy(m.Digest[:], b[groupOffDigest:groupOffNameLen])
	nameLen := int(b[groupOffNameLen])
	rest := b[groupOffName:]
	if len(rest) < nameLen {
		return GroupMessage{}, fmt.Errorf("a name of %d bytes in %d", nameLen, len(rest))
	}
	m.Node, rest = string(rest[:nameLen]), rest[nameLen:]
	for _, fam := range []struct{ v, size int }{{4, 4}, {6, 16}} {
		size := fam.size
		if len(rest) < 2 {
			return GroupMessage{}, fmt.Errorf("IPv%d count cut short", fam.v)
		}
		n := int(binary.BigEndian.Uint16(rest))
		rest = rest[2:]
		if len(m.Announced)+n > MaxGroupPrefixes {
			return GroupMessage{}, fmt.Errorf("%d more VIPs after %d, at most %d", n, len(m.Announced), MaxGroupPrefixes)
		}
		if len(rest) < n*size {
			return GroupMessage{}, fmt.Errorf("%d addresses of %d bytes in %d", n, size, len(rest))
		}
		var prev netip.Addr
		for i := range n {
			a, _ := netip.AddrFromSlice(rest[i*size : (i+1)*size])
			if err := CheckGroupPrefix(netip.PrefixFrom(a, a.BitLen())); err != nil {
				return GroupMessage{}, err
			}
			if i > 0 && a.Compare(prev) <= 0 {
				return GroupMessage{}, fmt.Errorf("VIP %s after %s: not in ascending order", a, prev)
			}
			prev = a
			m.Announced = append(m.Announced, netip.PrefixFrom(a, a.BitLen()))
		}
		rest = rest[n*size:]
	}
	if len(rest) != 0 {
		return GroupMessage{}, fmt.Errorf("%d bytes after the VIPs", len(rest))
	}
	if err := groupValidate(m); err != nil {
		return GroupMessage{}, err
	}
	return m, nil
}

// groupValidate holds the rules both ends apply to the fixed fields.
func groupValidate(m GroupMessage) error {
	if err := wireNodeName(m.Node); err != nil {
		return err
	}
	if m.Time.Before(wireMinTime) || m.Time.After(wireMaxTime) {
		return fmt.Errorf("time %v out of range", m.Time)
	}
	if m.Interval < time.Millisecond || m.Interval > maxGroupInterval || m.Interval%time.Millisecond != 0 {
		return fmt.Errorf("interval %s, want whole milliseconds from 1ms to %s", m.Interval, maxGroupInterval)
	}
	return nil
}

// CheckGroupPrefix accepts what a GroupMessage carries, what a director
// announces: a plain IPv4 /32 or IPv6 /128 (no IPv4-mapped IPv6), a
// routable unicast address.
func CheckGroupPrefix(p netip.Prefix) error {
	a := p.Addr()
	switch {
	case !p.IsValid() || a.Zone() != "" || a.Is4In6():
		return fmt.Errorf("VIP %v: not a plain IPv4 or IPv6 prefix", p)
	case p.Bits() != a.BitLen():
		return fmt.Errorf("VIP %v: not a /32 or /128", p)
	case a.IsUnspecified() || a.IsMulticast() || a.IsLoopback() || a.IsLinkLocalUnicast():
		return fmt.Errorf("VIP %v: not a routable unicast address", p)
	}
	return nil
}

// CheckGroup is Check for a group message: the guard remembers a
// group's sender as it does a pair's, by node, boot, sequence and time.
func (g *ReplayGuard) CheckGroup(m GroupMessage, now time.Time) error {
	return g.Check(Message{Node: m.Node, Boot: m.Boot, Seq: m.Seq, Time: m.Time}, now)
}
