package ctl

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/directorlb/director/control"
	"github.com/directorlb/director/director"
	"github.com/directorlb/director/failover"
)

func statusOutput(t *testing.T, st control.Status) string {
	t.Helper()
	sock := fakeDaemon(t, func(_ context.Context, r control.Request) (any, error) {
		if r.Cmd == "status" {
			return st, nil
		}
		return nil, errors.New("unknown")
	})
	out, errOut, code := runCtl(t, "status", "-socket", sock)
	if code != 0 {
		t.Fatalf("status: exit %d\n%s%s", code, out, errOut)
	}
	return out
}

var singleLine = regexp.MustCompile(`(?m)^failover: .*single director.*\bactive\b`)

// A director without a failover block says it is a single director and
// active: it always holds its VIPs.
func TestStatusSingleDirectorIsActive(t *testing.T) {
	out := statusOutput(t, control.Status{Status: director.Status{Node: "lb1", Config: "/etc/d.yaml"}, Role: "active"})
	if !singleLine.MatchString(out) {
		t.Errorf("no line says a single director, active:\n%s", out)
	}
	if !strings.Contains(out, "node lb1  role active  ") {
		t.Errorf("the first line lacks the role:\n%s", out)
	}
	// A daemon that leaves the role out (an older one) is still single
	// and active when it has no failover block.
	out = statusOutput(t, control.Status{Status: director.Status{Node: "lb1", Config: "/etc/d.yaml"}})
	if !strings.Contains(out, "node lb1  role active  ") || !singleLine.MatchString(out) {
		t.Errorf("without a role in the reply:\n%s", out)
	}
}

func TestStatusPairIsNotSingle(t *testing.T) {
	out := statusOutput(t, control.Status{Status: director.Status{Node: "lb1", Config: "/etc/d.yaml"}, Role: "fault",
		Failover: &failover.Status{Role: "fault", Fault: "eth0 has no carrier", Priority: 100}})
	if strings.Contains(out, "single") {
		t.Errorf("a pair's director says single:\n%s", out)
	}
	for _, want := range []string{"node lb1  role fault  ", "failover: fault for ", "fault: eth0 has no carrier"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
}
