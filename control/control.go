// Package control is the small JSON API between directorctl and
// directord, over a unix socket that only root (or the daemon's own user)
// may use: one request, one response, per connection. The commands and
// the results they carry (messages.go) are defined here, so that
// directorctl needs nothing of directord's to speak to it.
package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// Request is a command for the daemon.
type Request struct {
	Cmd     Command `json:"cmd"`
	Service string  `json:"service,omitempty"`
	Address string  `json:"address,omitempty"`
	// DryRun asks a reload for the changes it would make, not made.
	DryRun bool `json:"dry_run,omitempty"`
}

// Response carries either a result or an error.
type Response struct {
	OK     bool            `json:"ok"`
	Error  string          `json:"error,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
}

// Handler answers one request.
type Handler func(ctx context.Context, req Request) (any, error)

// ErrDenied is returned to a peer that is neither root nor the daemon's
// user.
var ErrDenied = errors.New("permission denied: the control socket is for root")

const (
	maxRequest = 64 << 10
	ioTimeout  = 30 * time.Second
)

// Listen creates the socket at path with mode 0600, in a directory only
// its owner can enter. A stale socket left by a crashed daemon is
// replaced; a live one is an error, so two daemons never share a path.
func Listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("control socket directory: %w", err)
	}
	// Only a socket is ever removed: control.socket pointing at a file
	// by mistake (the config itself, say) must cost a refusal, not the
	// file. Lstat, so a symbolic link is judged, not what it leads to.
	if fi, err := os.Lstat(path); err == nil && fi.Mode().Type() != fs.ModeSocket {
		return nil, fmt.Errorf("control socket %s exists and is not a socket (mode %s); directord replaces only a stale socket: move it away or set control.socket",
			path, fi.Mode())
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("control socket %s is in use: is another directord running?", path)
	}
	_ = os.Remove(path)
	// The umask would otherwise leave a window in which the socket is
	// group- or world-accessible.
	old := unix.Umask(0o177)
	l, err := net.Listen("unix", path)
	unix.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	return l, nil
}

// Accept's backoff after an error, as net/http's: from 5ms, doubling to 1s.
const (
	minAcceptBackoff = 5 * time.Millisecond
	maxAcceptBackoff = time.Second
)

// Serve answers requests on l until ctx ends (it then returns nil) or l is
// closed under it. Any other accept error (EMFILE when another process
// has used up directord's descriptors, ENFILE, ENOBUFS, ENOMEM, an
// aborted connection) passes: Serve waits and accepts again, since
// returning would stop directord.
func Serve(ctx context.Context, l net.Listener, h Handler, log *slog.Logger) error {
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	var delay time.Duration
	for {
		c, err := l.Accept()
		if err == nil {
			delay = 0
			go serveConn(ctx, c, h, log)
			continue
		}
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, net.ErrClosed) {
			return fmt.Errorf("control socket: %w", err)
		}
		delay = min(max(2*delay, minAcceptBackoff), maxAcceptBackoff)
		log.Warn("control socket: accept failed, retrying", "err", err, "retry_in", delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

func serveConn(ctx context.Context, c net.Conn, h Handler, log *slog.Logger) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(ioTimeout))
	enc := json.NewEncoder(c)
	// The request is read (bounded in size and time) before a refusal is
	// sent, so that the client, which writes first, reads the reason
	// rather than a broken pipe. Nothing in it is acted on.
	var raw json.RawMessage
	decErr := json.NewDecoder(io.LimitReader(c, maxRequest)).Decode(&raw)
	if err := checkPeer(c); err != nil {
		log.Warn("control socket: refused a client", "err", err)
		_ = enc.Encode(Response{Error: err.Error()})
		return
	}
	var req Request
	if decErr == nil {
		decErr = json.Unmarshal(raw, &req)
	}
	if decErr != nil {
		_ = enc.Encode(Response{Error: "bad request: " + decErr.Error()})
		return
	}
	res, err := h(ctx, req)
	if err != nil {
		_ = enc.Encode(Response{Error: err.Error()})
		return
	}
	b, err := json.Marshal(res)
	if err != nil {
		_ = enc.Encode(Response{Error: "encode result: " + err.Error()})
		return
	}
	_ = enc.Encode(Response{OK: true, Result: b})
}

// checkPeer admits root and the daemon's own user; the socket's mode
// already does, and this holds even if someone loosens the mode.
func checkPeer(c net.Conn) error {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return ErrDenied
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return err
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return err
	}
	if credErr != nil {
		return credErr
	}
	if cred.Uid != 0 && int(cred.Uid) != os.Getuid() {
		return fmt.Errorf("%w (uid %d)", ErrDenied, cred.Uid)
	}
	return nil
}

// ErrNoDaemon means nothing answers on the socket.
var ErrNoDaemon = errors.New("directord is not running (no control socket)")

// Call sends req to the daemon at path and decodes its result into out
// (which may be nil).
func Call(ctx context.Context, path string, req Request, out any) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ECONNREFUSED) {
			return fmt.Errorf("%w at %s", ErrNoDaemon, path)
		}
		if errors.Is(err, os.ErrPermission) {
			return fmt.Errorf("%s: %w", path, ErrDenied)
		}
		return fmt.Errorf("control socket %s: %w", path, err)
	}
	defer c.Close()
	deadline := time.Now().Add(ioTimeout)
	if dl, ok := ctx.Deadline(); ok {
		deadline = dl
	}
	_ = c.SetDeadline(deadline)
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return fmt.Errorf("send %s: %w", req.Cmd, err)
	}
	var resp Response
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		return fmt.Errorf("read the answer to %s: %w", req.Cmd, err)
	}
	if !resp.OK {
		return &RemoteError{Cmd: req.Cmd, Msg: resp.Error}
	}
	if out != nil && len(resp.Result) > 0 {
		if err := json.Unmarshal(resp.Result, out); err != nil {
			return fmt.Errorf("decode the answer to %s: %w", req.Cmd, err)
		}
	}
	return nil
}

// RemoteError is an error the daemon reported.
type RemoteError struct {
	Cmd Command
	Msg string
}

func (e *RemoteError) Error() string { return e.Msg }
