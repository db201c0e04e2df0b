package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

const testNonce = "5eed"

// scanLines runs vm.scan over lines joined by CRLF, as a serial console
// delivers them. It returns the state, the result, whether the boot timer
// was still running afterwards, and the exits passed to OnExit.
func scanLines(t *testing.T, lines []string) (*scanState, *Result, bool, []ExitStatus, string) {
	t.Helper()
	var out bytes.Buffer
	var exits []ExitStatus
	vm := &VM{Nonce: testNonce, Output: &out, OnExit: func(es ExitStatus) { exits = append(exits, es) }}
	res := &Result{}
	timer := time.AfterFunc(time.Hour, func() {})
	// A start in the past makes Boot measurable without waiting.
	start := time.Now().Add(-time.Minute)
	st := vm.scan(strings.NewReader(strings.Join(lines, "\r\n")+"\r\n"), res, start, timer)
	running := timer.Stop()
	return st, res, running, exits, out.String()
}

func TestVMScan(t *testing.T) {
	lines := []string{
		"SeaBIOS (version 1.16.2-debian-1.16.2-1)",
		"Booting from ROM..",
		"[    0.912345] Run /init as init process",
		Marker(testNonce, MarkReady),
		"=== RUN   TestSomething",
		"  " + Marker(testNonce, MarkExit, "0", "0", "1234"),
		"@@lab 0ther exit 1 0 5", // another boot's nonce: output
		"junk @@lab " + testNonce + " exit 9 9 9",
		Marker(testNonce, MarkExit, "1", "-1", "20"),
		Marker(testNonce, MarkExit, "not", "numbers", "x"), // malformed: dropped
		Marker(testNonce, "unknown-kind", "x"),
		"",
		"--- PASS: TestSomething (0.01s)",
		Marker(testNonce, MarkDone),
		"[    9.000000] reboot: Power down",
	}
	st, res, timerRunning, exits, out := scanLines(t, lines)

	if !st.ready || !st.done || st.initFail != "" || st.panicLine != "" {
		t.Errorf("state = %+v, want ready and done only", st)
	}
	want := []ExitStatus{{Index: 0, Status: 0, Duration: 1234 * time.Millisecond}, {Index: 1, Status: -1, Duration: 20 * time.Millisecond}}
	if !slices.Equal(res.Commands, want) {
		t.Errorf("Commands = %+v, want %+v", res.Commands, want)
	}
	if !slices.Equal(exits, want) {
		t.Errorf("OnExit saw %+v, want %+v", exits, want)
	}
	if res.Boot < time.Minute {
		t.Errorf("Boot = %v, want the time since start (at least a minute)", res.Boot)
	}
	if timerRunning {
		t.Errorf("boot timer still running after the ready line")
	}
	var wantOut []string
	for _, l := range lines {
		if _, _, ok := ParseMarker(l, testNonce); !ok {
			wantOut = append(wantOut, l)
		}
	}
	if got := strings.Split(strings.TrimSuffix(out, "\n"), "\n"); !slices.Equal(got, wantOut) {
		t.Errorf("output lines\n%q\nwant\n%q", got, wantOut)
	}
	if strings.Contains(out, "\r") {
		t.Errorf("output keeps carriage returns: %q", out)
	}
	for _, l := range strings.Split(out, "\n") {
		if _, _, ok := ParseMarker(l, testNonce); ok {
			t.Errorf("output contains the status line %q", l)
		}
	}
}

func TestVMScanWithoutReady(t *testing.T) {
	st, res, timerRunning, _, _ := scanLines(t, []string{"SeaBIOS", "[ 0.1] Linux version 6.1.0"})
	if st.ready || st.done || res.Boot != 0 || len(res.Commands) != 0 {
		t.Errorf("state %+v result %+v, want nothing seen", st, res)
	}
	if !timerRunning {
		t.Errorf("boot timer stopped without a ready line")
	}
}

func TestVMScanNoOutputWriter(t *testing.T) {
	vm := &VM{Nonce: testNonce}
	res := &Result{}
	timer := time.AfterFunc(time.Hour, func() {})
	defer timer.Stop()
	st := vm.scan(strings.NewReader(Marker(testNonce, MarkReady)+"\nx\n"+Marker(testNonce, MarkExit, "0", "0", "1")+"\n"), res, time.Now(), timer)
	if !st.ready || len(res.Commands) != 1 {
		t.Errorf("state %+v commands %+v", st, res.Commands)
	}
}

func TestVMScanLongLine(t *testing.T) {
	long := strings.Repeat("x", 200<<10)
	_, _, _, _, out := scanLines(t, []string{long, Marker(testNonce, MarkDone)})
	if strings.TrimSuffix(out, "\n") != long {
		t.Errorf("a %d-byte line came out as %d bytes", len(long), len(out))
	}
}

func TestVMScanTail(t *testing.T) {
	var lines []string
	for i := range 20 {
		lines = append(lines, fmt.Sprintf("console-line-%02d", i))
	}
	st, _, _, _, _ := scanLines(t, lines)
	if len(st.tail) != 15 || st.tail[0] != "console-line-05" || st.tail[14] != "console-line-19" {
		t.Errorf("tail = %q, want the last 15 lines", st.tail)
	}
}

