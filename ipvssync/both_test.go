package ipvssync

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"syscall"
	"testing"
)

// fakeKernelDaemons keeps daemons the way start_sync_thread does: one per
// state, EEXIST for a second, defaults filled in, ESRCH-free stop.
type fakeKernelDaemons struct {
	running  map[SyncState]SyncDaemon
	calls    []string
	startErr map[SyncState]error
	listErr  error
}

func newFakeKernelDaemons(ds ...SyncDaemon) *fakeKernelDaemons {
	f := &fakeKernelDaemons{running: map[SyncState]SyncDaemon{}}
	for _, d := range ds {
		f.running[d.State] = d
	}
	return f
}

func (f *fakeKernelDaemons) Start(d SyncDaemon) error {
	f.calls = append(f.calls, fmt.Sprintf("start %s %s %d", d.State, d.Interface, d.SyncID))
	if err := f.startErr[d.State]; err != nil {
		return err
	}
	if _, ok := f.running[d.State]; ok {
		return syscall.EEXIST
	}
	if !d.Group.IsValid() {
		d.Group = syncDefaultGroup
	}
	if d.Port == 0 {
		d.Port = syncDefaultPort
	}
	if d.TTL == 0 {
		d.TTL = syncDefaultTTL
	}
	d.MaxLen = 1472
	f.running[d.State] = d
	return nil
}

func (f *fakeKernelDaemons) Stop(s SyncState) error {
	f.calls = append(f.calls, fmt.Sprintf("stop %s", s))
	delete(f.running, s)
	return nil
}

func (f *fakeKernelDaemons) Daemons() ([]SyncDaemon, error) {
	if f.listErr != nil {
		return nil, f.listErr
	}
	var ds []SyncDaemon
	for _, d := range f.running {
		ds = append(ds, d)
	}
	return ds, nil
}

func backupOnlyIs(v bool) func() (bool, error) { return func() (bool, error) { return v, nil } }

// runsBoth checks that exactly master and backup run on iface with id,
// on the kernel's default group and port.
func runsBoth(t *testing.T, f *fakeKernelDaemons, iface string, id uint32) {
	t.Helper()
	if len(f.running) != 2 {
		t.Fatalf("running %+v, want a master and a backup", f.running)
	}
	for _, s := range []SyncState{SyncMaster, SyncBackup} {
		d, ok := f.running[s]
		if !ok || d.Interface != iface || d.SyncID != id || d.Group != syncDefaultGroup || d.Port != syncDefaultPort || d.TTL != 1 {
			t.Errorf("%s is %+v (running %v), want it on %s, syncid %d, 224.0.0.81:8848 ttl 1", s, d, ok, iface, id)
		}
	}
}

func TestStartBothFresh(t *testing.T) {
	f := newFakeKernelDaemons()
	if err := startBoth(f, backupOnlyIs(false), "eth1", 20, nil); err != nil {
		t.Fatal(err)
	}
	runsBoth(t, f, "eth1", 20)
	if want := []string{"start backup eth1 20", "start master eth1 20"}; !slices.Equal(f.calls, want) {
		t.Fatalf("calls %q, want %q: the backup listens before the master speaks", f.calls, want)
	}
}

func TestStartBothAdopts(t *testing.T) {
	f := newFakeKernelDaemons()
	if err := startBoth(f, backupOnlyIs(false), "eth1", 20, nil); err != nil {
		t.Fatal(err)
	}
	before := f.running
	f.calls = nil
	// A restart of directord, and what a kernel without group, port and
	// TTL in its answers reports.
	if err := startBoth(f, backupOnlyIs(false), "eth1", 20, nil); err != nil {
		t.Fatal(err)
	}
	old := newFakeKernelDaemons(SyncDaemon{State: SyncMaster, Interface: "eth1", SyncID: 20}, SyncDaemon{State: SyncBackup, Interface: "eth1", SyncID: 20})
	if err := startBoth(old, backupOnlyIs(false), "eth1", 20, nil); err != nil {
		t.Fatal(err)
	}
	if len(f.calls) != 0 || len(old.calls) != 0 {
		t.Fatalf("adopting running daemons made calls %q and %q, want none", f.calls, old.calls)
	}
	runsBoth(t, f, "eth1", 20)
	if f.running[SyncMaster] != before[SyncMaster] {
		t.Fatal("the adopted master changed")
	}
}

