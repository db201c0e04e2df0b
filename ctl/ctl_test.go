package ctl

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/directorlb/director/config"
	"github.com/directorlb/director/control"
	"github.com/directorlb/director/director"
)

func runCtl(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var o, e bytes.Buffer
	env := &Env{Stdin: strings.NewReader(""), Stdout: &o, Stderr: &e,
		OpenKernel: func() (Kernel, error) { return nil, errors.New("no IPVS in unit tests") }}
	code = Main(context.Background(), env, args)
	return o.String(), e.String(), code
}

func TestExamplesPassCheckConfig(t *testing.T) {
	examples, _ := filepath.Glob("../deploy/examples/*.yaml")
	if len(examples) < 3 {
		t.Fatalf("want the NAT, DR and TUN examples, found %v", examples)
	}
	// Examples of several hosts, one directory each, but for the real
	// servers' helper files (deploy/units_test.go reads those).
	more, _ := filepath.Glob("../deploy/examples/*/*.yaml")
	var pair, group []string
	for _, ex := range more {
		switch filepath.Base(filepath.Dir(ex)) {
		case "realserver":
			continue
		case "pair":
			pair = append(pair, ex)
		case "group":
			group = append(group, ex)
		}
		examples = append(examples, ex)
	}
	if len(pair) != 2 {
		t.Fatalf("want the pair's two directors' examples, found %v", pair)
	}
	if len(group) != 3 {
		t.Fatalf("want the group's three directors' examples, found %v", group)
	}
	for _, ex := range examples {
		args := []string{"check-config", "-config", ex}
		if filepath.Dir(ex) != "../deploy/examples" {
			// They name the key file and interfaces of the hosts they
			// are for, which this one need not have: the file alone.
			args = append(args, "-host=false")
		}
		out, errOut, code := runCtl(t, args...)
		if code != 0 || !strings.Contains(out, ": ok (") || strings.Contains(out, "warning") {
			t.Errorf("%s: exit %d\n%s%s", ex, code, out, errOut)
		}
	}
	// The two directors serve the same: otherwise each would report
	// CONFIG DIFFERS, and a failover would change what is served.
	var digests [][16]byte
	for _, ex := range pair {
		cfg, err := config.Load(ex)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Failover == nil {
			t.Fatalf("%s: no failover block", ex)
		}
		digests = append(digests, cfg.ServicesDigest())
	}
	if digests[0] != digests[1] {
		t.Errorf("%s and %s configure different services", pair[0], pair[1])
	}
	// The group's directors too: otherwise each would report MISMATCH,
	// and a flow the routers move could change real server.
	var first [16]byte
	for i, ex := range group {
		cfg, err := config.Load(ex)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.BGP == nil {
			t.Fatalf("%s: no bgp block", ex)
		}
		if d := cfg.ServicesDigest(); i == 0 {
			first = d
		} else if d != first {
			t.Errorf("%s and %s configure different services", group[0], ex)
		}
	}
}

func TestCheckConfigReportsEveryProblem(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	body := "services:\n  - name: web\n    vip: 192.0.2.300\n    port: 80\n    real_servers:\n      - {address: 10.0.0.1, weight: -1}\n"
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _, code := runCtl(t, "check-config", "-config", path)
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s", code, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	re := regexp.MustCompile(`^` + regexp.QuoteMeta(path) + `:\d+:\d+: services\[0\]\.[a-z_\[\]0-9.]+: .+`)
	if len(lines) != 2 {
		t.Fatalf("want 2 problems (vip, weight), got:\n%s", out)
	}
	for _, l := range lines {
		if !re.MatchString(l) {
			t.Errorf("not FILE:LINE:COL: key: message: %q", l)
		}
	}
}

func TestUsageExitCodes(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
	}{
		{nil, 2},
		{[]string{"help"}, 0},
		{[]string{"frobnicate"}, 2},
		{[]string{"status", "-nosuchflag"}, 2},
		// One positional path is the config (issue 21); a second is extra.
		{[]string{"check-config", "/nonexistent/director.yaml", "extra-arg"}, 2},
		{[]string{"check-config", "-config", "/nonexistent/director.yaml"}, 1},
	} {
		if _, _, code := runCtl(t, tc.args...); code != tc.code {
			t.Errorf("directorctl %v: exit %d, want %d", tc.args, code, tc.code)
		}
	}
}

