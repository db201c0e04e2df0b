package checks

import (
	"crypto/md5"
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/directorlb/director/config"
)

func TestFileCheck(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		path    string
		weight  int    // when healthy
		errLike string // "" means healthy
	}{
		{"zero", write("zero", "0\n"), 0, "holds 0: failed"},
		{"negative", write("neg", "-3"), 0, "holds -3: failed"},
		{"one", write("one", " 1 \n"), 1, ""},
		{"50", write("fifty", "50\n"), 50, ""},
		{"100", write("full", "100\n"), 100, ""},
		{"250 is clamped", write("big", "250"), 100, ""},
		{"not a number", write("word", "up\n"), 0, `"up" is not an integer`},
		{"empty", write("empty", ""), 0, "is not an integer"},
		{"too long", write("long", strings.Repeat("1", 100)), 0, "longer than"},
		{"missing", filepath.Join(dir, "none"), 0, "no such file"},
		{"fifo does not block", fifo, 0, "not a regular file"},
		{"directory", dir, 0, "not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := probeWithin(t, FileCheck{Path: tt.path}, netip.MustParseAddrPort("192.0.2.1:80"), time.Second)
			wantResult(t, r, tt.errLike)
			if r.OK && r.Weight != tt.weight {
				t.Errorf("weight %d, want %d", r.Weight, tt.weight)
			}
		})
	}
}

func TestHTTPDigest(t *testing.T) {
	const page = "<html>all good</html>\n"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/big" {
			w.Write(make([]byte, maxDigestBody+1))
			return
		}
		fmt.Fprint(w, page)
	}))
	t.Cleanup(srv.Close)
	target := serverAddr(t, srv)
	md5sum := fmt.Sprintf("md5:%x", md5.Sum([]byte(page)))
	shasum := fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(page)))
	tests := []struct {
		name    string
		o       HTTPOptions
		errLike string
	}{
		{"md5", HTTPOptions{Digest: md5sum}, ""},
		{"sha256", HTTPOptions{Digest: shasum}, ""},
		{"md5 and body", HTTPOptions{Digest: md5sum, BodyRegexp: "all good"}, ""},
		{"md5 and wrong body", HTTPOptions{Digest: md5sum, BodyRegexp: "broken"}, "body does not match"},
		{"wrong md5", HTTPOptions{Digest: "md5:00000000000000000000000000000000"}, "body digest md5:" + md5sum[4:] + ", want md5:0000"},
		{"wrong sha256", HTTPOptions{Digest: "sha256:" + strings.Repeat("ab", 32)}, "body digest sha256:"},
		{"too big", HTTPOptions{Path: "/big", Digest: md5sum}, "body longer than the 1048576 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantResult(t, probeWithin(t, mustHTTP(t, tt.o), target, 2*time.Second), tt.errLike)
		})
	}
	if _, err := NewHTTP(HTTPOptions{Digest: "sha1:abcd"}); err == nil {
		t.Error("NewHTTP took a digest that is not md5 or sha256")
	}
}

// TestExecWeightFromExit: keepalived's misc_dynamic exit codes.
func TestExecWeightFromExit(t *testing.T) {
	tests := []struct {
		script         string
		weightFromExit bool
		weight         int // when healthy
		errLike        string
	}{
		{"exit 0", true, NoWeight, ""},
		{"exit 1", true, 0, "exit status 1"},
		{"exit 2", true, 0, ""},
		{"exit 52", true, 50, ""},
		{"exit 102", true, 100, ""},
		{"exit 255", true, 253, ""},
		{"kill -9 $$", true, 0, "signal: killed"},
		{"exit 52", false, 0, "exit status 52"},
		{"echo 30; exit 0", true, NoWeight, ""}, // output means nothing here
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%v", tt.script, tt.weightFromExit), func(t *testing.T) {
			e := Exec{Argv: []string{"/bin/sh", "-c", tt.script}, WeightFromExit: tt.weightFromExit}
			r := probeWithin(t, e, netip.MustParseAddrPort("192.0.2.1:80"), 2*time.Second)
			wantResult(t, r, tt.errLike)
			if r.OK && r.Weight != tt.weight {
				t.Errorf("weight %d, want %d", r.Weight, tt.weight)
			}
		})
	}
}

