package metrics

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/cloudflare/ipvs"
	"github.com/directorlb/director/config"
)

// startServe runs e.serve on a loopback listener, wrapped by wrap if not
// nil, and returns its address. The server stops at the test's end.
func startServe(t *testing.T, e *Exporter, lim limits, wrap func(net.Listener) net.Listener) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if wrap != nil {
		l = wrap(l)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.serve(ctx, l, lim) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return addr
}

// acceptHook calls onAccept on each connection accepted.
type acceptHook struct {
	net.Listener
	onAccept func(net.Conn) net.Conn
}

func (l acceptHook) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return l.onAccept(c), nil
}

// getPage scrapes addr over a fresh connection and returns the status
// and the (decompressed) body.
func getPage(addr string, gz bool) (int, string, error) {
	tr := &http.Transport{DisableCompression: true, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 20 * time.Second}
	req, _ := http.NewRequest("GET", "http://"+addr+"/metrics", nil)
	if gz {
		req.Header.Set("Accept-Encoding", "gzip")
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	var body io.Reader = resp.Body
	if gz && resp.StatusCode == http.StatusOK {
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			return resp.StatusCode, "", err
		}
		body = zr
	}
	b, err := io.ReadAll(body)
	return resp.StatusCode, string(b), err
}

// A client that asks for /metrics and never reads the answer must
// neither refuse nor hold up anyone else's scrape: two Prometheus servers
// scrape every target.
func TestUnreadScrapeDoesNotStopOthers(t *testing.T) {
	const services, servers = 300, 10
	cfg, k, h := bigFarm(services, servers)
	e := New(Sources{Config: func() *config.Config { return cfg }, Kernel: k, Health: h})
	// Small socket buffers on both ends: the page (megabytes, or a few
	// hundred KB gzipped) cannot fit, so the server's write blocks.
	addr := startServe(t, e, defaultLimits(), func(l net.Listener) net.Listener {
		return acceptHook{l, func(c net.Conn) net.Conn {
			if err := c.(*net.TCPConn).SetWriteBuffer(4096); err != nil {
				t.Error(err)
			}
			return c
		}}
	})
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		return errors.Join(err, serr)
	}}
	countUp := func(body string) int { return strings.Count(body, "\ndirector_realserver_up{") }
	var slow []*bufio.Reader
	for _, gz := range []bool{false, true} {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		req := "GET /metrics HTTP/1.1\r\nHost: slow\r\n"
		if gz {
			req += "Accept-Encoding: gzip\r\n"
		}
		if _, err := io.WriteString(c, req+"\r\n"); err != nil {
			t.Fatal(err)
		}
		// The status line proves the handler is writing the page; the
		// rest is left unread for now.
		br := bufio.NewReader(c)
		if line, err := br.Peek(12); err != nil || string(line) != "HTTP/1.1 200" {
			t.Fatalf("slow client (gzip %v): %q, %v", gz, line, err)
		}
		slow = append(slow, br)
	}
	var wg sync.WaitGroup
	for _, gz := range []bool{false, true} {
		wg.Go(func() {
			code, body, err := getPage(addr, gz)
			if err != nil || code != http.StatusOK {
				t.Errorf("scrape (gzip %v) behind an unread one: %d, %v: %.80q", gz, code, err, body)
				return
			}
			if n := countUp(body); n != services*servers {
				t.Errorf("scrape (gzip %v): %d director_realserver_up samples, want %d", gz, n, services*servers)
			}
		})
	}
	wg.Wait()
	// The slow clients' pages were not overwritten by the later scrapes.
	for i, br := range slow {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		var body io.Reader = resp.Body
		if resp.Header.Get("Content-Encoding") == "gzip" {
			if body, err = gzip.NewReader(resp.Body); err != nil {
				t.Fatal(err)
			}
		}
		b, err := io.ReadAll(body)
		if n := countUp(string(b)); err != nil || n != services*servers {
			t.Errorf("slow client %d, read at last: %v, %d director_realserver_up samples, want %d", i, err, n, services*servers)
		}
	}
}

// gatedKernel blocks its first Services call until release is closed,
// and counts the calls.
type gatedKernel struct {
	*fakeKernel
	calls   atomic.Int32
	entered chan struct{}
	release chan struct{}
}

func (k *gatedKernel) Services() ([]ipvs.ServiceExtended, error) {
	if k.calls.Add(1) == 1 {
		close(k.entered)
		<-k.release
	}
	return k.fakeKernel.Services()
}

