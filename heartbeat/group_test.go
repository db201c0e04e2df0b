package heartbeat

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

func groupTestMessage() GroupMessage {
	return GroupMessage{
		Node:     "lb2",
		Boot:     0x0102030405060708,
		Seq:      42,
		Time:     time.Unix(1700000000, 123456789),
		Interval: time.Second,
		Digest:   [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
		Announced: []netip.Prefix{
			netip.MustParsePrefix("2001:db8::10/128"),
			netip.MustParsePrefix("192.0.2.20/32"),
			netip.MustParsePrefix("192.0.2.10/32"),
		},
		Drained: true,
	}
}

func groupMustEncode(t testing.TB, m GroupMessage) []byte {
	t.Helper()
	b, err := EncodeGroup(wireTestKey, m)
	if err != nil {
		t.Fatalf("EncodeGroup: %v", err)
	}
	return b
}

// The layout, field by field, so that a change of the wire is a change
// of this test.
func TestGroupWireLayout(t *testing.T) {
	m := groupTestMessage()
	got := groupMustEncode(t, m)
	var want []byte
	want = append(want, "DRGP"...)
	want = append(want, 1, groupFlagDrained)
	want = binary.BigEndian.AppendUint32(want, 1000)
	want = binary.BigEndian.AppendUint64(want, m.Boot)
	want = binary.BigEndian.AppendUint64(want, m.Seq)
	want = binary.BigEndian.AppendUint64(want, uint64(m.Time.UnixNano()))
	want = append(want, m.Digest[:]...)
	want = append(want, 3)
	want = append(want, "lb2"...)
	want = append(want, 0, 2, 192, 0, 2, 10, 192, 0, 2, 20) // sorted
	want = append(want, 0, 1)
	a16 := netip.MustParseAddr("2001:db8::10").As16()
	want = append(want, a16[:]...)
	want = append(want, wireMAC(wireTestKey, want)...)
	if !bytes.Equal(got, want) {
		t.Fatalf("frame:\n got %x\nwant %x", got, want)
	}
}

func TestGroupRoundTrip(t *testing.T) {
	for name, edit := range map[string]func(*GroupMessage){
		"as is":     func(*GroupMessage) {},
		"no VIPs":   func(m *GroupMessage) { m.Announced = nil },
		"leaving":   func(m *GroupMessage) { m.Leaving, m.Drained = true, false },
		"truncated": func(m *GroupMessage) { m.Truncated = true },
		"long name": func(m *GroupMessage) { m.Node = strings.Repeat("é", MaxNodeName/2) },
		"most VIPs": func(m *GroupMessage) {
			m.Node, m.Announced = strings.Repeat("n", MaxNodeName), groupTestPrefixes(MaxGroupPrefixes, true)
		},
		"interval": func(m *GroupMessage) { m.Interval = 250 * time.Millisecond },
	} {
		t.Run(name, func(t *testing.T) {
			m := groupTestMessage()
			edit(&m)
			b := groupMustEncode(t, m)
			if len(b) > MaxGroupFrameSize {
				t.Fatalf("frame of %d bytes, more than MaxGroupFrameSize", len(b))
			}
			got, err := DecodeGroup(wireTestKey, b)
			if err != nil {
				t.Fatalf("DecodeGroup: %v", err)
			}
			want := m
			want.Announced = slices.Clone(m.Announced)
			slices.SortFunc(want.Announced, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
			if len(want.Announced) == 0 {
				want.Announced = nil
			}
			if !got.Time.Equal(want.Time) {
				t.Fatalf("time %v, want %v", got.Time, want.Time)
			}
			got.Time = want.Time
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("decoded\n %+v\nwant\n %+v", got, want)
			}
		})
	}
}

// groupTestPrefixes makes n distinct VIPs, IPv6 or IPv4.
func groupTestPrefixes(n int, v6 bool) []netip.Prefix {
	var ps []netip.Prefix
	for i := 1; i <= n; i++ {
		if v6 {
			a := netip.MustParseAddr("2001:db8::").As16()
			a[14], a[15] = byte(i>>8), byte(i)
			ps = append(ps, netip.PrefixFrom(netip.AddrFrom16(a), 128))
		} else {
			ps = append(ps, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), 32))
		}
	}
	return ps
}

