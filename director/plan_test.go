package director

import (
	"context"
	"slices"
	"testing"
)

// A dry run describes every change a reload would make, in the order it
// would make them, and makes none of them.
func TestPlanChangesNothing(t *testing.T) {
	ctx := context.Background()
	k := newFakeKernel()
	cfg := cfgOf(
		svc("web", "192.0.2.10", 80, rs("10.0.0.1:80", 5), rs("10.0.0.2:80", 5)),
		svc("old", "192.0.2.11", 80, rs("10.0.0.1:80", 1)),
	)
	d, _ := startDirectorWith(t, k, Options{Kernel: k, Logger: quietLog()}, cfg)

	next := cfgOf(
		svc("web", "192.0.2.10", 80, rs("10.0.0.1:80", 9), rs("10.0.0.3:80", 2)),
		svc("new", "192.0.2.12", 443, rs("10.0.0.4:443", 1)),
	)
	next.Services[0].Scheduler = "rr"
	k.resetCalls()
	ops, err := d.Plan(ctx, next)
	if err != nil {
		t.Fatal(err)
	}
	if len(k.calls) != 0 {
		t.Fatalf("a dry run called the kernel: %v", k.calls)
	}
	var got []string
	for _, op := range ops {
		got = append(got, Describe(op))
	}
	want := []string{
		"add service new (192.0.2.12:443/tcp): scheduler wlc, flags none, persistent no",
		"edit service web (192.0.2.10:80/tcp): scheduler wlc -> rr",
		"add real server 10.0.0.3:80 to web (192.0.2.10:80/tcp): forward Masq, weight 2, upper_threshold 0, lower_threshold 0",
		"add real server 10.0.0.4:443 to new (192.0.2.12:443/tcp): forward Masq, weight 1, upper_threshold 0, lower_threshold 0",
		"edit real server 10.0.0.1:80 of web (192.0.2.10:80/tcp): weight 5 -> 9",
		"remove real server 10.0.0.2:80 from web (192.0.2.10:80/tcp)",
		"remove service old (192.0.2.11:80/tcp)",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("plan:\n%s\nwant:\n%s", lines(got), lines(want))
	}
	// The reload then makes exactly those changes.
	res, err := d.Reload(ctx, next)
	if err != nil || res.Applied != len(want) {
		t.Fatalf("reload after the dry run: %+v %v, want %d changes", res, err, len(want))
	}
	if ops, _ := d.Plan(ctx, next); len(ops) != 0 {
		t.Fatalf("a dry run of the config in force plans %d changes", len(ops))
	}
}

func lines(s []string) string {
	out := ""
	for _, l := range s {
		out += "  " + l + "\n"
	}
	return out
}

// A dry run names each service by the config's name, also after the
// kernel's table was read again (the kernel knows no names) and for a
// service adopted from the kernel at the start.
func TestPlanNamesAfterARead(t *testing.T) {
	ctx := context.Background()
	k := newFakeKernel()
	cfg := cfgOf(
		svc("web", "192.0.2.10", 80, rs("10.0.0.1:80", 5)),
		svc("old", "192.0.2.11", 80, rs("10.0.0.1:80", 1)),
	)
	d, _ := startDirectorWith(t, k, Options{Kernel: k, Logger: quietLog()}, cfg)
	if _, err := d.Reconcile(ctx); err != nil { // reads the kernel whole
		t.Fatal(err)
	}
	ops, err := d.Plan(ctx, cfgOf(svc("web", "192.0.2.10", 80, rs("10.0.0.1:80", 7))))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, op := range ops {
		got = append(got, Describe(op))
	}
	want := []string{
		"edit real server 10.0.0.1:80 of web (192.0.2.10:80/tcp): weight 5 -> 7",
		"remove service old (192.0.2.11:80/tcp)",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("plan:\n%s\nwant:\n%s", lines(got), lines(want))
	}
}