// Scrapes that arrive while one is reading the kernel wait for it and
// share its page: every one is answered, and the kernel is read once.
func TestConcurrentScrapesShareOneGather(t *testing.T) {
	cfg, fk := farm(t)
	k := &gatedKernel{fakeKernel: fk, entered: make(chan struct{}), release: make(chan struct{})}
	e := New(Sources{Config: func() *config.Config { return cfg }, Kernel: k, Health: fakeHealth{}})
	srv := httptest.NewServer(e.Handler())
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	type result struct {
		code int
		body string
		err  error
	}
	results := make(chan result, 3)
	scrape := func() {
		code, body, err := getPage(addr, false)
		results <- result{code, body, err}
	}
	go scrape()
	<-k.entered
	go scrape()
	go scrape()
	// Wait until both have joined the gather in progress; none may be
	// answered before the kernel read ends.
	for e.waiting() < 2 {
		select {
		case r := <-results:
			close(k.release)
			t.Fatalf("a scrape during a gather was answered early: %d %v %.80q", r.code, r.err, r.body)
		case <-time.After(time.Millisecond):
		}
	}
	close(k.release)
	var bodies []string
	for range 3 {
		r := <-results
		if r.err != nil || r.code != http.StatusOK {
			t.Fatalf("scrape: %d %v %.80q", r.code, r.err, r.body)
		}
		bodies = append(bodies, r.body)
	}
	if bodies[0] != bodies[1] || bodies[1] != bodies[2] {
		t.Error("scrapes that shared a gather got different pages")
	}
	if n := k.calls.Load(); n != 1 {
		t.Errorf("the kernel was read %d times for three concurrent scrapes, want 1", n)
	}
	// A scrape after the shared one gathers afresh.
	if code, _, err := getPage(addr, true); code != http.StatusOK || err != nil || k.calls.Load() != 2 {
		t.Errorf("a later scrape: %d %v, kernel reads %d, want 2", code, err, k.calls.Load())
	}
}

// countingListener tracks how many accepted connections are open at
// once, and reports each accept.
type countingListener struct {
	net.Listener
	mu       sync.Mutex
	open     int
	maxOpen  int
	accepted chan struct{}
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.open++
	l.maxOpen = max(l.maxOpen, l.open)
	l.mu.Unlock()
	l.accepted <- struct{}{}
	return &countedConn{Conn: c, l: l}, nil
}

type countedConn struct {
	net.Conn
	l    *countingListener
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		c.l.open--
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}

// closedByServer waits (up to bound) for the server to close c, and
// reports how long that took.
func closedByServer(c net.Conn, bound time.Duration) (time.Duration, error) {
	start := time.Now()
	_ = c.SetReadDeadline(start.Add(bound))
	_, err := io.Copy(io.Discard, c)
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		return time.Since(start), fmt.Errorf("not closed by the server: %w", err)
	}
	return time.Since(start), nil
}

// Idle connections are bounded in number and in time: beyond the limit
// a connection waits to be accepted, one that never sends a request is
// closed after the header timeout, and a kept-alive one after the idle
// timeout.
func TestConnectionsAreLimitedAndIdleOnesClosed(t *testing.T) {
	cfg, k := farm(t)
	e := New(Sources{Config: func() *config.Config { return cfg }, Kernel: k, Health: fakeHealth{}})
	lim := defaultLimits()
	lim.readHeader, lim.read, lim.idle, lim.maxConns = 300*time.Millisecond, time.Second, 300*time.Millisecond, 2
	cl := &countingListener{accepted: make(chan struct{}, 16)}
	addr := startServe(t, e, lim, func(l net.Listener) net.Listener { cl.Listener = l; return cl })
	accepted := func(what string) {
		t.Helper()
		select {
		case <-cl.accepted:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s was never accepted", what)
		}
	}
	var idle []net.Conn
	for i := range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		accepted(fmt.Sprintf("idle connection %d", i))
		idle = append(idle, c)
	}
	// A scrape beyond the limit: the kernel completes its handshake,
	// the server accepts it once an idle one is gone.
	sc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	if _, err := io.WriteString(sc, "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	for i, c := range idle {
		if took, err := closedByServer(c, 5*time.Second); err != nil {
			t.Fatalf("idle connection %d without a request, after %v: %v", i, took, err)
		}
	}
	accepted("the scrape")
	_ = sc.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(sc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("director_build_info")) {
		t.Fatalf("scrape: %d %v", resp.StatusCode, err)
	}
	// Kept alive after its answer, it is closed once idle too long.
	if took, err := closedByServer(sc, 5*time.Second); err != nil {
		t.Fatalf("kept-alive connection after %v: %v", took, err)
	}
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.maxOpen > 2 {
		t.Errorf("%d connections were open at once, limit 2", cl.maxOpen)
	}
}

