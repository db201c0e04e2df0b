package ctl

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// directorctl import prints the YAML on stdout and the report on stderr,
// and exits with what the result means; what it prints passes
// check-config.
func TestImport(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ka := write("keepalived.conf", `global_defs {
    router_id LVS_A
    notification_email { ops@example.com }
}
virtual_server 192.0.2.10 80 {
    delay_loop 6
    lb_algo wrr
    lb_kind DR
    protocol TCP
    real_server 10.1.0.11 80 {
        weight 3
        TCP_CHECK {
            connect_timeout 3
        }
    }
}
`)
	ld := write("ldirectord.cf", `checktimeout=3
virtual=192.0.2.20:80
	real=10.1.0.21:80 gate 2
	service=http
	request="/health"
	receive="ok"
	scheduler=wrr
	quiescent=yes
`)
	notThis := write("other.ini", "[section]\nkey = value\n")
	for _, tc := range []struct {
		args       []string
		code       int
		wantOut    string
		wantReport string
	}{
		{[]string{"import", "keepalived", ka}, 1, `vip: "192.0.2.10"`, ka + ":3: notification_email:"},
		{[]string{"import", "ldirectord", ld}, -1, `vip: "192.0.2.20"`, ""},
		{[]string{"import", "ldirectord", notThis}, 2, "", notThis},
		{[]string{"import", "keepalived", filepath.Join(dir, "missing.conf")}, 2, "", "missing.conf"},
	} {
		out, errOut, code := runCtl(t, tc.args...)
		if tc.code >= 0 && code != tc.code || tc.code < 0 && code > 1 {
			t.Errorf("%v: exit %d, want %d\n%s%s", tc.args, code, tc.code, out, errOut)
		}
		if !strings.Contains(out, tc.wantOut) {
			t.Errorf("%v: stdout lacks %q:\n%s", tc.args, tc.wantOut, out)
		}
		if !strings.Contains(errOut, tc.wantReport) {
			t.Errorf("%v: report lacks %q:\n%s", tc.args, tc.wantReport, errOut)
		}
		if code == 2 && out != "" {
			t.Errorf("%v: exit 2 printed YAML:\n%s", tc.args, out)
		}
		if code <= 1 {
			// What is printed passes check-config.
			y := write("imported.yaml", out)
			if cout, _, ccode := runCtl(t, "check-config", "-host=false", "-config", y); ccode != 0 {
				t.Errorf("%v: the import fails check-config:\n%s\n%s", tc.args, cout, out)
			}
		}
	}
	if _, errOut, code := runCtl(t, "import", "nginx", ka); code != 2 || !strings.Contains(errOut, `unknown format "nginx"`) {
		t.Errorf("unknown format: exit %d, %s", code, errOut)
	}
	if _, _, code := runCtl(t, "import", "keepalived"); code != 2 {
		t.Errorf("no file: exit %d", code)
	}
}
