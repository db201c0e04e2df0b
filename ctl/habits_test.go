package ctl

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/cloudflare/ipvs"

	"github.com/directorlb/director/ipvsadm"
	"github.com/directorlb/director/version"
)

// The habits of ipvsadm users (issue 21, item 5): ipvsadm's short
// forms, -c, --timeout, --daemon, -h everywhere, a positional config
// path, -version.

func TestParseListArgsForms(t *testing.T) {
	numeric := listArgs{o: ipvsadm.ListOptions{Numeric: true}}
	conns := listArgs{o: ipvsadm.ListOptions{Numeric: true}, conns: true}
	for _, c := range []struct {
		args []string
		want listArgs
	}{
		{nil, listArgs{}},
		{[]string{"-Ln"}, numeric},
		{[]string{"-L", "-n"}, numeric},
		{[]string{"-nL"}, numeric},
		{[]string{"-l", "-n"}, numeric},
		{[]string{"--list", "--numeric"}, numeric},
		{[]string{"-n"}, numeric},
		{[]string{"-Lnc"}, conns},
		{[]string{"-L", "-n", "-c"}, conns},
		{[]string{"-c", "-n"}, conns},
		{[]string{"--connection", "-n"}, conns},
		{[]string{"-Lc", "-n", "--persistent-conn"}, listArgs{o: ipvsadm.ListOptions{Numeric: true, Persistent: true}, conns: true}},
		{[]string{"-Ln", "--stats"}, listArgs{o: ipvsadm.ListOptions{Numeric: true, Stats: true}}},
		{[]string{"-n", "-stats", "-exact"}, listArgs{o: ipvsadm.ListOptions{Numeric: true, Stats: true, Exact: true}}},
		{[]string{"--rate", "--exact"}, listArgs{o: ipvsadm.ListOptions{Rate: true, Exact: true}}},
		{[]string{"--thresholds"}, listArgs{o: ipvsadm.ListOptions{Thresholds: true}}},
		{[]string{"--tun-info"}, listArgs{o: ipvsadm.ListOptions{TunnelInfo: true}}},
		{[]string{"-L", "--timeout"}, listArgs{timeout: true}},
		{[]string{"--daemon"}, listArgs{daemon: true}},
		{[]string{"-n", "--json"}, listArgs{o: ipvsadm.ListOptions{Numeric: true}, json: true}},
		{[]string{"-json"}, listArgs{json: true}},
		{[]string{"-h"}, listArgs{help: true}},
		{[]string{"-Lh"}, listArgs{help: true}},
		{[]string{"--help"}, listArgs{help: true}},
	} {
		got, err := parseListArgs(c.args)
		if err != nil {
			t.Errorf("%q: %v", c.args, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%q: got %+v, want %+v", c.args, got, c.want)
		}
	}
	for _, bad := range [][]string{
		{"-Lx"}, {"--bogus"}, {"192.0.2.1:80"}, {"-c", "--stats"}, {"--timeout", "--rate"},
		{"--daemon", "--thresholds"}, {"-c", "--json"},
	} {
		var u usageError
		if _, err := parseListArgs(bad); !errors.As(err, &u) {
			t.Errorf("%q: want a usage error, got %v", bad, err)
		}
	}
}

func TestListShorthandAtTopLevel(t *testing.T) {
	for arg, want := range map[string]bool{
		"-L": true, "-l": true, "-Ln": true, "-Lnc": true, "-nL": true, "--list": true,
		"-n": false, "-c": false, "list": false, "-socket": false, "-h": false, "--L": false, "-Lx": false,
	} {
		if got := isListShorthand(arg); got != want {
			t.Errorf("isListShorthand(%q) = %v, want %v", arg, got, want)
		}
	}
}

// habitEnv is an Env with a fake connection list, kernel and sync
// daemons.
func habitEnv(out, errOut io.Writer) *Env {
	return &Env{
		Stdin: strings.NewReader(""), Stdout: out, Stderr: errOut,
		OpenKernel: func() (Kernel, error) { return timeoutKernel{}, nil },
		OpenConns: func() (io.ReadCloser, error) {
			return io.NopCloser(strings.NewReader("Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData\n" +
				"TCP C0A80A05 D431 C000020A 0050 0A00010B 0050 ESTABLISHED     899\n")), nil
		},
		SyncDaemons: func() ([]ipvsadm.SyncDaemon, error) {
			return []ipvsadm.SyncDaemon{{Interface: "eth1", SyncID: 3, MaxLen: 1472, Group: netip.MustParseAddr("224.0.0.81"), Port: 8848, TTL: 1}}, nil
		},
	}
}

// timeoutKernel answers Config only; the rest of ipvs.Client is nil.
type timeoutKernel struct{ ipvs.Client }

func (timeoutKernel) Config() (ipvs.Config, error) {
	return ipvs.Config{TCPTimeout: 900, TCPFinTimeout: 120, UDPTimeout: 300}, nil
}

func TestListConnsTimeoutDaemon(t *testing.T) {
	conns := "IPVS connection entries\n" +
		"pro expire state       source             virtual            destination\n" +
		"TCP 14:59  ESTABLISHED 192.168.10.5:54321 192.0.2.10:80      10.0.1.11:80\n"
	timeout := "Timeout (tcp tcpfin udp): 900 120 300\n"
	daemon := "master sync daemon (mcast=eth1, syncid=3, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n"
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"list", "-c", "-n"}, conns},
		{[]string{"list", "-Lnc"}, conns},
		{[]string{"-Lnc"}, conns},
		{[]string{"-L", "-n", "-c"}, conns},
		{[]string{"--list", "-n", "--connection"}, conns},
		{[]string{"list", "--timeout"}, timeout},
		{[]string{"-L", "--timeout"}, timeout},
		{[]string{"list", "--daemon"}, daemon},
		{[]string{"-L", "--daemon"}, daemon},
	} {
		var o, e bytes.Buffer
		code := Main(context.Background(), habitEnv(&o, &e), c.args)
		if code != 0 || o.String() != c.want || e.Len() != 0 {
			t.Errorf("%q: exit %d, stdout\n%s\nstderr %s\nwant stdout\n%s", c.args, code, o.String(), e.String(), c.want)
		}
	}
}

