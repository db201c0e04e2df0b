package realserver

import (
	"bytes"
	"flag"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/directorlb/director/manual"
)

// cli runs the command against k and returns its exit status and output.
func cli(k Kernel, args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = Run(args, &o, &e, func() (Kernel, func(), error) { return k, func() {}, nil })
	return code, o.String(), e.String()
}

func TestCLIUsage(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "rs.yaml")
	os.WriteFile(cfg, []byte("mode: dr\nvips: [192.0.2.10]\n"), 0o644)
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("mode: dr\nvips: [192.0.2.10, 192.0.2.300]\n"), 0o644)
	state := "--state=" + filepath.Join(dir, "s.json")
	for _, tc := range []struct {
		args []string
		code int
		err  string
	}{
		{nil, 2, "usage: realserver up|down|status"},
		{[]string{"start"}, 2, `unknown command "start"`},
		{[]string{"up", state}, 2, "give --mode and --vip, or -config FILE"},
		{[]string{"up", "--mode", "dr", state}, 2, "give both --mode (dr or tun) and --vip"},
		{[]string{"up", "--mode", "nat", "--vip", "192.0.2.10", state}, 2, `mode must be dr or tun, got "nat"`},
		{[]string{"up", "--mode", "dr", "--vip", "192.0.2.10,foo", state}, 2, `"foo" is not an IPv4 or IPv6 address`},
		{[]string{"up", "--mode", "dr", "--vip", "127.0.0.2", state}, 2, "VIP 127.0.0.2: must not be a loopback address"},
		{[]string{"up", "--mode", "dr", "--vip", "192.0.2.10,192.0.2.10", state}, 2, "VIP 192.0.2.10 is given twice"},
		{[]string{"up", "--mode", "dr", "--vip", "192.0.2.10", "--state", "run/s.json"}, 2, "--state must be an absolute path"},
		{[]string{"up", "--mode", "dr", "--vip", "192.0.2.10", "extra", state}, 2, `unexpected argument "extra"`},
		{[]string{"up", "-config", cfg, "--mode", "tun", state}, 2, "--mode and -config do not go together"},
		{[]string{"up", "-config", bad, state}, 2, bad + ":2:20: vips[1]: must be an IPv4 or IPv6 address"},
		{[]string{"down", "--vip", "192.0.2.10", state}, 2, "down takes no --mode, --vip or --interface"},
		{[]string{"status", state}, 2, "nothing to check against: no state at"},
	} {
		code, _, stderr := cli(server(), tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.err) {
			t.Errorf("realserver %s: exit %d, stderr %q; want %d and %q", strings.Join(tc.args, " "), code, stderr, tc.code, tc.err)
		}
	}
}

// TestCLIRoundTrip: up from a config file, status from the state it left,
// down, and status with flags after: the exit statuses an admin scripts
// against.
func TestCLIRoundTrip(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "rs.yaml")
	state := filepath.Join(dir, "state", "rs.json")
	os.WriteFile(cfg, []byte("mode: tun\nvips: 192.0.2.10\ninterface: eth0\nstate: "+state+"\n"), 0o644)
	k := server()
	before := k.snapshot()

	if code, out, errs := cli(k, "up", "-config", cfg); code != 0 || !strings.Contains(out, "added 192.0.2.10/32 to tunl0") {
		t.Fatalf("up: exit %d\n%s%s", code, out, errs)
	}
	if code, out, _ := cli(k, "status", "--state", state); code != 0 || !strings.Contains(out, "tun for 192.0.2.10, facing the director on eth0\nok ") {
		t.Fatalf("status after up: exit %d\n%s", code, out)
	}
	if code, out, errs := cli(k, "down", "-config", cfg); code != 0 {
		t.Fatalf("down: exit %d\n%s%s", code, out, errs)
	}
	if k.snapshot() != before {
		t.Fatal("down did not restore the start")
	}
	code, out, _ := cli(k, "status", "--mode", "tun", "--vip", "192.0.2.10", "--state", state)
	if code != 1 || !strings.Contains(out, "problem  VIP 192.0.2.10 is missing from tunl0") {
		t.Fatalf("status after down: exit %d\n%s", code, out)
	}
}

// TestFlagsAreTheManual: the commands' flags are manual.Realserver's,
// with the same defaults and help, so that -h and realserver(8) tell the
// truth; and -h prints that page's usage.
func TestFlagsAreTheManual(t *testing.T) {
	got, want := map[string]manual.Flag{}, map[string]manual.Flag{}
	newFlags("up", &cliFlags{}).VisitAll(func(f *flag.Flag) {
		got[f.Name] = manual.Flag{Name: f.Name, Default: f.DefValue, Help: f.Usage}
	})
	page := manual.Realserver()
	for _, f := range page.Flags {
		want[f.Name] = manual.Flag{Name: f.Name, Default: f.Default, Help: f.Help}
	}
	if !maps.Equal(got, want) {
		t.Errorf("realserver's flag set and manual.Realserver differ:\nflag set %+v\nmanual   %+v", got, want)
	}
	if manual.DefaultRealserverState != DefaultState {
		t.Errorf("the manual says the state file is %s, realserver uses %s", manual.DefaultRealserverState, DefaultState)
	}
	for _, args := range [][]string{{"-h"}, {"help"}, {"up", "-h"}, {"status", "--help"}} {
		code, stdout, stderr := cli(server(), args...)
		if code != 0 || stdout != page.Usage() || stderr != "" {
			t.Errorf("realserver %q: exit %d, stderr %q, stdout\n%s\nwant the manual's usage", args, code, stderr, stdout)
		}
	}
	var names []string
	for _, c := range page.Commands() {
		names = append(names, c.Name)
	}
	if strings.Join(names, " ") != "up down status" {
		t.Errorf("manual.Realserver's commands: %q, realserver's: up down status", names)
	}
}
