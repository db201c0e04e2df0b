package heartbeat

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
//	magic "DRHB" | version 2 | kind 1 | role 1 | priority 1 |
//	boot 8 | seq 8 | time (unix ns) 8 | config digest 16 |
//	ping reached 1 | ping total 1 | pref 1 | pref seq 4 |
//	drain digest 8 | name length 1 | name | payload length 2 | payload |
//	HMAC-SHA256 32
//
// The MAC covers every byte before it. The name and payload lengths are
// the only fields read before the MAC is verified (with magic and
// version, which say how to read them). Only KindDrains has a payload:
// drain records (drains.go).
//
// Version 1, an earlier release's, has neither the drain digest nor the
// payload length and payload: the name is followed by the MAC. Both are
// read; a director answers a peer that speaks version 1 in version 1 (see
// Message.Version), so a pair upgraded one director at a time keeps
// hearing itself, and shares drains once both speak version 2.
const (
	wireMagic   = "DRHB"
	wireVersion = 2

	wireLegacyVersion    = 1
	wireLegacyOffNameLen = 55
	wireLegacyOffName    = 56

	wireOffVersion     = 4
	wireOffKind        = 5
	wireOffRole        = 6
	wireOffPriority    = 7
	wireOffBoot        = 8
	wireOffSeq         = 16
	wireOffTime        = 24
	wireOffDigest      = 32
	wireOffReached     = 48
	wireOffTotal       = 49
	wireOffPref        = 50
	wireOffPrefSeq     = 51
	wireOffDrainDigest = 55
	wireOffNameLen     = 63
	wireOffName        = 64

	wirePayloadLenSize = 2
	wireMACSize        = sha256.Size

	// MinFrameSize and MaxFrameSize bound an encoded message: a buffer
	// of MaxFrameSize bytes always holds a whole one. MaxFrameSize is
	// what a serial link carries in one frame.
	MinFrameSize = wireLegacyOffName + 1 + wireMACSize
	MaxFrameSize = 1024
)

// Encode serialises m and authenticates it with key.
func Encode(key []byte, m Message) ([]byte, error) {
	if len(key) == 0 {
		return nil, errors.New("encode heartbeat: no authentication key")
	}
	if err := wireValidate(m); err != nil {
		return nil, fmt.Errorf("encode heartbeat: %w", err)
	}
	if m.Version == wireLegacyVersion {
		return encodeLegacy(key, m)
	}
	if m.Version != 0 {
		return nil, fmt.Errorf("encode heartbeat: version %d", m.Version)
	}
	b := make([]byte, wireOffName+len(m.Node), MaxFrameSize)
	putHeader(b, m, wireVersion)
	copy(b[wireOffDrainDigest:wireOffNameLen], m.DrainDigest[:])
	b[wireOffNameLen] = byte(len(m.Node))
	copy(b[wireOffName:], m.Node)
	var payload []byte
	if m.Kind == KindDrains {
		var err error
		if payload, err = appendDrains(nil, m.Drains); err != nil {
			return nil, fmt.Errorf("encode heartbeat: %w", err)
		}
	}
	if len(b)+wirePayloadLenSize+len(payload)+wireMACSize > MaxFrameSize {
		return nil, fmt.Errorf("encode heartbeat: %d bytes of drain records do not fit a frame", len(payload))
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(payload)))
	b = append(b, payload...)
	return append(b, wireMAC(key, b)...), nil
}

// encodeLegacy writes version 1, which carries no drains.
func encodeLegacy(key []byte, m Message) ([]byte, error) {
	if m.Kind == KindDrains {
		return nil, errors.New("encode heartbeat: version 1 carries no drain records")
	}
	b := make([]byte, wireLegacyOffName+len(m.Node), wireLegacyOffName+len(m.Node)+wireMACSize)
	putHeader(b, m, wireLegacyVersion)
	b[wireLegacyOffNameLen] = byte(len(m.Node))
	copy(b[wireLegacyOffName:], m.Node)
	return append(b, wireMAC(key, b)...), nil
}