func TestStartBothRestartsOtherConfig(t *testing.T) {
	for name, d := range map[string]SyncDaemon{
		"sync id":   {Interface: "eth1", SyncID: 21},
		"interface": {Interface: "eth2", SyncID: 20},
		"group":     {Interface: "eth1", SyncID: 20, Group: netip.MustParseAddr("239.1.1.1"), Port: 8848, TTL: 1},
		"port":      {Interface: "eth1", SyncID: 20, Group: syncDefaultGroup, Port: 9000, TTL: 1},
		"ttl":       {Interface: "eth1", SyncID: 20, Group: syncDefaultGroup, Port: 8848, TTL: 3},
	} {
		t.Run(name, func(t *testing.T) {
			m, b := d, d
			m.State, b.State = SyncMaster, SyncBackup
			// Only the master differs: the backup is adopted.
			f := newFakeKernelDaemons(m, SyncDaemon{State: SyncBackup, Interface: "eth1", SyncID: 20, Group: syncDefaultGroup, Port: 8848, TTL: 1})
			if err := startBoth(f, backupOnlyIs(false), "eth1", 20, nil); err != nil {
				t.Fatal(err)
			}
			runsBoth(t, f, "eth1", 20)
			if want := []string{"stop master", "start master eth1 20"}; !slices.Equal(f.calls, want) {
				t.Fatalf("calls %q, want %q", f.calls, want)
			}
			// Both differ.
			f = newFakeKernelDaemons(m, b)
			if err := startBoth(f, backupOnlyIs(false), "eth1", 20, nil); err != nil {
				t.Fatal(err)
			}
			runsBoth(t, f, "eth1", 20)
		})
	}
}

func TestStartBothBackupOnly(t *testing.T) {
	running := SyncDaemon{State: SyncBackup, Interface: "eth1", SyncID: 20}
	f := newFakeKernelDaemons(running)
	err := startBoth(f, backupOnlyIs(true), "eth1", 20, nil)
	if !errors.Is(err, ErrBackupOnly) {
		t.Fatalf("with backup_only set: %v, want ErrBackupOnly", err)
	}
	if _, ok := f.running[SyncBackup]; ok {
		t.Fatal("a backup daemon still runs with backup_only set: this director forwards nothing")
	}
	if d, ok := f.running[SyncMaster]; !ok || d.SyncID != 20 {
		t.Fatalf("master %+v (running %v), want it started: sending is harmless", d, ok)
	}
	t.Logf("backup_only: %v", err)
}

func TestStartBothErrors(t *testing.T) {
	f := newFakeKernelDaemons(SyncDaemon{State: SyncMaster, Interface: "eth1", SyncID: 21})
	if err := startBoth(f, backupOnlyIs(false), "an-interface-name-too-long", 20, nil); err == nil || len(f.calls) != 0 {
		t.Fatalf("bad interface: %v after calls %q, want an error and nothing stopped", err, f.calls)
	}

	f = newFakeKernelDaemons()
	f.listErr = syscall.EPERM
	if err := startBoth(f, backupOnlyIs(false), "eth1", 20, nil); !errors.Is(err, syscall.EPERM) || len(f.calls) != 0 {
		t.Fatalf("list fails: %v after calls %q, want EPERM and nothing done", err, f.calls)
	}

	f = newFakeKernelDaemons()
	sysctlErr := errors.New("no such file")
	if err := startBoth(f, func() (bool, error) { return false, sysctlErr }, "eth1", 20, nil); !errors.Is(err, sysctlErr) || len(f.calls) != 0 {
		t.Fatalf("sysctl unreadable: %v after calls %q, want its error and nothing done", err, f.calls)
	}

	// One daemon failing does not keep the other from starting.
	f = newFakeKernelDaemons()
	f.startErr = map[SyncState]error{SyncBackup: syscall.ENODEV}
	if err := startBoth(f, backupOnlyIs(false), "eth1", 20, nil); !errors.Is(err, syscall.ENODEV) {
		t.Fatalf("backup fails: %v, want ENODEV", err)
	}
	if _, ok := f.running[SyncMaster]; !ok {
		t.Fatal("the master was not started after the backup failed")
	}
}

func TestStopBoth(t *testing.T) {
	f := newFakeKernelDaemons()
	if err := startBoth(f, backupOnlyIs(false), "eth1", 20, nil); err != nil {
		t.Fatal(err)
	}
	if err := stopBoth(f, nil); err != nil {
		t.Fatal(err)
	}
	if len(f.running) != 0 {
		t.Fatalf("still running: %+v", f.running)
	}
}

func TestParseBackupOnly(t *testing.T) {
	for in, want := range map[string]bool{"0\n": false, "1\n": true, "2": true, "-1": true} {
		if got, err := parseBackupOnly(in); err != nil || got != want {
			t.Errorf("parseBackupOnly(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "\n", "yes"} {
		if _, err := parseBackupOnly(in); err == nil {
			t.Errorf("parseBackupOnly(%q) gave no error", in)
		}
	}
}
