package preflight_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/directorlb/director/config"
	"github.com/directorlb/director/heartbeat"
	"github.com/directorlb/director/preflight"
)

// host is a director's files in a temporary directory, all as directord
// wants them: root's, 0600 for secrets, 0755 for programs.
type host struct {
	dir                                string
	key, notify, fence, exec, ca, pass string
	iface                              string // an interface every Linux host has
}

func newHost(t *testing.T) *host {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the files must be root's, as directord wants them; run as root")
	}
	dir := t.TempDir()
	h := &host{dir: dir, iface: "lo"}
	write := func(name string, mode os.FileMode, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, mode); err != nil {
			t.Fatal(err)
		}
		// WriteFile's mode is subject to the umask.
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	h.key = write("authkey", 0o600, []byte("0123456789abcdef0123456789abcdef\n"))
	h.notify = write("notify", 0o755, []byte("#!/bin/sh\nexit 0\n"))
	h.fence = write("fence", 0o755, []byte("#!/bin/sh\nexit 0\n"))
	h.exec = write("check-app", 0o755, []byte("#!/bin/sh\nexit 0\n"))
	h.ca = write("ca.pem", 0o644, selfSigned(t))
	h.pass = write("db.pass", 0o600, []byte("secret\n"))
	return h
}

// yaml is a configuration naming every kind of thing preflight judges,
// one per line, so that a test can tell where a problem is reported.
func (h *host) yaml() string {
	return `node: lb1
control: {socket: ` + filepath.Join(h.dir, "ctl.sock") + `}
services:
  - name: web
    vip: 192.0.2.10
    port: 443
    check: {type: https, ca_file: ` + h.ca + `}
    real_servers: [{address: 10.0.0.1}]
  - name: db
    vip: 192.0.2.10
    port: 3306
    check: {type: mysql, user: u, password_file: ` + h.pass + `}
  - name: app
    vip: 192.0.2.10
    port: 8080
    check: {type: exec, command: [` + h.exec + `, "{address}"]}
failover:
  auth_key_file: ` + h.key + `
  notify: ` + h.notify + `
  fence: ` + h.fence + `
  links: [{interface: ` + h.iface + `, peer: 192.168.50.2}]
  vips: [{address: 192.0.2.10/24, interface: ` + h.iface + `}]
`
}

