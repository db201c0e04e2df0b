package realserver

import (
	"bytes"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// server is a real server's namespace as a fake: eth0 towards the
// director, with the default route.
func server() *fakeKernel {
	k := newFake()
	k.addLink(Link{Name: "eth0", Up: true, Kind: "veth"})
	k.addrs = append(k.addrs, Addr{"eth0", netip.MustParsePrefix("10.0.0.11/24")}, Addr{"lo", netip.MustParsePrefix("127.0.0.1/8")})
	k.defRoute = "eth0"
	return k
}

func tempStore(t *testing.T) Store {
	return Store{Path: filepath.Join(t.TempDir(), "run", "state.json")}
}

func addrs(s ...string) []netip.Addr {
	out := make([]netip.Addr, len(s))
	for i, a := range s {
		out[i] = netip.MustParseAddr(a)
	}
	return out
}

func mustUp(t *testing.T, k Kernel, store Store, spec Spec) string {
	t.Helper()
	var out bytes.Buffer
	if err := Up(k, store, spec, &out); err != nil {
		t.Fatalf("up %+v: %v\n%s", spec, err, out.String())
	}
	return out.String()
}

func mustDown(t *testing.T, k Kernel, store Store) string {
	t.Helper()
	var out bytes.Buffer
	if err := Down(k, store, &out); err != nil {
		t.Fatalf("down: %v\n%s", err, out.String())
	}
	return out.String()
}

func noState(t *testing.T, store Store) {
	t.Helper()
	if _, err := os.Stat(store.Path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("state file %s: %v, want none", store.Path, err)
	}
}

// TestUpDownDR: up sets exactly what DR needs, status agrees, and down
// puts back the unusual values the host started with.
func TestUpDownDR(t *testing.T) {
	k := server()
	k.sysctls[conf("all", "arp_ignore")] = "2"
	k.sysctls[conf("eth0", "arp_announce")] = "1"
	before := k.snapshot()
	store := tempStore(t)
	spec := Spec{Mode: DR, VIPs: addrs("192.0.2.10", "2001:db8::10")}

	out := mustUp(t, k, store, spec)
	for _, want := range []string{
		"added 192.0.2.10/32 to lo", "added 2001:db8::10/128 to lo",
		"set net.ipv4.conf.all.arp_ignore = 1 (was 2)", "set net.ipv4.conf.all.arp_announce = 2 (was 0)",
		"set net.ipv4.conf.eth0.arp_ignore = 1 (was 0)", "set net.ipv4.conf.eth0.arp_announce = 2 (was 1)",
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("up said\n%s\nwant a line %q", out, want)
		}
	}
	if rep, err := Status(k, spec); err != nil || !rep.Ready() {
		t.Fatalf("status after up: %+v, %v", rep.Findings, err)
	}

	mustDown(t, k, store)
	if got := k.snapshot(); got != before {
		t.Fatalf("down left\n%s\nwant\n%s", got, before)
	}
	noState(t, store)
}

// TestUpDownTUN: tun makes tunl0 and ip6tnl0 (here nobody had), brings
// them up with the VIPs, opens rp_filter; down deletes what it made.
func TestUpDownTUN(t *testing.T) {
	k := server()
	k.sysctls[conf("all", "rp_filter")] = "1"
	k.sysctls[conf("default", "rp_filter")] = "1"
	before := k.snapshot()
	store := tempStore(t)
	spec := Spec{Mode: TUN, VIPs: addrs("192.0.2.10", "2001:db8::10")}

	mustUp(t, k, store, spec)
	for key, want := range map[Sysctl]string{
		conf("tunl0", "rp_filter"): "0", conf("all", "rp_filter"): "2",
		conf("all", "arp_ignore"): "1", conf("eth0", "arp_announce"): "2",
	} {
		if got := k.sysctls[key]; got != want {
			t.Errorf("%s = %s, want %s", key, got, want)
		}
	}
	for _, want := range []Addr{{"tunl0", netip.MustParsePrefix("192.0.2.10/32")}, {"ip6tnl0", netip.MustParsePrefix("2001:db8::10/128")}} {
		if !slices.Contains(k.addrs, want) {
			t.Errorf("addresses %v lack %v", k.addrs, want)
		}
	}
	if l, _ := k.Link("tunl0"); !l.Up {
		t.Error("tunl0 is down")
	}
	if rep, err := Status(k, spec); err != nil || !rep.Ready() {
		t.Fatalf("status after up: %+v, %v", rep.Findings, err)
	}
	mustDown(t, k, store)
	if got := k.snapshot(); got != before {
		t.Fatalf("down left\n%s\nwant\n%s", got, before)
	}
}

