package ipvsadm

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files this package generates itself (not ipvsadm's)")

// The rich.* golden files are the real ipvsadm 1.31's output in the lab
// VM, for e2e/ipvsadm_compat_test.go's compatTable after its
// compatTraffic, and rich.kernel.json is the table cloudflare/ipvs read
// (ReadUnsorted, marshalled with encoding/json) from the same kernel,
// in the kernel's order: read just before and just after running all the
// ipvsadm commands at once, right after an estimator tick, and kept only
// when both reads were equal. Reading the fixture through Read and
// writing it must give ipvsadm's bytes. The fixture's dump order makes
// ipvsadm's non-transitive sort put fwmark 7 after the fwmarks it prints
// as negative numbers; TestIpvsadmCompatList checks whatever order the
// kernel dumps in.
func TestGoldenIpvsadmOutputs(t *testing.T) {
	for _, tc := range []struct {
		golden string
		o      ListOptions
		save   bool
		nosort bool
	}{
		{golden: "rich.list.txt", o: ListOptions{Numeric: true}},
		{golden: "rich.list-stats.txt", o: ListOptions{Numeric: true, Stats: true}},
		{golden: "rich.list-rate.txt", o: ListOptions{Numeric: true, Rate: true}},
		{golden: "rich.list-stats-exact.txt", o: ListOptions{Numeric: true, Stats: true, Exact: true}},
		{golden: "rich.list-rate-exact.txt", o: ListOptions{Numeric: true, Rate: true, Exact: true}},
		{golden: "rich.list-thresholds.txt", o: ListOptions{Numeric: true, Thresholds: true}},
		{golden: "rich.list-persistent-conn.txt", o: ListOptions{Numeric: true, Persistent: true}},
		{golden: "rich.list-tun-info.txt", o: ListOptions{Numeric: true, TunnelInfo: true}},
		{golden: "rich.list-nosort.txt", o: ListOptions{Numeric: true}, nosort: true},
		{golden: "rich.save.txt", save: true},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			k := loadFixture(t, "rich.kernel.json")
			read := Read
			if tc.nosort {
				read = ReadUnsorted
			}
			tab, err := read(k)
			if err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			if tc.save {
				err = WriteSave(&got, tab)
			} else {
				err = WriteList(&got, tab, tc.o, nil)
			}
			if err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(filepath.Join("testdata", tc.golden))
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != string(want) {
				t.Errorf("differs from ipvsadm's %s:\n%s", tc.golden, textDiff(string(want), got.String()))
			}
		})
	}
}

// TestGoldenJSON keeps `directorctl list --json` stable: the schema is a
// contract with scripts. Run with -update after a deliberate change.
func TestGoldenJSON(t *testing.T) {
	tab, err := Read(loadFixture(t, "rich.kernel.json"))
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	if err := WriteJSON(&got, tab); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "rich.json.golden")
	if *update {
		if err := os.WriteFile(path, got.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.String() != string(want) {
		t.Errorf("JSON differs from %s (run with -update if the change is deliberate):\n%s", path, textDiff(string(want), got.String()))
	}
}