func TestGroupEncodeRefuses(t *testing.T) {
	for name, edit := range map[string]func(*GroupMessage){
		"empty name":    func(m *GroupMessage) { m.Node = "" },
		"control name":  func(m *GroupMessage) { m.Node = "a\nb" },
		"zero interval": func(m *GroupMessage) { m.Interval = 0 },
		"sub-ms":        func(m *GroupMessage) { m.Interval = time.Second + time.Microsecond },
		"huge interval": func(m *GroupMessage) { m.Interval = 2 * time.Hour },
		"/24":           func(m *GroupMessage) { m.Announced = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")} },
		"/64":           func(m *GroupMessage) { m.Announced = []netip.Prefix{netip.MustParsePrefix("2001:db8::/64")} },
		"4in6":          func(m *GroupMessage) { m.Announced = []netip.Prefix{netip.MustParsePrefix("::ffff:192.0.2.1/128")} },
		"link-local":    func(m *GroupMessage) { m.Announced = []netip.Prefix{netip.MustParsePrefix("fe80::1/128")} },
		"invalid":       func(m *GroupMessage) { m.Announced = []netip.Prefix{{}} },
		"multicast":     func(m *GroupMessage) { m.Announced = []netip.Prefix{netip.MustParsePrefix("239.1.1.1/32")} },
		"too many":      func(m *GroupMessage) { m.Announced = groupTestPrefixes(MaxGroupPrefixes+1, false) },
	} {
		m := groupTestMessage()
		edit(&m)
		if b, err := EncodeGroup(wireTestKey, m); err == nil {
			t.Errorf("%s: EncodeGroup accepted %+v: %x", name, m, b)
		}
	}
	if _, err := EncodeGroup(nil, groupTestMessage()); err == nil {
		t.Error("EncodeGroup accepted no key")
	}
	// Duplicates are merged, not refused: they say the same.
	m := groupTestMessage()
	m.Announced = append(m.Announced, m.Announced...)
	got, err := DecodeGroup(wireTestKey, groupMustEncode(t, m))
	if err != nil || len(got.Announced) != 3 {
		t.Fatalf("duplicates: %v, %v; want the 3 VIPs once", got.Announced, err)
	}
}

// A pair's director never takes a group frame for a heartbeat, and a
// group's never takes a pair's heartbeat for a group frame, whatever the
// kind or version, under the same key.
func TestGroupAndPairFramesDoNotMix(t *testing.T) {
	for _, m := range []Message{
		wireTestMessage(),
		func() Message { m := wireTestMessage(); m.Kind = KindLeaving; return m }(),
		func() Message { m := wireTestMessage(); m.Kind, m.Drains = KindDrains, drainTestRecords(3); return m }(),
		func() Message { m := wireTestMessage(); m.Version, m.DrainDigest = 1, [8]byte{}; return m }(),
	} {
		b := wireMustEncode(t, m)
		if g, err := DecodeGroup(wireTestKey, b); !errors.Is(err, ErrMalformed) {
			t.Errorf("DecodeGroup of a pair heartbeat (kind %d, version %d): %+v, %v; want ErrMalformed", m.Kind, m.Version, g, err)
		}
	}
	for _, m := range []GroupMessage{
		groupTestMessage(),
		{Node: "x", Time: time.Unix(0, 0), Interval: time.Millisecond},
		func() GroupMessage { m := groupTestMessage(); m.Announced = groupTestPrefixes(60, true); return m }(),
	} {
		b := groupMustEncode(t, m)
		if p, err := Decode(wireTestKey, b); !errors.Is(err, ErrMalformed) {
			t.Errorf("Decode of a group frame: %+v, %v; want ErrMalformed", p, err)
		}
		// Even relabelled as a pair frame: the MAC covers the magic.
		relabelled := append([]byte("DRHB"), b[4:]...)
		if p, err := Decode(wireTestKey, relabelled); err == nil {
			t.Errorf("Decode of a relabelled group frame: %+v", p)
		}
	}
}

func TestGroupDecodeRefuses(t *testing.T) {
	good := groupMustEncode(t, groupTestMessage())
	remac := func(edit func(b []byte) []byte) []byte {
		b := edit(slices.Clone(good[:len(good)-wireMACSize]))
		return append(b, wireMAC(wireTestKey, b)...)
	}
	nameEnd := groupOffName + 3
	for name, c := range map[string]struct {
		b    []byte
		want error
	}{
		"empty":         {nil, ErrMalformed},
		"short":         {good[:MinGroupFrameSize-1], ErrMalformed},
		"magic":         {append([]byte("DRGQ"), good[4:]...), ErrMalformed},
		"version":       {remac(func(b []byte) []byte { b[groupOffVersion] = 2; return b }), ErrMalformed},
		"bad MAC":       {append(slices.Clone(good[:len(good)-1]), good[len(good)-1]^1), ErrBadMAC},
		"other key":     {func() []byte { b, _ := EncodeGroup([]byte("another key of 16+ bytes"), groupTestMessage()); return b }(), ErrBadMAC},
		"flags":         {remac(func(b []byte) []byte { b[groupOffFlags] |= 0x80; return b }), ErrMalformed},
		"interval 0":    {remac(func(b []byte) []byte { clear(b[groupOffInterval:groupOffBoot]); return b }), ErrMalformed},
		"name too long": {remac(func(b []byte) []byte { b[groupOffNameLen] = 255; return b }), ErrMalformed},
		"name empty":    {remac(func(b []byte) []byte { b[groupOffNameLen] = 0; return b }), ErrMalformed},
		"v4 count big":  {remac(func(b []byte) []byte { b[nameEnd], b[nameEnd+1] = 0xff, 0xff; return b }), ErrMalformed},
		"v4 count +1":   {remac(func(b []byte) []byte { b[nameEnd+1]++; return b }), ErrMalformed},
		"v4 count -1":   {remac(func(b []byte) []byte { b[nameEnd+1]--; return b }), ErrMalformed},
		"unsorted": {remac(func(b []byte) []byte {
			b[nameEnd+5], b[nameEnd+9] = 20, 10 // 192.0.2.20 before 192.0.2.10
			return b
		}), ErrMalformed},
		"duplicate": {remac(func(b []byte) []byte { b[nameEnd+9] = 10; return b }), ErrMalformed},
		"VIP 0.0.0.0": {remac(func(b []byte) []byte {
			copy(b[nameEnd+2:], []byte{0, 0, 0, 0})
			return b
		}), ErrMalformed},
		"trailing": {remac(func(b []byte) []byte { return append(b, 0) }), ErrMalformed},
		"too long": {append(slices.Clone(good), make([]byte, MaxGroupFrameSize)...), ErrMalformed},
	} {
		m, err := DecodeGroup(wireTestKey, c.b)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: DecodeGroup = %+v, %v; want %v", name, m, err, c.want)
		}
	}
	if _, err := DecodeGroup(nil, good); !errors.Is(err, ErrBadMAC) {
		t.Errorf("no key: %v, want ErrBadMAC", err)
	}
	// The count is bounded before it is trusted: MaxGroupPrefixes+1
	// IPv4 VIPs, well within the frame size, are refused.
	m := groupTestMessage()
	m.Announced = nil
	b := groupMustEncode(t, m)
	body := slices.Clone(b[:groupOffName+3])
	body = binary.BigEndian.AppendUint16(body, MaxGroupPrefixes+1)
	for _, p := range groupTestPrefixes(MaxGroupPrefixes+1, false) {
		a := p.Addr().As4()
		body = append(body, a[:]...)
	}
	body = append(body, 0, 0)
	if _, err := DecodeGroup(wireTestKey, append(body, wireMAC(wireTestKey, body)...)); !errors.Is(err, ErrMalformed) {
		t.Errorf("%d VIPs: %v, want ErrMalformed", MaxGroupPrefixes+1, err)
	}
}

