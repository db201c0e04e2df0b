//go:build browser

package statuspage

// The browser test: a real directord, in the lab VM (IPVS is the guest
// kernel's), serves the page to headless Chromium on the host, and the
// rendered DOM is checked as a real server goes down.
//
//	go test -tags browser -run TestStatusPageInChromium -v ./statuspage
//
// It needs qemu, the lab's kernel cache (as `lab test` does) and Debian's
// chromium, and takes the lab lock (/tmp/director-lab.lock) while the VM
// runs. The screenshot is kept under the lab cache (its path is logged).
//
// Why this shape: Chromium is a host program with a large tree of
// libraries and the guest has neither a display stack nor room for it,
// so the browser stays on the host and the page comes out of the guest
// through qemu's user network (lab.VM.HostForward); the guest program
// (lab/cmd/statuspage-guest) holds the farm and does what the test asks
// over a second forwarded port.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/directorlb/director/lab"
	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// labLock is the lock every lab VM is run under: one VM at a time.
const labLock = "/tmp/director-lab.lock"

func TestStatusPageInChromium(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium not found (scripts/deps installs Debian's chromium): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()

	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	b := &lab.Builder{Dir: root, Out: out}
	var bins []string
	for _, pkg := range []string{"./lab/cmd/labinit", "./cmd/directord", "./lab/cmd/statuspage-guest"} {
		bin, err := b.Binary(ctx, pkg)
		if err != nil {
			t.Fatal(err)
		}
		bins = append(bins, bin)
	}
	cacheDir := labCache()
	cache := &lab.KernelCache{Dir: cacheDir, Source: &lab.Apt{Logf: t.Logf}, Logf: t.Logf}
	k, err := cache.Kernel(ctx, append(slices.Clone(lab.DefaultModules), lab.NICModules...))
	if err != nil {
		t.Fatal(err)
	}
	nonce := make([]byte, 8)
	_, _ = rand.Read(nonce)
	initrd := filepath.Join(out, "initramfs.cpio")
	payload := lab.Payload{
		Files:    []lab.File{{Src: bins[1], Dst: "/bin/directord"}, {Src: bins[2], Dst: "/bin/statuspage-guest"}},
		Commands: []lab.Command{{Name: "statuspage-guest", Argv: []string{"/bin/statuspage-guest"}}},
	}
	if err := lab.WriteInitramfs(initrd, bins[0], k, hex.EncodeToString(nonce), payload); err != nil {
		t.Fatal(err)
	}
	pagePort, ctlPort := freePort(t), freePort(t)
	page := fmt.Sprintf("http://127.0.0.1:%d/", pagePort)
	control := fmt.Sprintf("http://127.0.0.1:%d/", ctlPort)

	unlock := lock(t)
	defer unlock()
	vm := &lab.VM{Kernel: k.Vmlinuz, Initrd: initrd, Nonce: hex.EncodeToString(nonce), Accel: "tcg", Memory: 1024, CPUs: 2,
		Timeout: 12 * time.Minute, Output: &logWriter{t: t, prefix: "guest: "},
		HostForward: []string{fmt.Sprintf("tcp:127.0.0.1:%d-:9100", pagePort), fmt.Sprintf("tcp:127.0.0.1:%d-:8080", ctlPort)}}
	// vmDone is closed when qemu has ended, with res and vmErr set.
	vmDone := make(chan struct{})
	var res *lab.Result
	var vmErr error
	go func() {
		defer close(vmDone)
		res, vmErr = vm.Run(ctx)
	}()
	poweredOff := false
	defer func() {
		if !poweredOff {
			_, _ = post(control + "poweroff")
			cancel() // kills qemu if the guest does not end
			<-vmDone
		}
	}()

	// The guest answers /ready once directord is; until then qemu accepts
	// and the guest refuses, or qemu is still booting.
	if err := until(ctx, vmDone, 8*time.Minute, func() error { _, err := get(control + "ready"); return err }); err != nil {
		t.Fatalf("the guest never got ready: %v", err)
	}
	// Both real servers enter at their first successful check.
	if err := until(ctx, vmDone, 60*time.Second, func() error { return states(page, map[string]string{"10.0.11.11:80": "up", "10.0.12.12:80": "up"}) }); err != nil {
		t.Fatalf("the page never showed both real servers up: %v", err)
	}
	dom := dumpDOM(t, ctx, chromium, page)
	assertDOM(t, dom, map[string]string{"10.0.11.11:80": "up", "10.0.12.12:80": "up"})

	if _, err := post(control + "stop?rs=rs2"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	// fall 2 x interval 500ms + timeout 300ms, under emulation: 60s is
	// for a host busy elsewhere.
	if err := until(ctx, vmDone, 60*time.Second, func() error { return states(page, map[string]string{"10.0.11.11:80": "up", "10.0.12.12:80": "down"}) }); err != nil {
		t.Fatalf("the page never showed rs2 down: %v", err)
	}
	t.Logf("the page showed rs2 down %v after its server stopped", time.Since(start).Round(time.Millisecond))
	dom = dumpDOM(t, ctx, chromium, page)
	root2 := assertDOM(t, dom, map[string]string{"10.0.11.11:80": "up", "10.0.12.12:80": "down"})
	// The check's transition is in the recent changes, as the browser
	// shows them.
	var down bool
	for _, ev := range find(root2, func(n *html.Node) bool { return n.DataAtom == atom.Tr && strings.HasPrefix(attr(n, "class"), "event ") }) {
		if strings.Contains(text(ev), "check web 10.0.12.12:80 down") {
			down = true
		}
	}
	if !down {
		t.Errorf("the recent changes do not list rs2 going down")
	}
	shot := screenshot(t, ctx, chromium, page, cacheDir)
	t.Logf("screenshot of the page with rs2 down: %s", shot)

	if _, err := post(control + "poweroff"); err != nil {
		t.Fatal(err)
	}
	poweredOff = true
	select {
	case <-vmDone:
		if vmErr != nil {
			t.Fatalf("the VM: %v", vmErr)
		}
	case <-ctx.Done():
		t.Fatal("the guest did not power off")
	}
	if len(res.Commands) != 1 || res.Commands[0].Status != 0 {
		t.Errorf("the guest program: %+v", res.Commands)
	}
}

// assertDOM checks the rendered document: the page's title and node,
// and each real server's row with its state in words.
func assertDOM(t *testing.T, dom string, want map[string]string) *html.Node {
	t.Helper()
	root, err := html.Parse(strings.NewReader(dom))
	if err != nil {
		t.Fatal(err)
	}
	if h := find(root, func(n *html.Node) bool { return n.DataAtom == atom.H1 }); len(h) != 1 || !strings.HasPrefix(text(h[0]), "director ") {
		t.Errorf("no heading in the rendered page:\n%s", dom)
	}
	rs := rows(root)
	for addr, st := range want {
		row := rs[addr]
		if row == nil {
			t.Errorf("no row for %s in the rendered page", addr)
			continue
		}
		cells := find(row, func(n *html.Node) bool { return n.DataAtom == atom.Td })
		if len(cells) < 2 || text(cells[1]) != st {
			t.Errorf("%s: the browser shows %q, want %q", addr, text(row), st)
		}
	}
	return root
}

// states fetches the page and reports whether the real servers are in
// the states wanted (nil) or what they are in.
func states(url string, want map[string]string) error {
	body, err := get(url)
	if err != nil {
		return err
	}
	root, err := html.Parse(strings.NewReader(body))
	if err != nil {
		return err
	}
	rs := rows(root)
	for addr, st := range want {
		if rs[addr] == nil {
			return fmt.Errorf("no row for %s", addr)
		}
		if got := attr(rs[addr], "data-state"); got != st {
			return fmt.Errorf("%s is %s", addr, got)
		}
	}
	return nil
}

// until calls f until it returns nil, the VM ends, or within passes.
func until(ctx context.Context, vmDone <-chan struct{}, within time.Duration, f func() error) error {
	deadline := time.Now().Add(within)
	for {
		err := f()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		select {
		case <-vmDone:
			return fmt.Errorf("the VM ended while waiting; last: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// chromiumArgs run it headless as root (the sandbox needs a user
// namespace it may not have), with a profile of its own, and give the
// page its time to load (the page has no script: load is the end).
func chromiumArgs(profile string, more ...string) []string {
	return append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--user-data-dir=" + profile,
		"--window-size=1280,1000", "--timeout=20000"}, more...)
}

func dumpDOM(t *testing.T, ctx context.Context, chromium, url string) string {
	t.Helper()
	cmd := exec.CommandContext(ctx, chromium, chromiumArgs(t.TempDir(), "--dump-dom", url)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium --dump-dom: %v\n%s", err, stderr.String())
	}
	return string(out)
}

// screenshot saves the page as Chromium renders it, as the test's
// artefact: under the lab cache, kept across runs (the newest replaces
// the last).
func screenshot(t *testing.T, ctx context.Context, chromium, url, cacheDir string) string {
	t.Helper()
	dir := filepath.Join(cacheDir, "artefacts")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "statuspage.png")
	_ = os.Remove(file)
	cmd := exec.CommandContext(ctx, chromium, chromiumArgs(t.TempDir(), "--screenshot="+file, url)...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chromium --screenshot: %v\n%s", err, b)
	}
	b, err := os.ReadFile(file)
	if err != nil || !bytes.HasPrefix(b, []byte("\x89PNG")) {
		t.Fatalf("no PNG screenshot at %s: %v", file, err)
	}
	return file
}

func get(url string) (string, error) {
	c := &http.Client{Timeout: 10 * time.Second}
	res, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err == nil && res.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s", url, res.Status)
	}
	return string(b), err
}

func post(url string) (string, error) {
	c := &http.Client{Timeout: 10 * time.Second}
	res, err := c.Post(url, "text/plain", nil)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err == nil && res.StatusCode != http.StatusOK {
		err = fmt.Errorf("POST %s: %s: %s", url, res.Status, b)
	}
	return string(b), err
}

// freePort is a port free on the host's loopback now, for qemu to bind.
func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// lock takes the lab lock, as `flock /tmp/director-lab.lock` does,
// waiting for whoever holds it.
func lock(t *testing.T) func() {
	f, err := os.OpenFile(labLock, os.O_RDONLY|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("waiting for the lab lock %s", labLock)
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		t.Fatal(err)
	}
	t.Logf("lab lock taken")
	return func() { f.Close() }
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside the director module")
	}
	return filepath.Dir(mod), nil
}

// labCache is the lab's kernel cache, as lab's -cache default.
func labCache() string {
	if d := os.Getenv("DIRECTOR_LAB_CACHE"); d != "" {
		return d
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "director-lab")
	}
	return "/var/cache/director-lab"
}

// logWriter logs the guest's console through the test's log, a line at
// a time.
type logWriter struct {
	t      *testing.T
	prefix string
	buf    []byte
}

func (w *logWriter) Write(b []byte) (int, error) {
	w.buf = append(w.buf, b...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(b), nil
		}
		w.t.Log(w.prefix + string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
}