// TestUpTwiceChangesNothing: the second up makes no change, says so, and
// does not even rewrite the state file.
func TestUpTwiceChangesNothing(t *testing.T) {
	for _, mode := range []Mode{DR, TUN} {
		t.Run(string(mode), func(t *testing.T) {
			k := server()
			store := tempStore(t)
			spec := Spec{Mode: mode, VIPs: addrs("192.0.2.10", "2001:db8::10")}
			mustUp(t, k, store, spec)
			kernel := k.snapshot()
			st1, _ := os.Stat(store.Path)
			data1, _ := os.ReadFile(store.Path)

			out := mustUp(t, k, store, spec)
			if !strings.Contains(out, "nothing changed") || strings.Count(out, "\n") != 1 {
				t.Errorf("second up said %q", out)
			}
			if k.snapshot() != kernel {
				t.Error("second up changed the kernel")
			}
			st2, _ := os.Stat(store.Path)
			data2, _ := os.ReadFile(store.Path)
			if !bytes.Equal(data1, data2) || !st1.ModTime().Equal(st2.ModTime()) {
				t.Error("second up rewrote the state file")
			}
		})
	}
}

// TestUpLeavesWhatWasAlreadyThere: a VIP the admin put on lo and values
// already right are not recorded, so down leaves them.
func TestUpLeavesWhatWasAlreadyThere(t *testing.T) {
	k := server()
	k.addrs = append(k.addrs, Addr{"lo", netip.MustParsePrefix("192.0.2.10/32")})
	k.sysctls[conf("all", "arp_announce")] = "2"
	store := tempStore(t)
	mustUp(t, k, store, Spec{Mode: DR, VIPs: addrs("192.0.2.10")})
	mustDown(t, k, store)
	if !slices.Contains(k.addrs, Addr{"lo", netip.MustParsePrefix("192.0.2.10/32")}) {
		t.Error("down removed a VIP it did not add")
	}
	if got := k.sysctls[conf("all", "arp_announce")]; got != "2" {
		t.Errorf("down changed all.arp_announce to %s, which up never set", got)
	}
}

// TestDownTouchesNothingElse: what the admin changes between up and down
// stays, except where it overwrote a value up set: down restores the
// recorded original there, as it says.
func TestDownTouchesNothingElse(t *testing.T) {
	k := server()
	store := tempStore(t)
	mustUp(t, k, store, Spec{Mode: DR, VIPs: addrs("192.0.2.10")})
	k.addrs = append(k.addrs, Addr{"lo", netip.MustParsePrefix("192.0.2.99/32")})
	k.sysctls[conf("eth0", "rp_filter")] = "2"
	k.sysctls[conf("eth0", "arp_ignore")] = "8"

	out := mustDown(t, k, store)
	if !slices.Contains(k.addrs, Addr{"lo", netip.MustParsePrefix("192.0.2.99/32")}) || k.sysctls[conf("eth0", "rp_filter")] != "2" {
		t.Error("down undid the admin's own changes")
	}
	if got := k.sysctls[conf("eth0", "arp_ignore")]; got != "0" {
		t.Errorf("eth0.arp_ignore = %s after down, want the recorded 0", got)
	}
	if !strings.Contains(out, "restored net.ipv4.conf.eth0.arp_ignore = 0 (it was changed to 8 after up)") {
		t.Errorf("down did not say it overrode the admin's value:\n%s", out)
	}
}

// TestUpAgainKeepsOriginals: after the admin resets a value up had set,
// up sets it again, and down still restores the value from before the
// first up, not the one between.
func TestUpAgainKeepsOriginals(t *testing.T) {
	k := server()
	k.sysctls[conf("all", "arp_ignore")] = "2"
	store := tempStore(t)
	spec := Spec{Mode: DR, VIPs: addrs("192.0.2.10")}
	mustUp(t, k, store, spec)
	k.sysctls[conf("all", "arp_ignore")] = "0"
	out := mustUp(t, k, store, spec)
	if !strings.Contains(out, "set net.ipv4.conf.all.arp_ignore = 1 (was 0)") {
		t.Fatalf("second up said %q", out)
	}
	mustDown(t, k, store)
	if got := k.sysctls[conf("all", "arp_ignore")]; got != "2" {
		t.Errorf("all.arp_ignore = %s after down, want the original 2", got)
	}
}

