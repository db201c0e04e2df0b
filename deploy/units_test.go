package deploy_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/directorlb/director/config"
)

// TestSystemdUnits: systemd itself reads each unit and finds nothing wrong
// but the programs and their manual pages not being installed on this
// machine (packaging/test-deb.sh verifies the installed units, pages
// included, in a clean Debian root).
func TestSystemdUnits(t *testing.T) {
	bin, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatal("systemd-analyze is not on PATH: run `make deps` (Debian's systemd package)")
	}
	units, _ := filepath.Glob("systemd/*.service")
	if len(units) == 0 {
		t.Fatal("no units under systemd/")
	}
	for _, u := range units {
		out, _ := exec.Command(bin, "verify", "--man=no", u).CombinedOutput()
		for line := range strings.Lines(string(out)) {
			// verify loads the machine's units too, and complains of
			// theirs (a test installs ldirectord's): not ours to judge.
			// Ours start with the unit's name or path.
			if where, _, _ := strings.Cut(line, ":"); filepath.Base(where) != filepath.Base(u) {
				continue
			}
			// The one complaint expected here: the binaries live in
			// /usr/sbin on an installed director, not on a build machine.
			if strings.Contains(line, "Command /usr/sbin/") && strings.Contains(line, "is not executable") {
				continue
			}
			t.Errorf("systemd-analyze verify %s: %s", u, strings.TrimSpace(line))
		}
	}
}

// TestDirectordUnit: start, its check and reload all read one file, and a
// reload goes through directorctl, which waits for directord's answer and
// fails when the file is refused (a SIGHUP's refusal is silent).
func TestDirectordUnit(t *testing.T) {
	data, err := os.ReadFile("systemd/directord.service")
	if err != nil {
		t.Fatal(err)
	}
	const cfg = " -config /etc/director/director.yaml\n"
	for _, want := range []string{
		"ExecStartPre=/usr/sbin/directorctl check-config" + cfg,
		"ExecStart=/usr/sbin/directord" + cfg,
		"ExecReload=/usr/sbin/directorctl reload" + cfg,
	} {
		if !strings.Contains(string(data), want) {
			t.Errorf("directord.service lacks %q", want)
		}
	}
	if strings.Count(string(data), "\nExecReload=") != 1 {
		t.Error("directord.service: want exactly one ExecReload")
	}
}

// TestRealserverUnit: the unit runs up at start (and reload) and down at
// stop on one file, and the example of that file is valid.
func TestRealserverUnit(t *testing.T) {
	data, err := os.ReadFile("systemd/realserver.service")
	if err != nil {
		t.Fatal(err)
	}
	const cfg = " -config /etc/director/realserver.yaml"
	for _, want := range []string{
		"Type=oneshot\n", "RemainAfterExit=yes\n",
		"ExecStart=/usr/sbin/realserver up" + cfg + "\n",
		"ExecReload=/usr/sbin/realserver up" + cfg + "\n",
		"ExecStop=/usr/sbin/realserver down" + cfg + "\n",
	} {
		if !strings.Contains(string(data), want) {
			t.Errorf("realserver.service lacks %q", want)
		}
	}
	c, err := config.LoadRealServerHost("examples/realserver/realserver.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Mode != "dr" || len(c.VIPs) != 2 {
		t.Errorf("examples/realserver/realserver.yaml read as %+v", c)
	}
}