// TestNativeFromConfig: from the YAML to the probe specs and probers of
// the smtp, banner and file checks, the digest and weight_from_exit; an
// inherited password without a user makes no login.
func TestNativeFromConfig(t *testing.T) {
	const yaml = `
defaults:
  check: {type: banner, protocol: pop3, user: alice, password_env: POP_PW}
services:
  - name: pop
    vip: 192.0.2.10
    port: 110
    real_servers: [{address: 10.1.0.11}]
  - name: ftp
    vip: 192.0.2.10
    port: 21
    check: {protocol: ftp}
    real_servers: [{address: 10.1.0.11}]
  - name: mail
    vip: 192.0.2.10
    port: 25
    check: {type: smtp, helo_name: lb1.example.com}
    real_servers: [{address: 10.1.0.11}]
  - name: file
    vip: 192.0.2.10
    port: 80
    check: {type: file, file: /run/weights/app}
    real_servers: [{address: 10.1.0.11}]
  - name: web
    vip: 192.0.2.10
    port: 81
    check: {type: http, digest: 9E107D9D372BB6826BD81D3542A419D6}
    real_servers: [{address: 10.1.0.11}]
  - name: misc
    vip: 192.0.2.10
    port: 82
    check: {type: exec, command: [/bin/check], weight_from_exit: true}
    real_servers: [{address: 10.1.0.11}]
`
	t.Setenv("POP_PW", "s3cret")
	cfg, err := config.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	specs, err := LoadSpecs(cfg)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]ProbeSpec{}
	for _, s := range specs {
		got[s.Service] = s.Probe
	}
	if b := got["pop"].Banner; b.Protocol != "pop3" || b.Login.User != "alice" || b.Login.Password.Value() != "s3cret" {
		t.Errorf("pop: %+v", b)
	}
	if b := got["ftp"].Banner; b.Protocol != "ftp" || b.Login.Password.Value() != "s3cret" {
		t.Errorf("ftp: %+v", b)
	}
	if s := got["mail"].SMTP; s.HeloName != "lb1.example.com" {
		t.Errorf("mail: %+v", s)
	}
	if f := got["file"].File; f != (FileCheck{Path: "/run/weights/app"}) {
		t.Errorf("file: %+v", f)
	}
	if d := got["web"].HTTP.Digest; d != "md5:9e107d9d372bb6826bd81d3542a419d6" {
		t.Errorf("web digest %q", d)
	}
	if p := got["misc"]; !p.WeightFromExit || p.DynamicWeight {
		t.Errorf("misc: %+v", p)
	}
	for name, want := range map[string]Prober{
		"mail": SMTP{HeloName: "lb1.example.com"},
		"file": FileCheck{Path: "/run/weights/app"},
		"misc": Exec{Argv: []string{"/bin/check"}, WeightFromExit: true},
	} {
		if p := NewProber(got[name]); fmt.Sprint(p) != fmt.Sprint(want) {
			t.Errorf("%s: prober %+v, want %+v", name, p, want)
		}
	}
	if _, ok := NewProber(got["pop"]).(Banner); !ok {
		t.Errorf("pop: prober %T", NewProber(got["pop"]))
	}
	if _, ok := NewProber(got["web"]).(*HTTP); !ok {
		t.Errorf("web: prober %T", NewProber(got["web"]))
	}
	// No user: no login, and the password does not reach the spec.
	c := cfg.Service("pop").Check
	c.User = ""
	if l := FromConfig(c, &cfg.Service("pop").RealServers[0]).Banner.Login; l != (SQLOptions{}) {
		t.Errorf("login without a user: %+v", l)
	}
}
