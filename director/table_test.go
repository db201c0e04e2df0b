package director

import (
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/cloudflare/ipvs"
)

func dest(addr string, port uint16, weight uint32) ipvs.Destination {
	return ipvs.Destination{Address: netip.MustParseAddr(addr), Port: port, Weight: weight, Family: ipvs.INET, FwdMethod: ipvs.Masquerade}
}

func TestMakeDestsSortsAndKeepsTheLastOfAKey(t *testing.T) {
	ds := makeDests([]ipvs.Destination{
		dest("10.0.0.9", 80, 1), dest("10.0.0.1", 81, 1), dest("10.0.0.9", 80, 7), dest("10.0.0.1", 80, 1),
	})
	want := []DestKey{{netip.MustParseAddr("10.0.0.1"), 80}, {netip.MustParseAddr("10.0.0.1"), 81}, {netip.MustParseAddr("10.0.0.9"), 80}}
	if len(ds) != len(want) {
		t.Fatalf("%d destinations, want %d: %v", len(ds), len(want), ds)
	}
	for i, k := range want {
		if DestKeyOf(ds[i]) != k {
			t.Errorf("destination %d is %s, want %s", i, DestKeyOf(ds[i]), k)
		}
	}
	if d, ok := ds.Get(want[2]); !ok || d.Weight != 7 {
		t.Errorf("10.0.0.9:80 = %+v, %v; want the later one, weight 7", d, ok)
	}
}

func TestDestsPutAndRemoveKeepOrder(t *testing.T) {
	var ds Dests
	for _, a := range []string{"10.0.0.5", "10.0.0.2", "10.0.0.8", "10.0.0.2"} {
		ds.put(dest(a, 80, 3))
	}
	ds.remove(DestKey{netip.MustParseAddr("10.0.0.5"), 80})
	ds.remove(DestKey{netip.MustParseAddr("10.0.0.6"), 80}) // absent: nothing
	if len(ds) != 2 || ds[0].Address.String() != "10.0.0.2" || ds[1].Address.String() != "10.0.0.8" {
		t.Fatalf("after puts and removes: %v", ds)
	}
}

// TestDiffEntryMatchesAMapDiff checks the sorted walk against the obvious
// diff over maps, on random pairs of destination sets.
func TestDiffEntryMatchesAMapDiff(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	randomDests := func() Dests {
		var ds []ipvs.Destination
		for i := range 12 {
			if rng.IntN(2) == 0 {
				ds = append(ds, dest(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}).String(), 80+uint16(rng.IntN(2)), uint32(rng.IntN(3))))
			}
		}
		rng.Shuffle(len(ds), func(i, j int) { ds[i], ds[j] = ds[j], ds[i] })
		return makeDests(ds)
	}
	for round := range 2000 {
		want, have := &Entry{Dests: randomDests()}, &Entry{Dests: randomDests()}
		expect := map[DestKey]OpKind{}
		wm, hm := map[DestKey]ipvs.Destination{}, map[DestKey]ipvs.Destination{}
		for _, d := range want.Dests {
			wm[DestKeyOf(d)] = d
		}
		for _, d := range have.Dests {
			hm[DestKeyOf(d)] = d
		}
		for k, d := range wm {
			if h, ok := hm[k]; !ok {
				expect[k] = CreateDest
			} else if !sameDest(d, h) {
				expect[k] = UpdateDest
			}
		}
		for k := range hm {
			if _, ok := wm[k]; !ok {
				expect[k] = RemoveDest
			}
		}
		ops := DiffEntry(want, have)
		got := map[DestKey]OpKind{}
		for _, op := range ops {
			got[DestKeyOf(op.Dest)] = op.Kind
		}
		if len(ops) != len(expect) || len(got) != len(expect) {
			t.Fatalf("round %d: %d ops %v, want %v", round, len(ops), ops, expect)
		}
		for k, kind := range expect {
			if got[k] != kind {
				t.Fatalf("round %d: %s got %v, want %v", round, k, got[k], kind)
			}
		}
	}
}
