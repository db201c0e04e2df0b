package topo

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Listen opens a listener inside the host.
func (h *Host) Listen(network, addr string) (net.Listener, error) {
	var l net.Listener
	err := h.Do(func() (err error) {
		l, err = net.Listen(network, addr)
		return err
	})
	return l, err
}

// ListenPacket opens a packet socket (UDP) inside the host.
func (h *Host) ListenPacket(network, addr string) (net.PacketConn, error) {
	var c net.PacketConn
	err := h.Do(func() (err error) {
		c, err = net.ListenPacket(network, addr)
		return err
	})
	return c, err
}

// Dial connects from inside the host.
func (h *Host) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if ap, err := netip.ParseAddrPort(addr); err == nil && strings.HasPrefix(network, "tcp") {
		return h.dialTCP(ctx, ap)
	}
	var c net.Conn
	err := h.inside(func() (err error) {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// dialTCP is Dial of a TCP address. Only the socket is made inside the
// namespace (a socket stays in the one it was made in); the connection
// is awaited like any other, so a client with many connections in
// flight does not hold a thread of the host for each, which on an
// emulated guest costs more than the connections themselves.
func (h *Host) dialTCP(ctx context.Context, ap netip.AddrPort) (net.Conn, error) {
	family := unix.AF_INET6
	var sa unix.Sockaddr = &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
	if ap.Addr().Is4() || ap.Addr().Is4In6() {
		family = unix.AF_INET
		sa = &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().Unmap().As4()}
	}
	var fd int
	if err := h.inside(func() (err error) {
		fd, err = unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		return err
	}); err != nil {
		return nil, fmt.Errorf("dial %s: socket: %w", ap, err)
	}
	// A non-blocking descriptor joins the runtime's poller here.
	f := os.NewFile(uintptr(fd), "tcp "+ap.String())
	defer f.Close() // FileConn keeps a copy
	if err := unix.Connect(fd, sa); err != nil && !errors.Is(err, unix.EINPROGRESS) {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Addr: net.TCPAddrFromAddrPort(ap), Err: err}
	}
	if d, ok := ctx.Deadline(); ok {
		_ = f.SetWriteDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { _ = f.SetWriteDeadline(time.Unix(1, 0)) })
	defer stop()
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	// Writable means connected or failed; a wakeup that is neither (the
	// poller may report a socket writable before connect) waits again.
	var cerr error
	err = rc.Write(func(fd uintptr) bool {
		switch v, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR); {
		case err != nil:
			cerr = err
		case v != 0:
			cerr = unix.Errno(v)
		default:
			_, err := unix.Getpeername(int(fd))
			return err == nil
		}
		return true
	})
	if err == nil {
		err = cerr
	}
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
			if errors.Is(err, context.DeadlineExceeded) {
				err = os.ErrDeadlineExceeded
			}
		}
		return nil, &net.OpError{Op: "dial", Net: "tcp", Addr: net.TCPAddrFromAddrPort(ap), Err: err}
	}
	c, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", ap, err)
	}
	return c, nil
}

// ServeHTTP serves HTTP on addr inside the host until cleanup or until
// the returned stop is called (a real server's process dying). Every
// request is answered with the host's name, so a client can tell which
// real server it reached.
func (h *Host) ServeHTTP(addr string) (stop func()) {
	h.net.tb.Helper()
	return h.ServeHandler(addr, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, h.Name)
	}))
}

// ServeHandler serves handler on addr inside the host until cleanup or
// until the returned stop is called.
func (h *Host) ServeHandler(addr string, handler http.Handler) (stop func()) {
	h.net.tb.Helper()
	l, err := h.Listen("tcp", addr)
	h.must(err, "listen on %s", addr)
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(l)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			_ = srv.Close()
			<-done
		})
	}
	h.net.tb.Cleanup(stop)
	return stop
}

// HTTPClient returns a client whose connections start inside the host.
// Keep-alives are off: each request is a new connection, so each is
// scheduled by IPVS afresh.
func (h *Host) HTTPClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			DialContext:       h.Dial,
			DisableKeepAlives: true,
			Proxy:             nil,
		},
	}
}

// Get fetches url from inside the host and returns the body, trimmed.
func (h *Host) Get(url string) (string, error) {
	resp, err := h.HTTPClient(5 * time.Second).Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return strings.TrimSpace(string(b)), nil
}

// Fetch gets url n times, each over a new connection, and returns the
// bodies in order. Any failure fails the test.
func (h *Host) Fetch(url string, n int) []string {
	h.net.tb.Helper()
	out := make([]string, 0, n)
	for i := 0; i < n; i++ {
		body, err := h.Get(url)
		h.must(err, "fetch %d of %d from %s", i+1, n, url)
		out = append(out, body)
	}
	return out
}

// WaitHTTP polls url from inside the host until it answers or the
// deadline passes. It is for waiting on a server that is starting, whose
// readiness cannot otherwise be observed from here.
func (h *Host) WaitHTTP(url string, within time.Duration) error {
	deadline := time.Now().Add(within)
	var err error
	for time.Now().Before(deadline) {
		if _, err = h.Get(url); err == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return errors.Join(fmt.Errorf("%s did not answer from %s within %v", url, h.Name, within), err)
}

// ServeEcho accepts TCP connections on addr inside the host and echoes
// every line back prefixed with the host's name, until cleanup or until
// the returned stop is called, which closes the listener and every open
// connection, as a server that dies would. Tests use it for long-lived
// connections that must survive a reload or failover.
func (h *Host) ServeEcho(addr string) (stop func()) {
	h.net.tb.Helper()
	l, err := h.Listen("tcp", addr)
	h.must(err, "listen on %s", addr)
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			go func() {
				defer func() {
					mu.Lock()
					delete(conns, c)
					mu.Unlock()
					c.Close()
				}()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := fmt.Fprintf(c, "%s %s", h.Name, line); err != nil {
						return
					}
				}
			}()
		}
	}()
	stop = sync.OnceFunc(func() {
		l.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for c := range conns {
			c.Close()
		}
	})
	h.net.tb.Cleanup(stop)
	return stop
}

// Conn is a line-oriented client connection.
type Conn struct {
	net.Conn
	r *bufio.Reader
}

// DialLines connects from inside the host for a line-by-line exchange.
func (h *Host) DialLines(addr string) (*Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := h.Dial(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	h.net.tb.Cleanup(func() { c.Close() })
	return &Conn{Conn: c, r: bufio.NewReader(c)}, nil
}

// Exchange sends one line and returns the answer, trimmed, within timeout.
func (c *Conn) Exchange(line string, timeout time.Duration) (string, error) {
	if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return "", err
	}
	if _, err := fmt.Fprintf(c, "%s\n", line); err != nil {
		return "", err
	}
	got, err := c.r.ReadString('\n')
	return strings.TrimSpace(got), err
}