// TestUpConverges: up with fewer VIPs or another mode undoes what is no
// longer asked for, and down still restores the start.
func TestUpConverges(t *testing.T) {
	k := server()
	before := k.snapshot()
	store := tempStore(t)
	mustUp(t, k, store, Spec{Mode: DR, VIPs: addrs("192.0.2.10", "192.0.2.11")})
	out := mustUp(t, k, store, Spec{Mode: DR, VIPs: addrs("192.0.2.10")})
	if !strings.Contains(out, "removed 192.0.2.11/32 from lo (no longer asked for)") {
		t.Errorf("up with fewer VIPs said %q", out)
	}
	mustUp(t, k, store, Spec{Mode: TUN, VIPs: addrs("192.0.2.10")})
	if slices.ContainsFunc(k.addrs, func(a Addr) bool { return a.Link == "lo" && a.Prefix.Addr().String() == "192.0.2.10" }) {
		t.Error("the VIP stayed on lo after switching to tun")
	}
	mustDown(t, k, store)
	if got := k.snapshot(); got != before {
		t.Fatalf("down left\n%s\nwant\n%s", got, before)
	}
}

// TestUpFailureUndoesItself: a failure half-way leaves the kernel and the
// state file as they were, on a fresh host and on one already up.
func TestUpFailureUndoesItself(t *testing.T) {
	k := server()
	store := tempStore(t)
	before := k.snapshot()
	k.failSet[conf("eth0", "arp_announce")] = 0
	var out bytes.Buffer
	err := Up(k, store, Spec{Mode: DR, VIPs: addrs("192.0.2.10")}, &out)
	if err == nil || !strings.Contains(err.Error(), "injected failure") {
		t.Fatalf("up = %v, want the injected failure", err)
	}
	if got := k.snapshot(); got != before {
		t.Fatalf("failed up left\n%s\nwant\n%s", got, before)
	}
	noState(t, store)

	delete(k.failSet, conf("eth0", "arp_announce"))
	mustUp(t, k, store, Spec{Mode: DR, VIPs: addrs("192.0.2.10")})
	up := k.snapshot()
	saved, _ := os.ReadFile(store.Path)
	k.noTunnels = true
	if err := Up(k, store, Spec{Mode: TUN, VIPs: addrs("192.0.2.10")}, &out); err == nil || !strings.Contains(err.Error(), "is the ipip module available?") {
		t.Fatalf("tun without ipip = %v", err)
	}
	if got := k.snapshot(); got != up {
		t.Fatalf("failed up left\n%s\nwant\n%s", got, up)
	}
	if now, _ := os.ReadFile(store.Path); !bytes.Equal(now, saved) {
		t.Fatalf("failed up changed the state file:\n%s\nwas\n%s", now, saved)
	}
}

// TestNotRootChangesNothing: without the rights, up and down refuse
// before touching anything, with an error saying why.
func TestNotRootChangesNothing(t *testing.T) {
	k := server()
	store := tempStore(t)
	mustUp(t, k, store, Spec{Mode: DR, VIPs: addrs("192.0.2.10")})
	k.noAdmin = true
	up := k.snapshot()
	var out bytes.Buffer
	for name, err := range map[string]error{
		"up":   Up(k, store, Spec{Mode: DR, VIPs: addrs("192.0.2.11")}, &out),
		"down": Down(k, store, &out),
	} {
		if !errors.Is(err, ErrPermission) || !strings.Contains(err.Error(), "must run as root") {
			t.Errorf("%s without rights = %v, want ErrPermission", name, err)
		}
	}
	if k.snapshot() != up || out.Len() != 0 {
		t.Fatalf("refused commands changed things or said %q", out.String())
	}
}

// TestDownKeepsWhatItCouldNotUndo: a failed undo stays recorded; a second
// down, once the cause is gone, finishes.
func TestDownKeepsWhatItCouldNotUndo(t *testing.T) {
	k := server()
	before := k.snapshot()
	store := tempStore(t)
	mustUp(t, k, store, Spec{Mode: DR, VIPs: addrs("192.0.2.10")})
	k.failDel = true
	var out bytes.Buffer
	if err := Down(k, store, &out); err == nil {
		t.Fatal("down succeeded although removing the VIP failed")
	}
	st, err := store.Load()
	if err != nil || st == nil || len(st.Changes) != 1 || st.Changes[0].Kind != AddrAdded {
		t.Fatalf("state after a partial down: %+v, %v; want only the address", st, err)
	}
	k.failDel = false
	mustDown(t, k, store)
	if got := k.snapshot(); got != before {
		t.Fatalf("down left\n%s\nwant\n%s", got, before)
	}
}

