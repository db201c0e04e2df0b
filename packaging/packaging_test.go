package packaging_test

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/directorlb/director/config"
	"github.com/directorlb/director/ctl"
)

// debianVersion is an upstream version as dpkg takes it without a
// revision: a digit first, then alphanumerics and . + ~.
var debianVersion = regexp.MustCompile(`^[0-9][A-Za-z0-9.+~]*$`)

// TestVersion: version.sh turns git describe's forms into Debian
// versions that sort as the commits do.
func TestVersion(t *testing.T) {
	cases := []struct{ describe, want string }{
		{"", "0.0~devel"},
		{"b1a9be5", "0.0~git20261204.b1a9be5"},
		{"b1a9be5-dirty", "0.0~git20261204.b1a9be5+dirty"},
		{"v1.2.0", "1.2.0"},
		{"v1.2.0-dirty", "1.2.0+dirty"},
		{"v1.2.0-3-gabcdef0", "1.2.0+3.gabcdef0"},
		{"v1.2.0-3-gabcdef0-dirty", "1.2.0+3.gabcdef0.dirty"},
		{"v1.3.0-rc1", "1.3.0~rc1"},
		{"v1.3.0-rc1-2-g0123abc", "1.3.0~rc1+2.g0123abc"},
	}
	for _, c := range cases {
		cmd := exec.Command("./version.sh")
		cmd.Env = append(os.Environ(), "DESCRIBE="+c.describe, "COMMIT_DATE=20261204")
		out, err := cmd.Output()
		got := strings.TrimSpace(string(out))
		if err != nil || got != c.want {
			t.Errorf("describe %q: %q, %v; want %q", c.describe, got, err, c.want)
		}
		if !debianVersion.MatchString(got) {
			t.Errorf("describe %q: %q is no Debian version", c.describe, got)
		}
	}
	// A tag that makes no version is refused, not packaged as nonsense.
	cmd := exec.Command("./version.sh")
	cmd.Env = append(os.Environ(), "DESCRIBE=release-one")
	if out, err := cmd.Output(); err == nil {
		t.Errorf("describe release-one: %q, want a failure", out)
	}
	// In dpkg's order: untagged builds, a pre-release, the release, the
	// commits after it, the next release. (A dirty build sorts after its
	// commit, and is no release to order further.)
	order := []string{"0.0~devel", "0.0~git20261204.b1a9be5", "0.0~git20261204.b1a9be5+dirty",
		"0.0~git20261205.0123abc", "1.3.0~rc1", "1.3.0", "1.3.0+3.gabcdef0", "1.3.1"}
	dpkg, err := exec.LookPath("dpkg")
	if err != nil {
		t.Fatal("dpkg is not on PATH (this is a Debian machine?)")
	}
	for i := 1; i < len(order); i++ {
		if err := exec.Command(dpkg, "--compare-versions", order[i-1], "lt", order[i]).Run(); err != nil {
			t.Errorf("dpkg: %s is not older than %s", order[i-1], order[i])
		}
	}
}

// runCtl runs directorctl with args.
func runCtl(args ...string) (string, int) {
	var out bytes.Buffer
	env := &ctl.Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &out}
	code := ctl.Main(context.Background(), env, args)
	return out.String(), code
}

// TestShippedDirectorYAML: /etc/director/director.yaml as installed passes
// check-config (on this host too: it names nothing of one), and so does its
// commented example once uncommented, so that an admin who starts from it
// starts from a valid file.
func TestShippedDirectorYAML(t *testing.T) {
	if out, code := runCtl("check-config", "director.yaml"); code != 0 || !strings.Contains(out, "ok (0 service(s))") {
		t.Fatalf("check-config director.yaml: exit %d\n%s", code, out)
	}
	data, err := os.ReadFile("director.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// Commented-out YAML is "#key" or "#  indented"; prose is "# text".
	var b strings.Builder
	for line := range strings.Lines(string(data)) {
		switch {
		case strings.HasPrefix(line, "allow_no_services:"):
		case strings.HasPrefix(line, "#  ") || (strings.HasPrefix(line, "#") && len(line) > 1 && line[1] != ' ' && line[1] != '\n'):
			b.WriteString(line[1:])
		case strings.HasPrefix(line, "#"):
		default:
			b.WriteString(line)
		}
	}
	uncommented := t.TempDir() + "/director.yaml"
	if err := os.WriteFile(uncommented, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	out, code := runCtl("check-config", "-host=false", uncommented)
	if code != 0 || !strings.Contains(out, "ok (1 service(s))") || strings.Contains(out, "warning") {
		t.Errorf("the example in director.yaml, uncommented: exit %d\n%s\n%s", code, out, b.String())
	}
}

// TestModulesLoad: the boot-time list is ip_vs and every scheduler the
// config accepts but twos, which Debian 12's kernel (6.1) does not have
// (a missing module would fail systemd-modules-load at every boot).
func TestModulesLoad(t *testing.T) {
	f, err := os.Open("modules-load.conf")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var got []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" && !strings.HasPrefix(line, "#") {
			got = append(got, line)
		}
	}
	want := []string{"ip_vs"}
	for _, s := range config.Schedulers {
		if s != "twos" {
			want = append(want, "ip_vs_"+s)
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("modules-load.conf loads %v, want %v", got, want)
	}
}