func TestVMVerdict(t *testing.T) {
	live := context.Background()
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	errExit := errors.New("exit status 1")
	panicLine := "[    1.234567] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)"

	tests := []struct {
		name     string
		lines    []string
		ctx      context.Context
		want     error // nil: success
		contains []string
	}{
		{"done", []string{Marker(testNonce, MarkReady), Marker(testNonce, MarkDone)}, live, nil, nil},
		{"done wins over a cancelled context", []string{Marker(testNonce, MarkDone)}, cancelled, nil, nil},
		{"done wins over a panic line", []string{"Kernel panic - not syncing: late", Marker(testNonce, MarkDone)}, live, nil, nil},
		{"panic", []string{"SeaBIOS", panicLine, "[    1.3] ---[ end Kernel panic ]---"}, live, ErrGuestPanic,
			[]string{strings.TrimSpace(panicLine), "SeaBIOS", "end Kernel panic"}},
		{"panic while hung is still a panic", []string{panicLine}, cancelled, ErrGuestPanic, []string{"VFS: Unable to mount"}},
		{"init failure", []string{Marker(testNonce, MarkFail, "load", "module", "ip_vs.ko:", "exec", "format", "error")}, live, ErrGuestInit,
			[]string{"load module ip_vs.ko: exec format error"}},
		{"init failure before a panic", []string{Marker(testNonce, MarkFail, "oops"), "Kernel panic - not syncing: Attempted to kill init!"}, live, ErrGuestInit,
			[]string{"oops"}},
		{"hung at boot", []string{"SeaBIOS", "Booting from ROM.."}, cancelled, ErrGuestHung, []string{"boot timeout", "Booting from ROM.."}},
		{"hung in a command", []string{Marker(testNonce, MarkReady), Marker(testNonce, MarkExit, "0", "0", "5"), "=== RUN   TestStuck"}, cancelled, ErrGuestHung,
			[]string{"1 command(s) done", "TestStuck"}},
		{"crashed", []string{Marker(testNonce, MarkReady), "qemu-system-x86_64: terminating on signal 15"}, live, ErrGuestCrashed,
			[]string{"exit status 1", "terminating on signal"}},
		{"crashed before ready", nil, live, ErrGuestCrashed, []string{"exit status 1"}},
	}
	sentinels := []error{ErrGuestPanic, ErrGuestInit, ErrGuestCrashed, ErrGuestHung}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, res, _, _, _ := scanLines(t, tt.lines)
			vm := &VM{Nonce: testNonce, BootTimeout: 42 * time.Second, Timeout: 7 * time.Minute}
			err := vm.verdict(tt.ctx, st, res, errExit)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("verdict = %v, want nil", err)
				}
				return
			}
			for _, s := range sentinels {
				if errors.Is(err, s) != (s == tt.want) {
					t.Errorf("verdict = %v: errors.Is(err, %q) = %v", err, s, !(s == tt.want))
				}
			}
			for _, c := range tt.contains {
				if !strings.Contains(err.Error(), c) {
					t.Errorf("verdict %q does not mention %q", err, c)
				}
			}
		})
	}
}

func TestVMVerdictNamesTimeouts(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	vm := &VM{BootTimeout: 42 * time.Second, Timeout: 7 * time.Minute}
	if err := vm.verdict(cancelled, &scanState{}, &Result{}, nil); !strings.Contains(err.Error(), "42s") {
		t.Errorf("boot hang %q does not name the boot timeout", err)
	}
	if err := vm.verdict(cancelled, &scanState{ready: true}, &Result{}, nil); !strings.Contains(err.Error(), "7m0s") {
		t.Errorf("run hang %q does not name the timeout", err)
	}
}

func TestVMArgs(t *testing.T) {
	// pairs reports whether flag is immediately followed by value.
	pair := func(args []string, flag, value string) bool {
		for i := 0; i+1 < len(args); i++ {
			if args[i] == flag && args[i+1] == value {
				return true
			}
		}
		return false
	}
	tests := []struct {
		accel, wantAccel string
		cpuMax           bool
	}{
		{"", "tcg", true},
		{"tcg", "tcg", true},
		{"kvm", "kvm", false},
	}
	for _, tt := range tests {
		vm := &VM{Kernel: "/k/vmlinux", Initrd: "/tmp/initrd.cpio", Accel: tt.accel, Memory: 512, CPUs: 3}
		args := vm.args()
		if !pair(args, "-accel", tt.wantAccel) {
			t.Errorf("accel %q: args %q lack -accel %s", tt.accel, args, tt.wantAccel)
		}
		if got := pair(args, "-cpu", "max"); got != tt.cpuMax {
			t.Errorf("accel %q: -cpu max present = %v, want %v", tt.accel, got, tt.cpuMax)
		}
		if !tt.cpuMax && slices.Contains(args, "-cpu") {
			t.Errorf("accel %q: args %q choose a CPU", tt.accel, args)
		}
		for _, p := range [][2]string{{"-kernel", vm.Kernel}, {"-initrd", vm.Initrd}, {"-m", "512"}, {"-smp", "3"}, {"-serial", "stdio"}} {
			if !pair(args, p[0], p[1]) {
				t.Errorf("accel %q: args %q lack %s %s", tt.accel, args, p[0], p[1])
			}
		}
		if !slices.Contains(args, "-no-reboot") {
			t.Errorf("args %q lack -no-reboot, so a panic would reboot rather than end qemu", args)
		}
		i := slices.Index(args, "-append")
		if i < 0 || i+1 >= len(args) || !strings.Contains(args[i+1], "console=ttyS0") || !strings.Contains(args[i+1], "panic=-1") {
			t.Errorf("kernel command line missing or incomplete in %q", args)
		}
	}
}
