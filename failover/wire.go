package failover

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
	"unicode"
	"unicode/utf8"
)

// Decode's errors wrap one of these.
var (
	ErrMalformed = errors.New("malformed heartbeat")
	ErrBadMAC    = errors.New("heartbeat authentication failed")
)

// The frame, all integers big-endian:
//
//	magic "DRHB" | version 1 | kind 1 | role 1 | priority 1 |
//	boot 8 | seq 8 | time (unix ns) 8 | config digest 16 |
//	ping reached 1 | ping total 1 | pref 1 | pref seq 4 |
//	name length 1 | name | HMAC-SHA256 32
//
// The MAC covers every byte before it. The name length is the only field
// read before the MAC is verified (with magic and version, which say how
// to read it).
const (
	wireMagic   = "DRHB"
	wireVersion = 1

	wireOffVersion  = 4
	wireOffKind     = 5
	wireOffRole     = 6
	wireOffPriority = 7
	wireOffBoot     = 8
	wireOffSeq      = 16
	wireOffTime     = 24
	wireOffDigest   = 32
	wireOffReached  = 48
	wireOffTotal    = 49
	wireOffPref     = 50
	wireOffPrefSeq  = 51
	wireOffNameLen  = 55
	wireOffName     = 56

	wireMACSize = sha256.Size

	// MinFrameSize and MaxFrameSize bound an encoded heartbeat: a buffer
	// of MaxFrameSize bytes always holds a whole one.
	MinFrameSize = wireOffName + 1 + wireMACSize
	MaxFrameSize = wireOffName + MaxNodeName + wireMACSize
)

// Encode serialises m and authenticates it with key.
func Encode(key []byte, m Message) ([]byte, error) {
	if len(key) == 0 {
		return nil, errors.New("encode heartbeat: no authentication key")
	}
	if err := wireValidate(m); err != nil {
		return nil, fmt.Errorf("encode heartbeat: %w", err)
	}
	b := make([]byte, wireOffName+len(m.Node), wireOffName+len(m.Node)+wireMACSize)
	copy(b, wireMagic)
	b[wireOffVersion] = wireVersion
	b[wireOffKind] = byte(m.Kind)
	b[wireOffRole] = byte(m.Role)
	b[wireOffPriority] = m.Priority
	binary.BigEndian.PutUint64(b[wireOffBoot:], m.Boot)
	binary.BigEndian.PutUint64(b[wireOffSeq:], m.Seq)
	binary.BigEndian.PutUint64(b[wireOffTime:], uint64(m.Time.UnixNano()))
	copy(b[wireOffDigest:wireOffReached], m.ConfigDigest[:])
	b[wireOffReached] = m.PingReached
	b[wireOffTotal] = m.PingTotal
	b[wireOffPref] = byte(m.Pref)
	binary.BigEndian.PutUint32(b[wireOffPrefSeq:], m.PrefSeq)
	b[wireOffNameLen] = byte(len(m.Node))
	copy(b[wireOffName:], m.Node)
	return append(b, wireMAC(key, b)...), nil
}

// Decode authenticates b with key and parses it. The returned Time is in
// the local zone, at nanosecond precision.
func Decode(key []byte, b []byte) (Message, error) {
	if len(key) == 0 {
		return Message{}, fmt.Errorf("%w: no authentication key", ErrBadMAC)
	}
	if len(b) < MinFrameSize {
		return Message{}, fmt.Errorf("%w: %d bytes, want at least %d", ErrMalformed, len(b), MinFrameSize)
	}
	if string(b[:wireOffVersion]) != wireMagic {
		return Message{}, fmt.Errorf("%w: bad magic %q", ErrMalformed, b[:wireOffVersion])
	}
	if b[wireOffVersion] != wireVersion {
		return Message{}, fmt.Errorf("%w: version %d, want %d", ErrMalformed, b[wireOffVersion], wireVersion)
	}
	nameLen := int(b[wireOffNameLen])
	if want := wireOffName + nameLen + wireMACSize; len(b) != want {
		return Message{}, fmt.Errorf("%w: %d bytes, but a name of %d bytes makes %d", ErrMalformed, len(b), nameLen, want)
	}
	body, mac := b[:len(b)-wireMACSize], b[len(b)-wireMACSize:]
	if !hmac.Equal(mac, wireMAC(key, body)) {
		return Message{}, ErrBadMAC
	}
	m := Message{
		Kind:        Kind(b[wireOffKind]),
		Node:        string(b[wireOffName : wireOffName+nameLen]),
		Priority:    b[wireOffPriority],
		Role:        Role(b[wireOffRole]),
		Boot:        binary.BigEndian.Uint64(b[wireOffBoot:]),
		Seq:         binary.BigEndian.Uint64(b[wireOffSeq:]),
		Time:        time.Unix(0, int64(binary.BigEndian.Uint64(b[wireOffTime:]))),
		PingReached: b[wireOffReached],
		PingTotal:   b[wireOffTotal],
		Pref:        int8(b[wireOffPref]),
		PrefSeq:     binary.BigEndian.Uint32(b[wireOffPrefSeq:]),
	}
	copy(m.ConfigDigest[:], b[wireOffDigest:wireOffReached])
	if err := wireValidate(m); err != nil {
		return Message{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return m, nil
}

func wireMAC(key, body []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write(body)
	return h.Sum(nil)
}

// Times a signed 64-bit count of nanoseconds since 1970 can hold.
var (
	wireMinTime = time.Unix(0, -1<<63)
	wireMaxTime = time.Unix(0, 1<<63-1)
)

// wireValidate holds the rules both ends apply, so that whatever Decode
// accepts, Encode writes back byte for byte.
func wireValidate(m Message) error {
	switch m.Kind {
	case KindHeartbeat, KindLeaving:
	default:
		return fmt.Errorf("unknown kind %d", m.Kind)
	}
	switch m.Role {
	case RoleInit, RoleStandby, RoleActive, RoleFault:
	default:
		return fmt.Errorf("unknown role %d", m.Role)
	}
	if err := wireNodeName(m.Node); err != nil {
		return err
	}
	if m.Time.Before(wireMinTime) || m.Time.After(wireMaxTime) {
		return fmt.Errorf("time %v out of range", m.Time)
	}
	if m.PingReached > m.PingTotal {
		return fmt.Errorf("%d of %d ping nodes reached", m.PingReached, m.PingTotal)
	}
	if m.Pref < -1 || m.Pref > 1 {
		return fmt.Errorf("preference %d, want -1, 0 or 1", m.Pref)
	}
	return nil
}

// wireNodeName refuses names that could not be logged or compared
// safely: a name ends up in logs, metrics labels and status output.
func wireNodeName(s string) error {
	if s == "" {
		return errors.New("empty node name")
	}
	if len(s) > MaxNodeName {
		return fmt.Errorf("node name of %d bytes, at most %d", len(s), MaxNodeName)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("node name %q is not valid UTF-8", s)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return fmt.Errorf("node name %q holds a control character", s)
		}
	}
	return nil
}
