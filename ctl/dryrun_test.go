package ctl

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/directorlb/director/control"
)

// reload --dry-run asks for a dry run and prints the plan, one change a
// line, and says that nothing was changed.
func TestReloadDryRun(t *testing.T) {
	var asked control.Request
	sock := fakeDaemon(t, func(_ context.Context, r control.Request) (any, error) {
		asked = r
		if !r.DryRun {
			return nil, errors.New("a real reload")
		}
		return control.ReloadResult{Config: "/etc/d.yaml", DryRun: true, Changes: 2,
			Plan:     []string{"edit real server 10.0.0.1:80 of web (192.0.2.10:80/tcp): weight 3 -> 5", "remove service old (192.0.2.11:80/tcp)"},
			Notes:    []string{"metrics.listen changed; it takes effect at the next restart"},
			Warnings: []string{"/etc/d.yaml:3:5: services[0].scheduler_flags: ignored"}}, nil
	})
	out, errOut, code := runCtl(t, "reload", "--dry-run", "-socket", sock)
	if code != 0 || asked.Cmd != "reload" || !asked.DryRun {
		t.Fatalf("exit %d, asked %+v\n%s%s", code, asked, out, errOut)
	}
	want := "dry run: /etc/d.yaml is valid; a reload would make 2 change(s) to the kernel:\n" +
		"  edit real server 10.0.0.1:80 of web (192.0.2.10:80/tcp): weight 3 -> 5\n" +
		"  remove service old (192.0.2.11:80/tcp)\n" +
		"note: metrics.listen changed; it takes effect at the next restart\n" +
		"nothing was changed\n"
	if out != want {
		t.Fatalf("printed:\n%s\nwant:\n%s", out, want)
	}
	if !strings.Contains(errOut, "scheduler_flags: ignored") {
		t.Fatalf("the warning is not on stderr: %q", errOut)
	}
}
