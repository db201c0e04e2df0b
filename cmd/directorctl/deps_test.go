package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDirectorctlLinksNoDaemonModules: directorctl is a small client of
// the control socket and the kernel's table. The health checks' SQL
// drivers, the metrics' Prometheus client and systemd's notify belong to
// directord; an import of package daemon (or of checks or metrics) from
// ctl would bring them back into every directorctl binary.
func TestDirectorctlLinksNoDaemonModules(t *testing.T) {
	// go test puts its own toolchain first on the test's PATH.
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list directorctl's dependencies: %v", err)
	}
	var stderr strings.Builder
	cmd := exec.Command(gobin, "list", "-deps", ".")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, stderr.String())
	}
	forbidden := []string{
		"github.com/jackc/pgx",
		"github.com/go-sql-driver/mysql",
		"github.com/prometheus/client_golang",
		"github.com/coreos/go-systemd",
		"github.com/directorlb/director/daemon",
		"github.com/directorlb/director/checks",
		"github.com/directorlb/director/metrics",
	}
	for pkg := range strings.Lines(string(out)) {
		pkg = strings.TrimSpace(pkg)
		for _, f := range forbidden {
			if pkg == f || strings.HasPrefix(pkg, f+"/") {
				t.Errorf("directorctl links %s", pkg)
			}
		}
	}
}