// TestDownWithoutState: nothing to undo is not an error, so a stop after
// a failed start is clean.
func TestDownWithoutState(t *testing.T) {
	if out := mustDown(t, server(), tempStore(t)); !strings.Contains(out, "nothing to undo") {
		t.Errorf("down said %q", out)
	}
}

func TestFacingInterface(t *testing.T) {
	k := server()
	k.addLink(Link{Name: "eth1", Up: true, Kind: "veth"})
	k.addrs = append(k.addrs, Addr{"eth1", netip.MustParsePrefix("10.1.0.11/24")})
	k.defRoute = ""
	v4 := Spec{Mode: DR, VIPs: addrs("192.0.2.10")}
	if _, err := facingInterface(k, v4); !errors.Is(err, ErrSpec) || !strings.Contains(err.Error(), "(eth0, eth1); say which with --interface") {
		t.Errorf("two candidates: %v", err)
	}
	k.defRoute = "eth1"
	if got, err := facingInterface(k, v4); got != "eth1" || err != nil {
		t.Errorf("default route on eth1: %q, %v", got, err)
	}
	v4.Interface = "eth9"
	if _, err := facingInterface(k, v4); !errors.Is(err, ErrNoLink) {
		t.Errorf("a missing --interface: %v", err)
	}
	k.defRoute = ""
	k.links[k.link("eth1")].Up = false
	if got, err := facingInterface(k, Spec{Mode: DR, VIPs: addrs("192.0.2.10")}); got != "eth0" || err != nil {
		t.Errorf("one up candidate: %q, %v", got, err)
	}
	if got, err := facingInterface(k, Spec{Mode: DR, VIPs: addrs("2001:db8::10")}); got != "" || err != nil {
		t.Errorf("IPv6 only: %q, %v; want none needed", got, err)
	}
}

func TestParseStateRefusesDamage(t *testing.T) {
	for name, data := range map[string]string{
		"not json":      `{"version": 1,`,
		"other version": `{"version": 2, "mode": "dr", "vips": ["192.0.2.10"]}`,
		"no vips":       `{"version": 1, "mode": "dr", "vips": []}`,
		"foreign key":   `{"version": 1, "mode": "dr", "vips": ["192.0.2.10"], "changes": [{"kind": "sysctl", "sysctl": "kernel/panic", "old": "0", "new": "1"}]}`,
		"escape":        `{"version": 1, "mode": "dr", "vips": ["192.0.2.10"], "changes": [{"kind": "sysctl", "sysctl": "net/ipv4/conf/../../../kernel/arp_ignore", "old": "0", "new": "1"}]}`,
		"bad link":      `{"version": 1, "mode": "dr", "vips": ["192.0.2.10"], "changes": [{"kind": "link-created", "link": "a/b"}]}`,
		"unknown kind":  `{"version": 1, "mode": "dr", "vips": ["192.0.2.10"], "changes": [{"kind": "reboot"}]}`,
	} {
		if _, err := parseState("s.json", []byte(data)); !errors.Is(err, ErrDamagedState) {
			t.Errorf("%s: %v, want ErrDamagedState", name, err)
		}
	}
}

// FuzzParseState: any file is refused or read into a state whose every
// change is one the helper could have made.
func FuzzParseState(f *testing.F) {
	f.Add([]byte(`{"version": 1, "mode": "tun", "vips": ["192.0.2.10"], "interface": "eth0", "changes": [{"kind": "sysctl", "sysctl": "net/ipv4/conf/eth0/rp_filter", "old": "1", "new": "0"}, {"kind": "address", "link": "tunl0", "address": "192.0.2.10"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := parseState("fuzz.json", data)
		if err != nil {
			if !errors.Is(err, ErrDamagedState) {
				t.Fatalf("error %v is not ErrDamagedState", err)
			}
			return
		}
		for _, c := range st.Changes {
			if c.Kind == SysctlSet && (strings.Contains(string(c.Sysctl), "..") || !strings.HasPrefix(string(c.Sysctl), "net/ipv4/conf/")) {
				t.Fatalf("accepted sysctl %q", c.Sysctl)
			}
		}
	})
}
