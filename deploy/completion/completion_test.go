// Package completion_test checks directorctl's bash completion
// (directorctl.bash, installed as
// /usr/share/bash-completion/completions/directorctl): that it is what
// package manual generates from directorctl's command table, and that
// bash completes commands, flags, and a running directord's services and
// real servers with it.
package completion_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/directorlb/director/control"
	"github.com/directorlb/director/director"
	"github.com/directorlb/director/failover"
	"github.com/directorlb/director/manual"
)

const script = "directorctl.bash"

// TestScriptIsGenerated: the shipped file is the generator's output for
// today's command table; `make completion` rewrites it.
func TestScriptIsGenerated(t *testing.T) {
	got, err := os.ReadFile(script)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != manual.BashCompletion(manual.Directorctl()) {
		t.Errorf("%s is not what package manual generates: run make completion", script)
	}
}

// fakeDaemon serves directord's control socket with a pair's status of
// two services, and returns the socket's path.
func fakeDaemon(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ctl.sock")
	l, err := control.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	st := control.Status{
		Status: director.Status{Node: "lb1", Config: "/etc/director/director.yaml", Services: []director.ServiceStatus{
			{Name: "web", Key: "192.0.2.10:80/tcp", InKernel: true, Scheduler: "wlc", RealServers: []director.ServerStatus{
				{Address: "10.0.0.1:80", Forward: "nat", ConfiguredWeight: 1, KernelWeight: 1},
				{Address: "10.0.0.2:8080", Forward: "nat", ConfiguredWeight: 1, KernelWeight: 0, Drained: true},
				{Address: "10.0.0.250:80", Sorry: true, Forward: "nat", ConfiguredWeight: 1, KernelWeight: -1},
			}},
			{Name: "dns", Key: "192.0.2.53:53/udp", InKernel: true, Scheduler: "rr", RealServers: []director.ServerStatus{
				{Address: "[2001:db8::53]:53", Forward: "dr", ConfiguredWeight: 1, KernelWeight: 1},
			}},
		}, Foreign: []string{"198.51.100.1:53/udp"}},
		Role:     "active",
		Failover: &failover.Status{Role: "active", Links: []failover.LinkStatus{{Name: "eth1", Up: true}}},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = control.Serve(ctx, l, func(_ context.Context, r control.Request) (any, error) {
			return st, nil
		}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	t.Cleanup(func() { cancel(); <-done })
	return path
}

// buildCtl builds directorctl into a directory for PATH.
func buildCtl(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	// go test puts its own go first on the test's PATH.
	out, err := exec.Command("go", "build", "-o", dir, "../../cmd/directorctl").CombinedOutput()
	if err != nil {
		t.Fatalf("go build directorctl: %v\n%s", err, out)
	}
	return dir
}

// complete runs bash's completion of line (the cursor at its end) with
// the script sourced, and returns COMPREPLY sorted, and what bash printed
// on stderr.
func complete(t *testing.T, path, dir, line string) (reply []string, stderr string) {
	t.Helper()
	// COMP_WORDS as readline splits them (at blanks and at ":"), for a
	// function that would read them.
	words := strings.Fields(strings.ReplaceAll(line, ":", " : "))
	if strings.HasSuffix(line, " ") {
		words = append(words, "")
	}
	var quoted []string
	for _, w := range words {
		quoted = append(quoted, strconv.Quote(w))
	}
	prog := `set -u; source ` + strconv.Quote(script) + `
COMP_LINE=` + strconv.Quote(line) + `; COMP_POINT=${#COMP_LINE}
COMP_WORDS=(` + strings.Join(quoted, " ") + `); COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
_directorctl
printf '%s\n' "${COMPREPLY[@]}" | sort`
	cmd := exec.Command("bash", "--norc", "--noprofile", "-c", prog)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PATH="+path+":"+os.Getenv("PATH"))
	var e strings.Builder
	cmd.Stderr = &e
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("bash: %v\n%s", err, e.String())
	}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l != "" {
			reply = append(reply, l)
		}
	}
	return reply, e.String()
}

func TestCompletion(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Fatal("bash is needed")
	}
	bin := buildCtl(t)
	sock := fakeDaemon(t)
	wd, _ := os.Getwd()
	var cmds []string
	for _, c := range manual.Directorctl().Commands() {
		cmds = append(cmds, c.Name)
	}
	// Files for check-config and -socket: this directory's.
	for _, c := range []struct {
		line string
		want string // sorted, space-separated
	}{
		{"directorctl dr", "drain drain-node"},
		{"directorctl re", "release reload reconcile restore"},
		{"directorctl -", "--config --socket --version -config -socket -version"},
		{"directorctl drain -", "--config --help --socket -config -h -socket"},
		{"directorctl list --st", "--stats"},
		{"directorctl list -", "--connection --daemon --exact --help --json --list --numeric --persistent-conn --rate --stats --thresholds --timeout --tun-info -L -c -h -n"},
		{"directorctl save -", "-h -n --help"},
		{"directorctl import ", "keepalived ldirectord"},
		{"directorctl import keepalived directorctl.b", "directorctl.bash"},
		{"directorctl check-config directorctl.", "directorctl.bash"},
		{"directorctl check-config -config directorctl.", "directorctl.bash"},
		{"directorctl takeover -wait ", ""},
		{"directorctl status ", ""},
		// Names from the running directord: before or after the command.
		{"directorctl -socket " + sock + " drain ", "dns web"},
		{"directorctl drain -socket " + sock + " w", "web"},
		{"directorctl enable --socket=x -socket " + sock + " web ", "10.0.0.1:80 10.0.0.2:8080"},
		{"directorctl drain web -socket " + sock + " 10.0.0.1:", "80"},
		{"directorctl drain -socket " + sock + " dns [2001:db8::53]:", "53"},
		{"directorctl drain -socket " + sock + " web 10.0.0.1:80 ", ""},
		// No daemon: nothing, quietly.
		{"directorctl drain -socket /nonexistent/ctl.sock ", ""},
		{"directorctl drain -socket /nonexistent/ctl.sock web ", ""},
	} {
		reply, stderr := complete(t, bin, wd, c.line)
		want := strings.Fields(c.want)
		slices.Sort(want)
		if !slices.Equal(reply, want) || stderr != "" {
			t.Errorf("%q: COMPREPLY %q, want %q; stderr %q", c.line, reply, want, stderr)
		}
	}
	reply, _ := complete(t, bin, wd, "directorctl ")
	for _, c := range cmds {
		if !strings.Contains(" "+strings.Join(reply, " ")+" ", " "+c+" ") {
			t.Errorf("directorctl <TAB>: %s is not offered (%q)", c, reply)
		}
	}
}
