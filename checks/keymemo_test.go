package checks

import (
	"net/netip"
	"testing"

	"github.com/directorlb/director/config"
)

// TestKeyMemoSameAsKey: Set's memo over a run of specs gives each spec
// the key it would have alone, whatever changes between two specs: the
// target only (the memo's case), a field, or a slice's content.
func TestKeyMemoSameAsKey(t *testing.T) {
	base := ProbeSpec{Type: config.CheckExec, Target: netip.MustParseAddrPort("10.0.0.1:80"),
		Command: []string{"/bin/check", "a"}, Rise: 2, Fall: 3}
	other := func(f func(p *ProbeSpec)) ProbeSpec {
		p := base
		p.Command = append([]string(nil), base.Command...)
		f(&p)
		return p
	}
	specs := []ProbeSpec{
		base,
		other(func(p *ProbeSpec) { p.Target = netip.MustParseAddrPort("10.0.0.2:80") }),
		other(func(p *ProbeSpec) { p.Command[1] = "b" }), // same length, other content
		other(func(p *ProbeSpec) { p.Command[1] = "b"; p.Target = netip.MustParseAddrPort("10.0.0.2:80") }),
		other(func(p *ProbeSpec) { p.Rise = 5 }),
		other(func(p *ProbeSpec) { p.HTTP.ExpectStatus = []config.StatusRange{{Min: 200, Max: 299}} }),
		base,
	}
	var m keyMemo
	seen := map[string]int{}
	for i, p := range specs {
		got, want := m.key(p), p.Key()
		if got != want {
			t.Fatalf("spec %d: memo key %s, alone %s", i, got, want)
		}
		if j, dup := seen[got]; dup && !(i == 6 && j == 0) {
			t.Errorf("specs %d and %d differ but share key %s", j, i, got)
		}
		seen[got] = i
	}
}