func TestReplayGuardCheckGroup(t *testing.T) {
	var g ReplayGuard
	m := groupTestMessage()
	now := m.Time
	if err := g.CheckGroup(m, now); err != nil {
		t.Fatalf("first: %v", err)
	}
	if err := g.CheckGroup(m, now); !errors.Is(err, ErrReplay) {
		t.Fatalf("again: %v, want ErrReplay", err)
	}
	m.Seq++
	if err := g.CheckGroup(m, now); err != nil {
		t.Fatalf("next: %v", err)
	}
	m.Seq++
	if err := g.CheckGroup(m, now.Add(time.Hour)); !errors.Is(err, ErrClockSkew) {
		t.Fatalf("an hour later: %v, want ErrClockSkew", err)
	}
}

func FuzzDecodeGroup(f *testing.F) {
	for _, edit := range []func(*GroupMessage){
		func(*GroupMessage) {},
		func(m *GroupMessage) { m.Announced = nil },
		func(m *GroupMessage) { m.Leaving, m.Truncated = true, true },
		func(m *GroupMessage) { m.Announced = groupTestPrefixes(20, true) },
		func(m *GroupMessage) { m.Node, m.Time = "b", time.Unix(0, 0) },
	} {
		m := groupTestMessage()
		edit(&m)
		f.Add(groupMustEncode(f, m))
	}
	f.Add(wireMustEncode(f, wireTestMessage()))
	f.Fuzz(func(t *testing.T, b []byte) {
		check := func(b []byte) {
			m, err := DecodeGroup(wireTestKey, b)
			if err != nil {
				if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrBadMAC) {
					t.Fatalf("DecodeGroup error %v wraps neither ErrMalformed nor ErrBadMAC", err)
				}
				return
			}
			again, err := EncodeGroup(wireTestKey, m)
			if err != nil {
				t.Fatalf("decoded %+v does not encode: %v", m, err)
			}
			if !bytes.Equal(again, b) {
				t.Fatalf("decoded %+v re-encodes differently:\n got %x\nwant %x", m, again, b)
			}
			// Never both: a frame one decoder takes, the other refuses.
			if _, err := Decode(wireTestKey, b); err == nil {
				t.Fatalf("a frame both Decode and DecodeGroup accept: %x", b)
			}
		}
		check(b)
		if len(b) >= wireMACSize {
			check(wireRemac(wireTestKey, append([]byte(nil), b...)))
		}
	})
}
