package checks

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/directorlb/director/config"
)

// withinT runs f and fails the test if it has not returned within d: a
// read that blocks (a FIFO) shows as a failure, not a hung test.
func withinT[T any](t *testing.T, d time.Duration, f func() T) T {
	t.Helper()
	ch := make(chan T, 1)
	go func() { ch <- f() }()
	select {
	case v := <-ch:
		return v
	case <-time.After(d):
		t.Fatalf("still blocked after %s", d)
		panic("unreachable")
	}
}

// fileDir is a root-owned 0755 directory for password and CA files.
func fileDir(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: password and CA files must be owned by uid 0")
	}
	d := t.TempDir()
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

func writeMode(t *testing.T, path, data string, perm os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, perm); err != nil {
		t.Fatal(err)
	}
}

func sqlConfig(t *testing.T, typ, pwFile string, target netip.AddrPort) *config.Config {
	t.Helper()
	yaml := `
services:
  - name: db
    vip: 192.0.2.10
    port: ` + itoa(int(target.Port())) + `
    check: {type: ` + typ + `, user: checker, password_file: ` + pwFile + `, timeout: 1s, interval: 2s}
    real_servers: [{address: ` + target.Addr().String() + `}]
`
	cfg, err := config.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func httpsConfig(t *testing.T, caFile string) *config.Config {
	t.Helper()
	yaml := `
services:
  - name: web
    vip: 192.0.2.10
    port: 443
    check: {type: https, ca_file: ` + caFile + `}
    real_servers: [{address: 127.0.0.1}]
`
	cfg, err := config.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func itoa(n int) string { return strconv.Itoa(n) }

// fakePostgres accepts one connection at a time, asks for a cleartext
// password and sends every password it receives to the returned channel.
func fakePostgres(t *testing.T) (netip.AddrPort, <-chan string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	got := make(chan string, 16)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				var n uint32
				if binary.Read(c, binary.BigEndian, &n) != nil || n < 8 || n > 10000 {
					return
				}
				if _, err := io.CopyN(io.Discard, c, int64(n-4)); err != nil { // the startup message
					return
				}
				// AuthenticationCleartextPassword.
				c.Write([]byte{'R', 0, 0, 0, 8, 0, 0, 0, 3})
				var typ [1]byte
				if _, err := io.ReadFull(c, typ[:]); err != nil || typ[0] != 'p' {
					return
				}
				if binary.Read(c, binary.BigEndian, &n) != nil || n < 5 || n > 10000 {
					return
				}
				b := make([]byte, n-4)
				if _, err := io.ReadFull(c, b); err != nil {
					return
				}
				got <- string(bytes.TrimSuffix(b, []byte{0}))
			}()
		}
	}()
	return netip.MustParseAddrPort(l.Addr().String()), got
}

func probeOnce(t *testing.T, p Prober, target netip.AddrPort) Result {
	t.Helper()
	return withinT(t, 5*time.Second, func() Result {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return p.Probe(ctx, target)
	})
}

// loadWithin runs LoadSpecs, failing the test if it blocks.
func loadWithin(t *testing.T, cfg *config.Config) ([]Spec, error) {
	t.Helper()
	type res struct {
		specs []Spec
		err   error
	}
	r := withinT(t, 5*time.Second, func() res { s, err := LoadSpecs(cfg); return res{s, err} })
	return r.specs, r.err
}