// failingListener fails its first Accepts with errs, as accept(2) does
// when descriptors or buffers run out, then accepts.
type failingListener struct {
	net.Listener
	mu   sync.Mutex
	errs []syscall.Errno
}

func (l *failingListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if len(l.errs) > 0 {
		errno := l.errs[0]
		l.errs = l.errs[1:]
		l.mu.Unlock()
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: os.NewSyscallError("accept4", errno)}
	}
	l.mu.Unlock()
	return l.Listener.Accept()
}

// Running out of descriptors or buffers for a moment must not stop the
// metrics endpoint.
func TestMetricsSurviveAcceptErrors(t *testing.T) {
	e := New(Sources{Config: func() *config.Config { return nil }, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fl := &failingListener{Listener: l, errs: []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.serve(ctx, fl, defaultLimits()) }()
	got := make(chan error, 1)
	go func() {
		code, _, err := getPage(l.Addr().String(), false)
		if err == nil && code != http.StatusOK {
			err = fmt.Errorf("status %d", code)
		}
		got <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("serve stopped on an accept error: %v", err)
	case err := <-got:
		if err != nil {
			t.Fatalf("scrape after accept errors: %v", err)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("serve after cancel: %v", err)
	}
}

// BenchmarkScrapePage10kServices10Servers is what /metrics does per
// scrape: gather 10,000 services x 10 real servers into the gzipped page
// that the scrapes then share. The goal is BenchmarkScrape10kServices10Servers's.
func BenchmarkScrapePage10kServices10Servers(b *testing.B) {
	cfg, k, h := bigFarm(10000, 10)
	e := New(Sources{Config: func() *config.Config { return cfg }, Kernel: k, Health: h, Reconciles: &fakeReconciles{}})
	runtime.GC()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		b.Fatal(err)
	}
	before := statusKB("VmRSS")
	var size int
	b.ResetTimer()
	for b.Loop() {
		p, err := e.page(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		size = len(p.gz)
		e.release(p)
	}
	b.StopTimer()
	b.ReportMetric(float64(statusKB("VmHWM")-before)/1024, "peak-rss-growth-MB")
	b.ReportMetric(float64(size)/1e6, "page-MB")
}

// A shared page's buffer goes back for reuse only when the last scrape
// holding it lets go: a slow reader's page is never overwritten by a
// later gather.
func TestSharedPageReusedOnlyWhenReleased(t *testing.T) {
	cfg, fk := farm(t)
	k := &gatedKernel{fakeKernel: fk, entered: make(chan struct{}), release: make(chan struct{})}
	e := New(Sources{Config: func() *config.Config { return cfg }, Kernel: k, Health: fakeHealth{}})
	pages := make(chan *page, 2)
	get := func() {
		p, err := e.page(context.Background())
		if err != nil {
			t.Error(err)
		}
		pages <- p
	}
	go get()
	<-k.entered
	go get()
	for e.waiting() < 1 {
		time.Sleep(time.Millisecond) // polling for the join; nothing to wait on
	}
	close(k.release)
	a, b := <-pages, <-pages
	if a != b || a.refs != 2 {
		t.Fatalf("two scrapes in one gather got pages %p %p, refs %d", a, b, a.refs)
	}
	held := unsafe.SliceData(a.gz)
	spare := func() *byte {
		e.fmu.Lock()
		defer e.fmu.Unlock()
		return unsafe.SliceData(e.spare)
	}
	e.release(a)
	if spare() == held {
		t.Fatal("the page was offered for reuse while a scrape still held it")
	}
	c, err := e.page(context.Background())
	if err != nil || unsafe.SliceData(c.gz) == held {
		t.Fatalf("a later gather wrote into a held page (%v)", err)
	}
	e.release(b)
	if spare() != held {
		t.Error("the page's buffer was not kept for reuse once released")
	}
	e.release(c)
}