func selfSigned(t *testing.T) []byte {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// check loads text and runs Check on it, bounded: a file that blocked
// (a FIFO read without O_NONBLOCK) fails the test instead of hanging it.
func check(t *testing.T, text string) (errs, warns []error) {
	t.Helper()
	cfg, err := config.Parse("x.yaml", []byte(text))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	type result struct{ errs, warns []error }
	done := make(chan result, 1)
	go func() {
		e, w := preflight.Check(cfg)
		done <- result{e, w}
	}()
	select {
	case r := <-done:
		return r.errs, r.warns
	case <-time.After(10 * time.Second):
		t.Fatal("Check blocked for 10s")
		return nil, nil
	}
}

// one wants exactly one problem in got, at want ("LINE:COL: key") with
// msg in its message.
func one(t *testing.T, what string, got []error, want, msg string) {
	t.Helper()
	if len(got) != 1 {
		t.Fatalf("%s: got %d: %v; want one at %s", what, len(got), got, want)
	}
	if s := got[0].Error(); !strings.HasPrefix(s, "x.yaml:"+want+": ") || !strings.Contains(s, msg) {
		t.Errorf("%s: %s\nwant x.yaml:%s: ...%s...", what, s, want, msg)
	}
}

func TestCheckGood(t *testing.T) {
	h := newHost(t)
	errs, warns := check(t, h.yaml())
	if len(errs)+len(warns) != 0 {
		t.Errorf("a host with everything in place: errors %v, warnings %v", errs, warns)
	}
}

func TestCheckFindsWhatDirectordRefuses(t *testing.T) {
	for _, tt := range []struct {
		name  string
		setup func(t *testing.T, h *host) string // returns the config text
		at    string                             // LINE:COL: key
		msg   string
	}{
		{"key file missing", func(t *testing.T, h *host) string {
			rm(t, h.key)
			return h.yaml()
		}, "18:18: failover.auth_key_file", "no such file or directory"},
		{"key file readable by others", func(t *testing.T, h *host) string {
			chmod(t, h.key, 0o644)
			return h.yaml()
		}, "18:18: failover.auth_key_file", "mode 0644"},
		{"key file a FIFO", func(t *testing.T, h *host) string {
			rm(t, h.key)
			if err := syscall.Mkfifo(h.key, 0o600); err != nil {
				t.Fatal(err)
			}
			return h.yaml()
		}, "18:18: failover.auth_key_file", "not a regular file"},
		{"key too short", func(t *testing.T, h *host) string {
			if err := os.WriteFile(h.key, []byte("short\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			return h.yaml()
		}, "18:18: failover.auth_key_file", "need at least 16"},
		{"notify not executable", func(t *testing.T, h *host) string {
			chmod(t, h.notify, 0o644)
			return h.yaml()
		}, "19:11: failover.notify", "is not executable (mode 0644)"},
		{"fence a directory", func(t *testing.T, h *host) string {
			rm(t, h.fence)
			if err := os.Mkdir(h.fence, 0o755); err != nil {
				t.Fatal(err)
			}
			return h.yaml()
		}, "20:10: failover.fence", "is not a regular file"},
		{"fence not in PATH", func(t *testing.T, h *host) string {
			t.Setenv("PATH", h.dir)
			h.fence = "no-such-fence-agent"
			return h.yaml()
		}, "20:10: failover.fence", "no-such-fence-agent is not found in PATH"},
		{"exec check program missing", func(t *testing.T, h *host) string {
			rm(t, h.exec)
			return h.yaml()
		}, "16:34: services[2].check.command", "does not exist"},
		{"password file readable by others", func(t *testing.T, h *host) string {
			chmod(t, h.pass, 0o640)
			return h.yaml()
		}, "12:50: services[1].check.password_file", "mode 0640"},
		{"ca file not PEM", func(t *testing.T, h *host) string {
			if err := os.WriteFile(h.ca, []byte("not a certificate\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			return h.yaml()
		}, "7:35: services[0].check.ca_file", "no PEM certificate"},
		{"ca file a FIFO", func(t *testing.T, h *host) string {
			rm(t, h.ca)
			if err := syscall.Mkfifo(h.ca, 0o644); err != nil {
				t.Fatal(err)
			}
			return h.yaml()
		}, "7:35: services[0].check.ca_file", "not a regular file"},
		{"ca file writable by others", func(t *testing.T, h *host) string {
			chmod(t, h.ca, 0o666)
			return h.yaml()
		}, "7:35: services[0].check.ca_file", "mode 0666"},
		{"control socket path is a regular file", func(t *testing.T, h *host) string {
			if err := os.WriteFile(filepath.Join(h.dir, "ctl.sock"), nil, 0o600); err != nil {
				t.Fatal(err)
			}
			return h.yaml()
		}, "2:19: control.socket", "exists and is not a socket"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHost(t)
			errs, warns := check(t, tt.setup(t, h))
			one(t, "errors", errs, tt.at, tt.msg)
			if len(warns) != 0 {
				t.Errorf("warnings: %v", warns)
			}
		})
	}
}

func TestCheckWarnings(t *testing.T) {
	t.Run("interface missing", func(t *testing.T) {
		h := newHost(t)
		h.iface = "nosuch0"
		text := strings.Replace(h.yaml(), "vips: [{address: 192.0.2.10/24, interface: nosuch0}]", "vips: [{address: 192.0.2.10/24, interface: lo}]", 1)
		errs, warns := check(t, text)
		if len(errs) != 0 {
			t.Errorf("errors: %v", errs)
		}
		one(t, "warnings", warns, "21:23: failover.links[0].interface", "there is no interface nosuch0 on this host")
	})
	t.Run("notify others can rewrite", func(t *testing.T) {
		h := newHost(t)
		chmod(t, h.notify, 0o757)
		errs, warns := check(t, h.yaml())
		if len(errs) != 0 {
			t.Errorf("errors: %v", errs)
		}
		one(t, "warnings", warns, "19:11: failover.notify", "whoever can rewrite it runs code as root")
	})
	t.Run("serial device missing", func(t *testing.T) {
		h := newHost(t)
		text := strings.Replace(h.yaml(), "links: [{interface: lo, peer: 192.168.50.2}]", "links: [{serial: "+filepath.Join(h.dir, "ttyS9")+"}]", 1)
		errs, warns := check(t, text)
		if len(errs) != 0 {
			t.Errorf("errors: %v", errs)
		}
		one(t, "warnings", warns, "21:20: failover.links[0].serial", "there is no device")
	})
}

// A bare program name resolves through PATH, as exec.Command resolves it
// when directord runs the hook.
func TestCheckProgramInPath(t *testing.T) {
	h := newHost(t)
	t.Setenv("PATH", h.dir)
	h.notify = "notify"
	errs, warns := check(t, h.yaml())
	if len(errs)+len(warns) != 0 {
		t.Errorf("notify found in PATH: errors %v, warnings %v", errs, warns)
	}
}

// A file named once in defaults.check and inherited by several services
// is judged, and reported, once, at the line that names it.
func TestCheckInheritedFileOnce(t *testing.T) {
	h := newHost(t)
	chmod(t, h.ca, 0o666)
	text := "node: lb1\ncontrol: {socket: " + filepath.Join(h.dir, "ctl.sock") + "}\n" +
		"defaults:\n  check: {type: https, ca_file: " + h.ca + "}\n" +
		"services:\n  - {name: a, vip: 192.0.2.10, port: 443}\n  - {name: b, vip: 192.0.2.11, port: 443}\n"
	errs, _ := check(t, text)
	one(t, "errors", errs, "4:33: defaults.check.ca_file", "mode 0666")
}

// config cannot import heartbeat; the limit on a node's name must still be
// the one the heartbeat carries.
func TestNodeNameLimitAgrees(t *testing.T) {
	if config.MaxNodeName != heartbeat.MaxNodeName {
		t.Errorf("config.MaxNodeName %d, heartbeat.MaxNodeName %d", config.MaxNodeName, heartbeat.MaxNodeName)
	}
}

func rm(t *testing.T, path string) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
}

func chmod(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}
