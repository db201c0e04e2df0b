package heartbeat

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

var wireTestKey = []byte("0123456789abcdef-test-key")

func wireTestMessage() Message {
	return Message{
		Kind:         KindHeartbeat,
		Node:         "lb1",
		Priority:     150,
		Role:         RoleActive,
		Boot:         0x0102030405060708,
		Seq:          42,
		Time:         time.Unix(1700000000, 123456789),
		ConfigDigest: [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
		DrainDigest:  [8]byte{0xd1, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8},
		PingReached:  1,
		PingTotal:    2,
		Pref:         -1,
		PrefSeq:      7,
	}
}

func wireMustEncode(t testing.TB, m Message) []byte {
	t.Helper()
	b, err := Encode(wireTestKey, m)
	if err != nil {
		t.Fatalf("Encode(%+v): %v", m, err)
	}
	return b
}

// wireSameMessage compares two messages field by field: Time is compared
// as an instant, not by its location or monotonic reading.
func wireSameMessage(a, b Message) bool {
	ta, tb := a.Time, b.Time
	da, db := a.Drains, b.Drains
	a.Time, b.Time, a.Drains, b.Drains = time.Time{}, time.Time{}, nil, nil
	return reflect.DeepEqual(a, b) && ta.Equal(tb) && slices.EqualFunc(da, db, func(x, y DrainRecord) bool {
		return x.Service == y.Service && x.Server == y.Server && x.Drained == y.Drained && x.At.Equal(y.At)
	})
}

// wireRemac replaces a frame's MAC by a valid one, so that a test can reach
// the checks made after authentication.
func wireRemac(key, frame []byte) []byte {
	body := frame[:len(frame)-wireMACSize]
	h := hmac.New(sha256.New, key)
	h.Write(body)
	return h.Sum(append([]byte(nil), body...))
}

// wireWithName rebuilds a valid frame around another name (any bytes, any
// length up to 255), with a valid MAC.
func wireWithName(frame []byte, name string) []byte {
	b := append([]byte(nil), frame[:wireOffNameLen]...)
	b = append(b, byte(len(name)))
	b = append(b, name...)
	b = append(b, 0, 0) // no payload
	b = append(b, make([]byte, wireMACSize)...)
	return wireRemac(wireTestKey, b)
}

// wireTestHeader is what both versions share of wireTestMessage's frame,
// written out field by field.
func wireTestHeader(m Message, version byte) []byte {
	var want []byte
	want = append(want, "DRHB"...)
	want = append(want, version, byte(KindHeartbeat), byte(RoleActive), 150)
	want = binary.BigEndian.AppendUint64(want, m.Boot)
	want = binary.BigEndian.AppendUint64(want, 42)
	want = binary.BigEndian.AppendUint64(want, uint64(m.Time.UnixNano()))
	want = append(want, m.ConfigDigest[:]...)
	want = append(want, 1, 2, 0xff)
	want = binary.BigEndian.AppendUint32(want, 7)
	return want
}

// wireSign appends the MAC under wireTestKey.
func wireSign(b []byte) []byte {
	h := hmac.New(sha256.New, wireTestKey)
	h.Write(b)
	return h.Sum(b)
}

func TestEncodeLayout(t *testing.T) {
	m := wireTestMessage()
	got := wireMustEncode(t, m)

	want := wireTestHeader(m, 2)
	want = append(want, m.DrainDigest[:]...)
	want = append(want, 3, 'l', 'b', '1')
	want = append(want, 0, 0) // no payload
	want = wireSign(want)

	if !bytes.Equal(got, want) {
		t.Fatalf("Encode:\n got %x\nwant %x", got, want)
	}
}

// Version 1 is the earlier release's layout, byte for byte: no drain
// digest, no payload.
func TestEncodeLegacyLayout(t *testing.T) {
	m := wireTestMessage()
	m.Version, m.DrainDigest = 1, [8]byte{}
	got := wireMustEncode(t, m)

	want := wireTestHeader(m, 1)
	want = append(want, 3, 'l', 'b', '1')
	want = wireSign(want)
	if !bytes.Equal(got, want) {
		t.Fatalf("Encode version 1:\n got %x\nwant %x", got, want)
	}
	back, err := Decode(wireTestKey, want)
	if err != nil || !wireSameMessage(back, m) {
		t.Fatalf("Decode version 1: %+v, %v; want %+v", back, err, m)
	}
	m.Kind, m.Drains = KindDrains, drainTestRecords(1)
	if _, err := Encode(wireTestKey, m); err == nil {
		t.Fatal("encoded drain records in version 1")
	}
}

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Message)
	}{
		{"as is", func(*Message) {}},
		{"leaving", func(m *Message) { m.Kind = KindLeaving }},
		{"drains", func(m *Message) { m.Kind, m.Drains, m.DrainDigest = KindDrains, drainTestRecords(9), [8]byte{1, 2, 3} }},
		{"no drains", func(m *Message) { m.Kind = KindDrains }},
		{"every role", nil},
		{"longest name", func(m *Message) { m.Node = strings.Repeat("n", MaxNodeName) }},
		{"one byte name", func(m *Message) { m.Node = "x" }},
		{"utf-8 name", func(m *Message) { m.Node = "répartiteur-北" }},
		{"largest integers", func(m *Message) {
			m.Priority, m.Boot, m.Seq, m.PrefSeq = 255, 1<<64-1, 1<<64-1, 1<<32-1
			m.PingReached, m.PingTotal = 255, 255
		}},
		{"zero integers", func(m *Message) {
			m.Priority, m.Boot, m.Seq, m.PrefSeq, m.PingReached, m.PingTotal, m.Pref = 0, 0, 0, 0, 0, 0, 0
			m.ConfigDigest = [16]byte{}
		}},
		{"positive pref", func(m *Message) { m.Pref = 1 }},
		{"time before 1970", func(m *Message) { m.Time = time.Date(1969, 7, 20, 20, 17, 0, 1, time.UTC) }},
		{"latest time", func(m *Message) { m.Time = wireMaxTime }},
		{"earliest time", func(m *Message) { m.Time = wireMinTime }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var msgs []Message
			if tt.edit == nil {
				for _, r := range Roles {
					m := wireTestMessage()
					m.Role = r
					msgs = append(msgs, m)
				}
			} else {
				m := wireTestMessage()
				tt.edit(&m)
				msgs = append(msgs, m)
			}
			for _, m := range msgs {
				b := wireMustEncode(t, m)
				if len(b) < MinFrameSize || len(b) > MaxFrameSize {
					t.Errorf("frame of %d bytes, outside [%d, %d]", len(b), MinFrameSize, MaxFrameSize)
				}
				got, err := Decode(wireTestKey, b)
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				if !wireSameMessage(got, m) {
					t.Fatalf("round trip:\n got %+v\nwant %+v", got, m)
				}
			}
		})
	}
}

