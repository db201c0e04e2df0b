//go:build lab

package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestVIPsDualStack: one service on an IPv4 and an IPv6 VIP is two
// kernel services with one set of checks; traffic to either address
// reaches the same hosts (each listed once per family), and a host whose
// server dies leaves both kernel services.
func TestVIPsDualStack(t *testing.T) {
	t.Parallel()
	_, client, dir, rs1, rs2 := natFarm(t)
	stop1 := rs1.ServeHTTP(":8080")
	rs2.ServeHTTP(":8080")
	d := runDirectord(t, dir, `
services:
  - name: web
    vips: [192.0.2.10, 2001:db8:10::10]
    port: 8080
    scheduler: rr
    check: {type: http, path: /, interval: 200ms, timeout: 100ms, rise: 2, fall: 2}
    real_servers:
      - {address: 10.0.1.11}
      - {address: "2001:db8:2::11"}
      - {address: 10.0.2.12}
      - {address: "2001:db8:3::12"}
`)
	for _, want := range []string{
		"-a -t 192.0.2.10:8080 -r 10.0.1.11:8080 -m -w 1", "-a -t 192.0.2.10:8080 -r 10.0.2.12:8080 -m -w 1",
		"-a -t [2001:db8:10::10]:8080 -r [2001:db8:2::11]:8080 -m -w 1", "-a -t [2001:db8:10::10]:8080 -r [2001:db8:3::12]:8080 -m -w 1",
	} {
		waitKernel(t, dir, want, 5*time.Second)
	}
	save := ipvsadmSave(t, dir)
	if strings.Contains(save, "-t 192.0.2.10:8080 -r [") || strings.Contains(save, "-t [2001:db8:10::10]:8080 -r 10.") {
		t.Fatalf("a kernel service holds a real server of the other family:\n%s", save)
	}
	roundRobin(t, client.Fetch("http://192.0.2.10:8080/", 4), "rs1", "rs2")
	roundRobin(t, client.Fetch("http://[2001:db8:10::10]:8080/", 4), "rs1", "rs2")
	// Nothing was asked of the kernel that it refuses (a real server of
	// the other family: IPVS says EINVAL, and the table would look right).
	if log := strings.Join(d.log.Lines(), "\n"); strings.Contains(log, "kernel refused") {
		t.Fatalf("directord asked the kernel for what it refuses:\n%s", log)
	}

	out, code := d.ctl("status", "-socket", d.socket)
	if code != 0 || strings.Count(out, "service web") != 2 || !strings.Contains(out, "192.0.2.10:8080/tcp") ||
		!strings.Contains(out, "[2001:db8:10::10]:8080/tcp") {
		t.Fatalf("status does not show web once per VIP (exit %d):\n%s", code, out)
	}

	// rs1's server dies: its checks fail on both addresses, and it leaves
	// both kernel services.
	stop1()
	waitKernel(t, dir, "-a -t 192.0.2.10:8080 -r 10.0.1.11:8080 -m -w 0", 5*time.Second)
	waitKernel(t, dir, "-a -t [2001:db8:10::10]:8080 -r [2001:db8:2::11]:8080 -m -w 0", 5*time.Second)
	for _, url := range []string{"http://192.0.2.10:8080/", "http://[2001:db8:10::10]:8080/"} {
		for _, g := range client.Fetch(url, 4) {
			if g != "rs2" {
				t.Fatalf("%s reached the dead server's host: %s", url, g)
			}
		}
	}
	rs1.ServeHTTP(":8080")
	waitKernel(t, dir, "-a -t [2001:db8:10::10]:8080 -r [2001:db8:2::11]:8080 -m -w 1", 5*time.Second)
	waitKernel(t, dir, "-a -t 192.0.2.10:8080 -r 10.0.1.11:8080 -m -w 1", 5*time.Second)
}

// TestIncludeReload: a reload reads include: again; a service added in an
// included file reaches the kernel and serves, and a broken included file
// is refused at its own line while the table stays.
func TestIncludeReload(t *testing.T) {
	t.Parallel()
	_, client, dir, _, _ := natFarm(t)
	d := runDirectord(t, dir, `
include: [conf.d/*.yaml]
services:
  - name: web
    vip: 192.0.2.10
    port: 80
    real_servers: [{address: 10.0.1.11}]
`)
	confd := filepath.Join(filepath.Dir(d.config), "conf.d")
	if err := os.MkdirAll(confd, 0o755); err != nil {
		t.Fatal(err)
	}
	reload := func() string {
		t.Helper()
		mark := d.log.Mark()
		if err := d.proc.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		line, err := d.log.Wait(mark, `msg=reloaded|reload refused`, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return line
	}
	write := func(name, body string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(confd, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	write("echo.yaml", "services:\n  - name: echo\n    vip: 192.0.2.10\n    port: 7\n    real_servers: [{address: 10.0.2.12}]\n")
	if line := reload(); !strings.Contains(line, "msg=reloaded") {
		t.Fatalf("reload: %s", line)
	}
	waitKernel(t, dir, "-a -t 192.0.2.10:7 -r 10.0.2.12:7 -m -w 1", 5*time.Second)
	if _, host := echoConn(t, client); host != "rs2" {
		t.Fatalf("echo answered from %s, want rs2", host)
	}
	if got := client.Fetch("http://192.0.2.10/", 2); got[0] != "rs1" || got[1] != "rs1" {
		t.Fatalf("web: %v", got)
	}

	before := ipvsadmSave(t, dir)
	write("zz-bad.yaml", "services:\n  - name: echo\n    vip: 192.0.2.10\n    port: 8\n")
	if line := reload(); !strings.Contains(line, "reload refused") {
		t.Fatalf("a duplicate name in an included file was not refused: %s", line)
	}
	if !strings.Contains(strings.Join(d.log.Lines(), "\n"), "zz-bad.yaml:2:11") {
		t.Fatalf("the refusal does not name the included file's line:\n%s", strings.Join(d.log.Lines(), "\n"))
	}
	out, code := run(t, dir, "", "/bin/directorctl", "check-config", "-host=false", "-config", d.config)
	if code != 1 || !strings.Contains(out, "zz-bad.yaml:2:11: services[2].name: duplicate service name \"echo\" (first at ") {
		t.Fatalf("check-config: exit %d\n%s", code, out)
	}
	if after := ipvsadmSave(t, dir); after != before {
		t.Fatalf("a refused reload changed the table:\n%s", lineDiff(before, after))
	}
}