// TestEveryCommandAnswersHelp: `directorctl CMD -h` prints CMD's usage on
// stdout and exits 0, with no error on stderr.
func TestEveryCommandAnswersHelp(t *testing.T) {
	for _, c := range commands() {
		for _, h := range []string{"-h", "--help", "-help"} {
			args := []string{c.name, h}
			if c.name == "drain" || c.name == "enable" {
				args = []string{c.name, "web", h}
			}
			stdout, stderr, code := runCtl(t, args...)
			if code != 0 || stderr != "" || !strings.HasPrefix(stdout, "usage: directorctl "+c.name) {
				t.Errorf("%q: exit %d, stdout %q, stderr %q", args, code, stdout, stderr)
			}
			if strings.Contains(stdout+stderr, "help requested") {
				t.Errorf("%q: %q", args, stdout+stderr)
			}
		}
	}
	stdout, _, code := runCtl(t, "drain", "-h")
	if code != 0 || !strings.Contains(stdout, "SERVICE ADDRESS") || !strings.Contains(stdout, "-socket") {
		t.Errorf("drain -h: exit %d, want its usage and flags:\n%s", code, stdout)
	}
	stdout, _, _ = runCtl(t, "import", "keepalived", "-h")
	if !strings.Contains(stdout, "-root") {
		t.Errorf("import keepalived -h: want its flags:\n%s", stdout)
	}
	stdout, _, _ = runCtl(t, "list", "-h")
	for _, f := range []string{"-Ln", "--stats", "--rate", "--timeout", "--daemon", "-c,"} {
		if !strings.Contains(stdout, f) {
			t.Errorf("list -h does not mention %s:\n%s", f, stdout)
		}
	}
	// Unknown flags stay usage errors, on stderr.
	if _, stderr, code := runCtl(t, "drain", "-bogus"); code != 2 || stderr == "" {
		t.Errorf("drain -bogus: exit %d, stderr %q", code, stderr)
	}
}

func TestCheckConfigPositionalPath(t *testing.T) {
	const ex = "../deploy/examples/nat.yaml"
	for _, args := range [][]string{
		{"check-config", "-host=false", ex},
		{"check-config", ex, "-host=false"},
		{"check-config", "-host=false", "-config", ex},
	} {
		if stdout, stderr, code := runCtl(t, args...); code != 0 {
			t.Errorf("%q: exit %d\n%s%s", args, code, stdout, stderr)
		}
	}
	// The positional path is the one read, not the default.
	stdout, stderr, code := runCtl(t, "check-config", "-host=false", "/nonexistent/mine.yaml")
	if code != 1 || !strings.Contains(stdout+stderr, "/nonexistent/mine.yaml") {
		t.Errorf("missing positional file: exit %d\n%s%s", code, stdout, stderr)
	}
	for _, args := range [][]string{
		{"check-config", ex, ex},
		{"check-config", "-config", ex, ex},
	} {
		if _, _, code := runCtl(t, args...); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
}

func TestVersion(t *testing.T) {
	for _, arg := range []string{"-version", "--version", "version"} {
		stdout, stderr, code := runCtl(t, arg)
		if want := "directorctl " + version.String() + "\n"; code != 0 || stdout != want || stderr != "" {
			t.Errorf("%s: exit %d, stdout %q (want %q), stderr %q", arg, code, stdout, want, stderr)
		}
	}
}