func TestEncodeRefuses(t *testing.T) {
	tests := []struct {
		name string
		key  []byte
		edit func(*Message)
	}{
		{"no key", []byte{}, func(*Message) {}},
		{"empty name", wireTestKey, func(m *Message) { m.Node = "" }},
		{"name too long", wireTestKey, func(m *Message) { m.Node = strings.Repeat("n", MaxNodeName+1) }},
		{"name not utf-8", wireTestKey, func(m *Message) { m.Node = "lb\xff" }},
		{"name with newline", wireTestKey, func(m *Message) { m.Node = "lb\n1" }},
		{"kind zero", wireTestKey, func(m *Message) { m.Kind = 0 }},
		{"unknown kind", wireTestKey, func(m *Message) { m.Kind = 4 }},
		{"drains on a heartbeat", wireTestKey, func(m *Message) { m.Drains = drainTestRecords(1) }},
		{"drains past a frame", wireTestKey, func(m *Message) { m.Kind, m.Drains = KindDrains, drainTestRecords(60) }},
		{"unknown role", wireTestKey, func(m *Message) { m.Role = RoleFault + 1 }},
		{"zero time", wireTestKey, func(m *Message) { m.Time = time.Time{} }},
		{"time after 2262", wireTestKey, func(m *Message) { m.Time = wireMaxTime.Add(time.Nanosecond) }},
		{"more reached than total", wireTestKey, func(m *Message) { m.PingReached, m.PingTotal = 3, 2 }},
		{"pref 2", wireTestKey, func(m *Message) { m.Pref = 2 }},
		{"pref -2", wireTestKey, func(m *Message) { m.Pref = -2 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := wireTestMessage()
			tt.edit(&m)
			if b, err := Encode(tt.key, m); err == nil {
				t.Fatalf("Encode(%+v) = %x, want an error", m, b)
			}
		})
	}
}

