package heartbeat

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

func drainTestRecords(n int) []DrainRecord {
	var recs []DrainRecord
	for i := range n {
		a := netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)})
		if i%3 == 2 {
			a = netip.MustParseAddr("2001:db8::11").Next()
		}
		recs = append(recs, DrainRecord{Service: "web-" + strings.Repeat("x", i%40), Server: netip.AddrPortFrom(a, uint16(80+i)),
			Drained: i%2 == 0, At: time.Unix(1700000000, int64(i))})
	}
	return recs
}

func TestDrainsRoundTrip(t *testing.T) {
	recs := drainTestRecords(200)
	parts := SplitDrains(recs)
	if len(parts) < 2 {
		t.Fatalf("200 records in %d message(s); want them split", len(parts))
	}
	var got []DrainRecord
	for _, p := range parts {
		m := wireTestMessage()
		m.Kind, m.Drains, m.DrainDigest = KindDrains, p, DrainDigest(recs)
		b := wireMustEncode(t, m)
		if len(b) > MaxFrameSize {
			t.Fatalf("a frame of %d bytes, over %d", len(b), MaxFrameSize)
		}
		back, err := Decode(wireTestKey, b)
		if err != nil {
			t.Fatal(err)
		}
		if !wireSameMessage(back, m) {
			t.Fatalf("decoded %+v, want %+v", back, m)
		}
		got = append(got, back.Drains...)
	}
	if len(got) != len(recs) {
		t.Fatalf("%d records back, want %d", len(got), len(recs))
	}
	for i := range recs {
		if got[i].Service != recs[i].Service || got[i].Server != recs[i].Server || got[i].Drained != recs[i].Drained || !got[i].At.Equal(recs[i].At) {
			t.Fatalf("record %d: %+v, want %+v", i, got[i], recs[i])
		}
	}
	shuffled := slices.Clone(recs)
	slices.Reverse(shuffled)
	if DrainDigest(shuffled) != DrainDigest(recs) {
		t.Error("the digest depends on the order of the records")
	}
	recs[7].Drained = !recs[7].Drained
	if DrainDigest(shuffled) == DrainDigest(recs) {
		t.Error("the digest did not change with a record")
	}
}

func TestDrainsMalformed(t *testing.T) {
	one := []DrainRecord{{Service: "web", Server: netip.MustParseAddrPort("10.1.0.11:80"), Drained: true, At: time.Unix(1, 0)}}
	for _, tt := range []struct {
		name string
		edit func([]byte) []byte
	}{
		{"count past the end", func(p []byte) []byte { p[0] = 2; return p }},
		{"bytes after the last", func(p []byte) []byte { return append(p, 0) }},
		{"family 5", func(p []byte) []byte { p[1+1+3] = 5; return p }},
		{"drained 2", func(p []byte) []byte { p[len(p)-9] = 2; return p }},
		{"service with a capital", func(p []byte) []byte { p[2] = 'W'; return p }},
		{"service with an escape", func(p []byte) []byte { p[2] = 0x1b; return p }},
		{"empty service", func(p []byte) []byte { p[1] = 0; return p }},
		{"empty payload", func(p []byte) []byte { return p[:0] }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := appendDrains(nil, one)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := parseDrains(tt.edit(p)); !errors.Is(err, errDrainPayload) {
				t.Fatalf("parse: %v, want a refusal", err)
			}
		})
	}
	// A payload on a heartbeat is refused after the MAC, as malformed.
	m := wireTestMessage()
	m.Kind, m.Drains = KindDrains, one
	b := wireMustEncode(t, m)
	b[wireOffKind] = byte(KindHeartbeat)
	if _, err := Decode(wireTestKey, wireRemac(wireTestKey, b)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("a heartbeat with a payload: %v, want malformed", err)
	}
	m.Kind = KindHeartbeat
	if _, err := Encode(wireTestKey, m); err == nil {
		t.Fatal("encoded drain records on a heartbeat")
	}
}