// fakeDaemon answers the control socket as directord would.
func fakeDaemon(t *testing.T, h control.Handler) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ctl.sock")
	l, err := control.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = control.Serve(ctx, l, h, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	t.Cleanup(func() { cancel(); <-done })
	return path
}

func TestStatusAndReload(t *testing.T) {
	sock := fakeDaemon(t, func(_ context.Context, r control.Request) (any, error) {
		switch r.Cmd {
		case "status":
			return director.Status{Node: "lb1", Config: "/etc/director/director.yaml", LastReconcile: time.Now(),
				Services: []director.ServiceStatus{{Name: "web", Key: "192.0.2.10:80/tcp", InKernel: true, Scheduler: "wlc",
					RealServers: []director.ServerStatus{
						{Address: "10.0.0.1:80", Forward: "nat", ConfiguredWeight: 3, KernelWeight: 3},
						{Address: "10.0.0.250:80", Sorry: true, Forward: "nat", ConfiguredWeight: 1, KernelWeight: -1},
					}}},
				Foreign: []string{"198.51.100.1:53/udp"}}, nil
		case "reload":
			return nil, errors.New("/etc/director/director.yaml:7:15: services[0].port: must be 1-65535")
		}
		return nil, errors.New("unknown")
	})
	out, _, code := runCtl(t, "status", "-socket", sock)
	for _, want := range []string{"node lb1", "service web", "192.0.2.10:80/tcp", "10.0.0.1:80", "10.0.0.250:80 (sorry)", "198.51.100.1:53/udp"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("status (exit %d) lacks %q:\n%s", code, want, out)
		}
	}
	// -socket also works before the command.
	if out, _, code := runCtl(t, "-socket", sock, "status", "--json"); code != 0 || !strings.Contains(out, `"kernel_weight": 3`) {
		t.Errorf("status --json: exit %d\n%s", code, out)
	}
	_, errOut, code := runCtl(t, "reload", "-socket", sock)
	if code != 1 || !strings.Contains(errOut, "director.yaml:7:15: services[0].port") || !strings.Contains(errOut, "keeps running the previous config") {
		t.Errorf("refused reload: exit %d\n%s", code, errOut)
	}
}

func TestReloadSuccess(t *testing.T) {
	sock := fakeDaemon(t, func(context.Context, control.Request) (any, error) {
		return control.ReloadResult{Config: "/etc/d.yaml", Changes: 2}, nil
	})
	out, _, code := runCtl(t, "reload", "-socket", sock)
	if code != 0 || !strings.Contains(out, "reloaded /etc/d.yaml: 2 change(s) applied") {
		t.Fatalf("exit %d: %s", code, out)
	}
}

func TestNoDaemon(t *testing.T) {
	_, errOut, code := runCtl(t, "status", "-socket", filepath.Join(t.TempDir(), "none.sock"))
	if code != 1 || !strings.Contains(errOut, "directord is not running") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
}

func TestDrainArguments(t *testing.T) {
	var got []control.Request
	sock := fakeDaemon(t, func(_ context.Context, r control.Request) (any, error) {
		got = append(got, r)
		return director.DrainResult{Service: r.Service, Server: "10.0.0.1:80", Drained: r.Cmd == "drain", Changed: true}, nil
	})
	for _, args := range [][]string{
		{"drain", "web", "10.0.0.1", "-socket", sock},
		{"drain", "-socket", sock, "web", "10.0.0.1"},
		{"-socket", sock, "enable", "web", "10.0.0.1"},
	} {
		out, errOut, code := runCtl(t, args...)
		if code != 0 || !strings.Contains(out, "web 10.0.0.1:80: ") {
			t.Errorf("%v: exit %d %s%s", args, code, out, errOut)
		}
	}
	if len(got) != 3 || got[0].Cmd != "drain" || got[2].Cmd != "enable" || got[1].Address != "10.0.0.1" {
		t.Fatalf("requests: %+v", got)
	}
	if _, _, code := runCtl(t, "drain", "web", "-socket", sock); code != 2 {
		t.Errorf("drain without an address: exit %d, want 2", code)
	}
}
