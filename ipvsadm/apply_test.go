package ipvsadm

import (
	"bytes"
	"errors"
	"strings"
	"syscall"
	"testing"
)

func saveOf(t *testing.T, k *fakeKernel) string {
	t.Helper()
	tab, err := Read(k)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := WriteSave(&b, tab); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// ipvsadm -R reports a line the kernel refuses, with libipvs's message,
// and goes on with the next.
func TestApplyGoesOnAfterKernelErrors(t *testing.T) {
	k := newFakeKernel()
	rules, err := ParseRules(strings.NewReader(
		"-A -t 1.1.1.1:80\n" +
			"-A -t 1.1.1.1:80 -s rr\n" + // exists
			"-a -t 9.9.9.9:80 -r 2.2.2.2\n" + // no such service
			"-a -t 1.1.1.1:80 -r 2.2.2.2 -m\n" +
			"-e -t 1.1.1.1:80 -r 2.2.2.3 -m\n" + // no such destination
			"-d -t 1.1.1.1:80 -r 2.2.2.3\n" +
			"-D -t 1.1.1.9:80\n" +
			"-A -u 1.1.1.1:53 -s rr\n"))
	if err != nil {
		t.Fatal(err)
	}
	err = Apply(k, rules)
	want := "line 2: add service -t 1.1.1.1:80: Service already exists: netlink receive: file exists\n" +
		"line 3: add real server 2.2.2.2:80 to -t 9.9.9.9:80: Service not defined: netlink receive: no such process\n" +
		"line 5: edit real server 2.2.2.3:80 of -t 1.1.1.1:80: No such destination: netlink receive: no such file or directory\n" +
		"line 6: delete real server 2.2.2.3:80 of -t 1.1.1.1:80: No such destination: netlink receive: no such file or directory\n" +
		"line 7: delete service -t 1.1.1.9:80: No such service: netlink receive: no such process"
	if err == nil || err.Error() != want {
		t.Fatalf("got\n%v\nwant\n%s", err, want)
	}
	if !errors.Is(err, syscall.EEXIST) {
		t.Errorf("the kernel's errno is not wrapped")
	}
	if got, want := saveOf(t, k), "-A -t 1.1.1.1:80 -s wlc\n-a -t 1.1.1.1:80 -r 2.2.2.2:80 -m -w 1\n-A -u 1.1.1.1:53 -s rr\n"; got != want {
		t.Errorf("table:\n%s", textDiff(want, got))
	}
}

func TestApplyFlushEditSet(t *testing.T) {
	k := newFakeKernel()
	err := Restore(k, strings.NewReader(
		"-A -t 1.1.1.1:80 -s rr\n-a -t 1.1.1.1:80 -r 2.2.2.2 -m\n-A -f 1 -s rr\n"+
			"-C\n"+
			"-A -t 1.1.1.2:80 -s rr\n-E -t 1.1.1.2:80 -p 30\n"+
			"-a -t 1.1.1.2:80 -r 2.2.2.2 -m -w 3\n-e -t 1.1.1.2:80 -r 2.2.2.2 -m -w 5\n"+
			"--set 900 120 300\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := saveOf(t, k), "-A -t 1.1.1.2:80 -s wlc -p 30\n-a -t 1.1.1.2:80 -r 2.2.2.2:80 -m -w 5\n"; got != want {
		t.Errorf("table:\n%s", textDiff(want, got))
	}
	if k.config.TCPTimeout != 900 || k.config.TCPFinTimeout != 120 || k.config.UDPTimeout != 300 {
		t.Errorf("timeouts %+v", k.config)
	}
	// An empty table flushes to nothing, without an error.
	if err := Restore(newFakeKernel(), strings.NewReader("-C\n")); err != nil {
		t.Errorf("flush of an empty table: %v", err)
	}
}

// Restore runs what ipvsadm -R would: lines up to the first error
// ipvsadm stops on, but for the lines it skips; the errors come in line
// order.
func TestRestoreStopsWhereIpvsadmStops(t *testing.T) {
	k := newFakeKernel()
	err := Restore(k, strings.NewReader(
		"-A -t 1.1.1.1:80\n"+
			"-A -t 1.1.1.2:80 --bogus\n"+ // skipped
			"-A -t 1.1.1.1:80\n"+ // kernel: exists
			"-A -t 1.1.1.3:80 -Z\n"+ // ipvsadm stops here
			"-A -t 1.1.1.4:80\n"))
	want := "line 2: --bogus: unknown option\n" +
		"line 3: add service -t 1.1.1.1:80: Service already exists: netlink receive: file exists\n" +
		"line 4: -Z: not an option here"
	if err == nil || err.Error() != want {
		t.Fatalf("got\n%v\nwant\n%s", err, want)
	}
	if got, want := saveOf(t, k), "-A -t 1.1.1.1:80 -s wlc\n"; got != want {
		t.Errorf("table:\n%s", textDiff(want, got))
	}
}

// What cloudflare/ipvs cannot do is refused line by line.
func TestApplyUnsupported(t *testing.T) {
	k := newFakeKernel()
	err := Restore(k, strings.NewReader("-A -t 1.1.1.1:80 --pe sip -p\n-Z\n-A -t 1.1.1.2:80\n"))
	want := "line 1: --pe: persistence engine \"sip\": not supported by this IPVS client\n" +
		"line 2: zeroing counters (-Z) is not supported by this IPVS client"
	if err == nil || err.Error() != want {
		t.Fatalf("got\n%v\nwant\n%s", err, want)
	}
	if got := saveOf(t, k); got != "-A -t 1.1.1.2:80 -s wlc\n" {
		t.Errorf("table %q", got)
	}
}

func TestKernelMessages(t *testing.T) {
	k := newFakeKernel()
	k.failOn = map[string]syscall.Errno{"add -t 1.1.1.1:80": syscall.EPERM, "set 1 2 3": syscall.EINVAL}
	err := Restore(k, strings.NewReader("-A -t 1.1.1.1:80\n--set 1 2 3\n"))
	want := "line 1: add service -t 1.1.1.1:80: Permission denied (you must be root): netlink receive: operation not permitted\n" +
		"line 2: set timeouts: Invalid operation.  Possibly wrong module version, address not unicast, ...: netlink receive: invalid argument"
	if err == nil || err.Error() != want {
		t.Fatalf("got\n%v\nwant\n%s", err, want)
	}
}