func TestDecodeRefuses(t *testing.T) {
	valid := wireMustEncode(t, wireTestMessage())
	edit := func(f func(b []byte) []byte) []byte {
		return f(append([]byte(nil), valid...))
	}
	setAndRemac := func(off int, v byte) []byte {
		return edit(func(b []byte) []byte { b[off] = v; return wireRemac(wireTestKey, b) })
	}
	tests := []struct {
		name  string
		key   []byte
		frame []byte
		want  error
	}{
		{"empty", wireTestKey, nil, ErrMalformed},
		{"shorter than any frame", wireTestKey, valid[:MinFrameSize-1], ErrMalformed},
		{"truncated", wireTestKey, valid[:len(valid)-1], ErrMalformed},
		{"trailing byte", wireTestKey, append(append([]byte(nil), valid...), 0), ErrMalformed},
		{"trailing byte, wireRemac'd", wireTestKey, wireRemac(wireTestKey, append(append([]byte(nil), valid...), 0)), ErrMalformed},
		{"bad magic", wireTestKey, setAndRemac(0, 'X'), ErrMalformed},
		{"version 0", wireTestKey, setAndRemac(wireOffVersion, 0), ErrMalformed},
		{"version 1", wireTestKey, setAndRemac(wireOffVersion, 1), ErrMalformed},
		{"version 3", wireTestKey, setAndRemac(wireOffVersion, 3), ErrMalformed},
		{"name length past the end", wireTestKey, setAndRemac(wireOffNameLen, 200), ErrMalformed},
		{"name length short of the end", wireTestKey, setAndRemac(wireOffNameLen, 2), ErrMalformed},
		{"wrong key", []byte("another key of sixteen"), valid, ErrBadMAC},
		{"no key", nil, valid, ErrBadMAC},
		{"flipped seq bit", wireTestKey, edit(func(b []byte) []byte { b[wireOffSeq+7] ^= 1; return b }), ErrBadMAC},
		{"flipped name bit", wireTestKey, edit(func(b []byte) []byte { b[wireOffName] ^= 0x20; return b }), ErrBadMAC},
		{"flipped MAC bit", wireTestKey, edit(func(b []byte) []byte { b[len(b)-1] ^= 0x80; return b }), ErrBadMAC},
		// The MAC is checked before the fields: a forged frame with a
		// bad kind is an authentication failure, not a parse error.
		{"unknown kind, bad MAC", wireTestKey, edit(func(b []byte) []byte { b[wireOffKind] = 9; return b }), ErrBadMAC},
		{"unknown kind", wireTestKey, setAndRemac(wireOffKind, 9), ErrMalformed},
		{"kind zero", wireTestKey, setAndRemac(wireOffKind, 0), ErrMalformed},
		{"unknown role", wireTestKey, setAndRemac(wireOffRole, byte(RoleFault+1)), ErrMalformed},
		{"more reached than total", wireTestKey, setAndRemac(wireOffReached, 3), ErrMalformed},
		{"pref 2", wireTestKey, setAndRemac(wireOffPref, 2), ErrMalformed},
		// No time case: every int64 of nanoseconds is a valid time.
		{"empty name", wireTestKey, wireWithName(valid, ""), ErrMalformed},
		{"name too long", wireTestKey, wireWithName(valid, strings.Repeat("n", MaxNodeName+1)), ErrMalformed},
		{"name not utf-8", wireTestKey, wireWithName(valid, "lb\xc3"), ErrMalformed},
		{"name with NUL", wireTestKey, wireWithName(valid, "lb\x001"), ErrMalformed},
		{"name with escape", wireTestKey, wireWithName(valid, "lb\x1b[2J"), ErrMalformed},
		{"name with DEL", wireTestKey, wireWithName(valid, "lb\x7f"), ErrMalformed},
		{"name with C1 control", wireTestKey, wireWithName(valid, "lb\u0085"), ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Decode(tt.key, tt.frame)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Decode = %+v, %v; want an error wrapping %v", m, err, tt.want)
			}
			other := ErrBadMAC
			if tt.want == ErrBadMAC {
				other = ErrMalformed
			}
			if errors.Is(err, other) {
				t.Fatalf("Decode error %v wraps %v too", err, other)
			}
		})
	}
}

func TestDecodeKeepsNoReferenceToInput(t *testing.T) {
	b := wireMustEncode(t, wireTestMessage())
	m, err := Decode(wireTestKey, b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 'x'
	}
	if m.Node != "lb1" {
		t.Fatalf("node name %q changed with the input buffer", m.Node)
	}
}

func FuzzDecode(f *testing.F) {
	for _, edit := range []func(*Message){
		func(*Message) {},
		func(m *Message) { m.Kind, m.Role, m.Pref = KindLeaving, RoleStandby, 1 },
		func(m *Message) { m.Node = strings.Repeat("é", MaxNodeName/2) },
		func(m *Message) { m.Node, m.Time = "b", time.Unix(0, 0) },
		func(m *Message) { m.Kind, m.Drains = KindDrains, drainTestRecords(5) },
		func(m *Message) { m.Version, m.DrainDigest = 1, [8]byte{} },
	} {
		m := wireTestMessage()
		edit(&m)
		f.Add(wireMustEncode(f, m))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		check := func(b []byte) {
			m, err := Decode(wireTestKey, b)
			if err != nil {
				if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrBadMAC) {
					t.Fatalf("Decode error %v wraps neither ErrMalformed nor ErrBadMAC", err)
				}
				return
			}
			again, err := Encode(wireTestKey, m)
			if err != nil {
				t.Fatalf("decoded %+v does not encode: %v", m, err)
			}
			if !bytes.Equal(again, b) {
				t.Fatalf("decoded %+v re-encodes differently:\n got %x\nwant %x", m, again, b)
			}
		}
		check(b)
		// A random MAC never verifies; re-MAC'd input reaches the
		// field checks.
		if len(b) >= wireMACSize {
			check(wireRemac(wireTestKey, append([]byte(nil), b...)))
		}
	})
}