func wantLoadError(t *testing.T, err error, says ...string) {
	t.Helper()
	var errs config.Errors
	if !errors.As(err, &errs) {
		t.Fatalf("LoadSpecs: %v, want config.Errors", err)
	}
	for _, want := range says {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

func TestPasswordFileFIFODoesNotHang(t *testing.T) {
	d := fileDir(t)
	fifo := filepath.Join(d, "pw")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	target, _ := fakePostgres(t)
	_, err := loadWithin(t, sqlConfig(t, "postgres", fifo, target))
	wantLoadError(t, err, "test.yaml:", "services[0].check.password_file", fifo, "not a regular file")
}

func TestCAFileFIFODoesNotHang(t *testing.T) {
	d := fileDir(t)
	fifo := filepath.Join(d, "ca.pem")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := loadWithin(t, httpsConfig(t, fifo))
	wantLoadError(t, err, "services[0].check.ca_file", fifo, "not a regular file")
	// A spec made without LoadSpecs is built without blocking too.
	p := withinT(t, 5*time.Second, func() Prober { return NewProber(SpecsFor(httpsConfig(t, fifo))[0].Probe) })
	if r := p.Probe(t.Context(), netip.MustParseAddrPort("127.0.0.1:1")); r.OK || !strings.Contains(r.Err.Error(), "not a regular file") {
		t.Errorf("prober built on a FIFO CA file: %+v", r)
	}
}

func TestPasswordFileInsecureRefused(t *testing.T) {
	d := fileDir(t)
	pw := filepath.Join(d, "pw")
	writeMode(t, pw, "secret-one\n", 0o644)
	target, _ := fakePostgres(t)
	_, err := loadWithin(t, sqlConfig(t, "postgres", pw, target))
	wantLoadError(t, err, pw, "0644", "chown root:root "+pw+" && chmod 0600 "+pw)
	if err := os.Chown(pw, 65534, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(pw, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = loadWithin(t, sqlConfig(t, "postgres", pw, target))
	wantLoadError(t, err, pw, "uid 65534")
	if strings.Contains(err.Error(), "secret-one") {
		t.Errorf("the error shows the password: %v", err)
	}
}

func TestPasswordFileMissingOrTooBig(t *testing.T) {
	d := fileDir(t)
	pw := filepath.Join(d, "pw")
	target, _ := fakePostgres(t)
	_, err := loadWithin(t, sqlConfig(t, "mysql", pw, target))
	wantLoadError(t, err, pw, "does not exist")
	writeMode(t, pw, "", 0o600)
	if err := os.Truncate(pw, 1<<40); err != nil { // a sparse terabyte
		t.Fatal(err)
	}
	_, err = loadWithin(t, sqlConfig(t, "mysql", pw, target))
	wantLoadError(t, err, pw, "more than the 4096")
}

func TestCAFileWritableByOthersRefused(t *testing.T) {
	d := fileDir(t)
	ca := filepath.Join(d, "ca.pem")
	writeMode(t, ca, "not pem", 0o666)
	_, err := loadWithin(t, httpsConfig(t, ca))
	wantLoadError(t, err, ca, "0666", "chmod 0644 "+ca)
}

func TestPasswordReadOncePerLoad(t *testing.T) {
	d := fileDir(t)
	pw := filepath.Join(d, "pw")
	writeMode(t, pw, "secret-one\n", 0o600)
	target, got := fakePostgres(t)
	cfg := sqlConfig(t, "postgres", pw, target)
	specs, err := loadWithin(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := NewProber(specs[0].Probe)
	writeMode(t, pw, "secret-two\n", 0o600)
	probeOnce(t, p, target)
	if s := <-got; s != "secret-one" {
		t.Errorf("after the file changed, without a reload, the probe sent %q, want the password read at load", s)
	}
	// A reload reads it again, and the new password makes a new probe
	// stream (a new key), so the engine builds a prober that uses it.
	again, err := loadWithin(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if again[0].Probe.Key() == specs[0].Probe.Key() {
		t.Error("a changed password left the probe's key unchanged: a reload would keep the old prober")
	}
	probeOnce(t, NewProber(again[0].Probe), target)
	if s := <-got; s != "secret-two" {
		t.Errorf("after a reload the probe sent %q, want secret-two", s)
	}
	// The same password gives the same key: a reload changes nothing.
	if same, _ := loadWithin(t, cfg); same[0].Probe.Key() != again[0].Probe.Key() {
		t.Error("an unchanged password changed the probe's key")
	}
}

// TestPasswordNeverShown: the loaded password is in no printed or
// encoded form of a spec.
func TestPasswordNeverShown(t *testing.T) {
	d := fileDir(t)
	pw := filepath.Join(d, "pw")
	writeMode(t, pw, "secret-one\n", 0o600)
	target, _ := fakePostgres(t)
	specs, err := loadWithin(t, sqlConfig(t, "postgres", pw, target))
	if err != nil {
		t.Fatal(err)
	}
	if specs[0].Probe.SQL.Password.Value() != "secret-one" {
		t.Fatalf("password %q, want secret-one", specs[0].Probe.SQL.Password.Value())
	}
	j, _ := json.Marshal(specs[0])
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("spec", "spec", specs[0], "password", specs[0].Probe.SQL.Password)
	for _, form := range []string{fmt.Sprint(specs[0]), fmt.Sprintf("%+v", specs[0]), fmt.Sprintf("%#v", specs[0]), string(j),
		logged.String(), specs[0].Probe.Key()} {
		if strings.Contains(form, "secret-one") {
			t.Errorf("the password shows in %s", form)
		}
	}
}

// TestPasswordEnvReadAtLoad: password_env is read once per load too; an
// unset variable still fails the probes (not the load), saying so.
func TestPasswordEnvReadAtLoad(t *testing.T) {
	target, got := fakePostgres(t)
	yaml := `
services:
  - name: db
    vip: 192.0.2.10
    port: ` + itoa(int(target.Port())) + `
    check: {type: postgres, user: checker, password_env: CHECKS_FILES_TEST_PW}
    real_servers: [{address: ` + target.Addr().String() + `}]
`
	cfg, err := config.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	specs, err := LoadSpecs(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if r := probeOnce(t, NewProber(specs[0].Probe), target); r.OK || !strings.Contains(r.Err.Error(), "CHECKS_FILES_TEST_PW is not set") {
		t.Errorf("unset variable: %+v", r)
	}
	t.Setenv("CHECKS_FILES_TEST_PW", "env-one")
	if specs, err = LoadSpecs(cfg); err != nil {
		t.Fatal(err)
	}
	p := NewProber(specs[0].Probe)
	os.Setenv("CHECKS_FILES_TEST_PW", "env-two")
	probeOnce(t, p, target)
	if s := <-got; s != "env-one" {
		t.Errorf("the probe sent %q, want the value at load", s)
	}
}