// putHeader writes what both versions share: everything before the drain
// digest (version 2) or the name length (version 1).
func putHeader(b []byte, m Message, version byte) {
	copy(b, wireMagic)
	b[wireOffVersion] = version
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
	if len(b) > MaxFrameSize {
		return Message{}, fmt.Errorf("%w: %d bytes, at most %d", ErrMalformed, len(b), MaxFrameSize)
	}
	switch b[wireOffVersion] {
	case wireVersion:
	case wireLegacyVersion:
		return decodeLegacy(key, b)
	default:
		return Message{}, fmt.Errorf("%w: version %d, want %d or %d", ErrMalformed, b[wireOffVersion], wireVersion, wireLegacyVersion)
	}
	if len(b) < wireOffName+1+wirePayloadLenSize+wireMACSize {
		return Message{}, fmt.Errorf("%w: %d bytes, want at least %d", ErrMalformed, len(b), wireOffName+1+wirePayloadLenSize+wireMACSize)
	}
	nameLen := int(b[wireOffNameLen])
	offPayload := wireOffName + nameLen + wirePayloadLenSize
	if offPayload+wireMACSize > len(b) {
		return Message{}, fmt.Errorf("%w: %d bytes, but a name of %d bytes makes at least %d", ErrMalformed, len(b), nameLen, offPayload+wireMACSize)
	}
	payloadLen := int(binary.BigEndian.Uint16(b[offPayload-wirePayloadLenSize:]))
	if want := offPayload + payloadLen + wireMACSize; len(b) != want {
		return Message{}, fmt.Errorf("%w: %d bytes, but a name of %d bytes and a payload of %d make %d", ErrMalformed, len(b), nameLen, payloadLen, want)
	}
	body, mac := b[:len(b)-wireMACSize], b[len(b)-wireMACSize:]
	if !hmac.Equal(mac, wireMAC(key, body)) {
		return Message{}, ErrBadMAC
	}
	m := header(b)
	m.Node = string(b[wireOffName : wireOffName+nameLen])
	copy(m.DrainDigest[:], b[wireOffDrainDigest:wireOffNameLen])
	switch payload := b[offPayload : offPayload+payloadLen]; {
	case m.Kind == KindDrains:
		recs, err := parseDrains(payload)
		if err != nil {
			return Message{}, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		m.Drains = recs
	case payloadLen != 0:
		return Message{}, fmt.Errorf("%w: a payload of %d bytes on a message of kind %d", ErrMalformed, payloadLen, m.Kind)
	}
	if err := wireValidate(m); err != nil {
		return Message{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return m, nil
}

// decodeLegacy reads version 1: no drain digest, no payload.
func decodeLegacy(key, b []byte) (Message, error) {
	nameLen := int(b[wireLegacyOffNameLen])
	if want := wireLegacyOffName + nameLen + wireMACSize; len(b) != want {
		return Message{}, fmt.Errorf("%w: %d bytes, but a version 1 name of %d bytes makes %d", ErrMalformed, len(b), nameLen, want)
	}
	body, mac := b[:len(b)-wireMACSize], b[len(b)-wireMACSize:]
	if !hmac.Equal(mac, wireMAC(key, body)) {
		return Message{}, ErrBadMAC
	}
	m := header(b)
	m.Node = string(b[wireLegacyOffName : wireLegacyOffName+nameLen])
	m.Version = wireLegacyVersion
	if m.Kind == KindDrains {
		return Message{}, fmt.Errorf("%w: drain records in version 1", ErrMalformed)
	}
	if err := wireValidate(m); err != nil {
		return Message{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return m, nil
}

// header reads what both versions share, once the MAC is verified.
func header(b []byte) Message {
	m := Message{
		Kind:        Kind(b[wireOffKind]),
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
	return m
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
	case KindHeartbeat, KindLeaving, KindDrains:
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
	if m.Kind != KindDrains && len(m.Drains) > 0 {
		return fmt.Errorf("drain records on a message of kind %d", m.Kind)
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
