// Package heartbeat is what directors say to each other, and how: the
// authenticated message (Message, Encode, Decode) with the drain records
// it may carry, the shared key (ReadAuthKey), the guard against replays
// (ReplayGuard), and the links that carry frames (UDP to a peer or a
// group, a serial line). It decides nothing: the pair's election (package
// failover) and the VIP guard's farewell (package vip) speak through it.
package heartbeat

import (
	"crypto/rand"
	"encoding/binary"
	"time"
)

// Kind is what a heartbeat message announces.
type Kind uint8

const (
	// KindHeartbeat is the periodic message, sent every keepalive and at
	// once on every change of role.
	KindHeartbeat Kind = 1
	// KindLeaving is sent on a graceful stop, so the peer takes over at
	// once instead of waiting for deadtime.
	KindLeaving Kind = 2
	// KindDrains carries the operator's drain records, when they change
	// and whenever the peer's drain digest differs. It is a heartbeat
	// too: every other field is as in KindHeartbeat.
	KindDrains Kind = 3
)

// Message is one heartbeat, as the sender states it. On the wire it is
// authenticated with HMAC-SHA256 (see Encode and Decode).
type Message struct {
	Kind     Kind
	Node     string // the sender's node name, 1 to MaxNodeName bytes
	Priority uint8
	Role     Role
	// Boot is chosen at random when the sender starts; Seq counts its
	// messages from 1 within that boot. With Time (the sender's wall
	// clock) they let the receiver refuse replays and old messages.
	Boot uint64
	Seq  uint64
	Time time.Time
	// ConfigDigest summarises the sender's service configuration, so the
	// pair can tell when their configs differ.
	ConfigDigest [16]byte
	// PingReached of PingTotal ping nodes answered the sender lately.
	PingReached uint8
	PingTotal   uint8
	// Pref is the operator's standing request: +1 after `directorctl
	// takeover` on the sender, -1 after `release`, 0 otherwise. PrefSeq
	// counts those requests, so the receiver can tell a new one.
	Pref    int8
	PrefSeq uint32
	// DrainDigest summarises the sender's drain records (DrainDigest),
	// so the pair can tell when they differ.
	DrainDigest [8]byte
	// Drains are drain records, on a KindDrains message only.
	Drains []DrainRecord
	// Version is the wire format: 0 for the current one, 1 for an
	// earlier release's, which has no drains (DrainDigest is zero). A
	// director answers in the version its peer speaks.
	Version uint8
}

// MaxNodeName is the longest node name a message carries.
const MaxNodeName = 64

// NewBoot picks a Message.Boot at random, for a sender that starts.
func NewBoot() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint64(b[:])
}
