package vip

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/directorlb/director/heartbeat"
)

// The VIP guard exists because the kernel keeps the addresses a process
// added after the process dies: a director killed with SIGKILL (or by the
// OOM killer) would go on answering for the VIPs while its peer takes
// them over. The guard is a child process that only reads a pipe from
// its parent; the parent tells it which VIPs it holds, and when the pipe
// ends without a goodbye the parent is gone and the guard removes them.
//
// The protocol is one line per message, fields separated by a space:
//
//	hold 192.0.2.10/24 eth0   the parent is about to add this VIP
//	drop 192.0.2.10/24 eth0   the parent has removed it
//	bye                       the parent is exiting cleanly: remove nothing
//
// and, to have the guard tell the peer at once that this director is
// gone (Farewell), lines that take effect together with the last:
//
//	key /etc/director/authkey         the key file, read by the guard
//	node lb1 200 DIGEST               name, priority, config digest (hex)
//	link udp eth1 192.168.50.2 694    one line per heartbeat link
//	link multicast eth0 239.192.0.18 694
//	link serial /dev/ttyS1
//	farewell                          the lines above replace the last set

// GuardArg is the argument that makes directord's binary run as the VIP
// guard (RunGuard) instead of as the daemon.
const GuardArg = "-vip-guard"

// ErrGuardClosed is returned by a Guard's Hold and Drop after Close, or
// after the guard was abandoned because its context ended.
var ErrGuardClosed = errors.New("vip guard closed")

// maxGuardLine bounds a protocol line; a real one is far shorter.
const maxGuardLine = 256

// Guard is the parent's handle on the guard child.
type Guard struct {
	log  *slog.Logger
	cmd  *exec.Cmd
	done chan struct{} // closed when the child has exited
	err  error         // the child's exit, once done is closed

	mu     sync.Mutex
	stdin  io.WriteCloser
	closed bool
}

// StartGuard starts the guard child, argv being the command that runs
// RunGuard, e.g. {os.Executable(), GuardArg}. The child runs in a process
// group of its own, so that a signal to the parent's group (a terminal's
// ^C, a kill of the whole group) leaves it to do its work.
//
// When ctx ends, the pipe is closed without a goodbye: the guard removes
// whatever is still held and exits, as if this process had died.
func StartGuard(ctx context.Context, argv []string, log *slog.Logger) (*Guard, error) {
	if len(argv) == 0 {
		return nil, errors.New("start vip guard: empty command")
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stderr = os.Stderr // its logs join ours
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("start vip guard: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start vip guard %s: %w", argv[0], err)
	}
	g := &Guard{log: log, cmd: cmd, done: make(chan struct{}), stdin: stdin}
	go func() {
		g.err = cmd.Wait()
		close(g.done)
		g.mu.Lock()
		closed := g.closed
		g.mu.Unlock()
		if !closed {
			g.log.Error("vip guard exited early; vips are no longer guarded", "pid", cmd.Process.Pid, "err", g.err)
		}
	}()
	go func() {
		select {
		case <-ctx.Done():
			g.abandon()
		case <-g.done:
		}
	}()
	log.Debug("vip guard started", "pid", cmd.Process.Pid)
	return g, nil
}

// Hold tells the guard that v is about to be added.
func (g *Guard) Hold(v VIP) error { return g.send("hold", v) }

// Drop tells the guard that v has been removed.
func (g *Guard) Drop(v VIP) error { return g.send("drop", v) }

func (g *Guard) send(verb string, v VIP) error {
	if err := v.check(); err != nil {
		return fmt.Errorf("vip guard %s: %w", verb, err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return fmt.Errorf("vip guard %s %s: %w", verb, v, ErrGuardClosed)
	}
	// One write per line: a pipe write this short is atomic, so the guard
	// never sees half a line from a parent that lived to finish the call.
	if _, err := io.WriteString(g.stdin, verb+" "+v.Prefix.String()+" "+v.Interface+"\n"); err != nil {
		return fmt.Errorf("vip guard %s %s: %w", verb, v, err)
	}
	return nil
}

// Farewell is what the guard needs to tell the peer that this director
// died, the moment it has removed the VIPs, so the peer takes over at
// once as after a graceful stop instead of at deadtime: the key file
// (the guard reads it itself: no secret goes down the pipe), who this
// director is, and its heartbeat links.
type Farewell struct {
	KeyFile  string
	Node     string
	Priority uint8
	Digest   [16]byte
	Links    []heartbeat.LinkSpec
}

// Farewell tells the guard how to say goodbye for this director, in place
// of what it was told before (a reload changes the digest).
func (g *Guard) Farewell(f Farewell) error {
	if strings.ContainsAny(f.KeyFile, "\n") || f.KeyFile == "" || strings.ContainsAny(f.Node, " \n") || f.Node == "" {
		return fmt.Errorf("vip guard farewell: key file %q or node %q cannot be sent", f.KeyFile, f.Node)
	}
	lines := []string{"key " + f.KeyFile, fmt.Sprintf("node %s %d %x", f.Node, f.Priority, f.Digest)}
	for _, l := range f.Links {
		line, err := linkLine(l)
		if err != nil {
			return fmt.Errorf("vip guard farewell: %w", err)
		}
		lines = append(lines, line)
	}
	lines = append(lines, "farewell")
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return fmt.Errorf("vip guard farewell: %w", ErrGuardClosed)
	}
	for _, line := range lines {
		// A line at a time, each atomic (see send): a parent that dies
		// halfway leaves the guard with the farewell it had.
		if len(line) >= maxGuardLine {
			return fmt.Errorf("vip guard farewell: line of %d bytes, the most is %d", len(line), maxGuardLine-1)
		}
		if _, err := io.WriteString(g.stdin, line+"\n"); err != nil {
			return fmt.Errorf("vip guard farewell: %w", err)
		}
	}
	return nil
}

// Close says goodbye, so the guard removes nothing, and waits for it to
// exit.
func (g *Guard) Close() error {
	g.mu.Lock()
	var errs []error
	if !g.closed {
		g.closed = true
		if _, err := io.WriteString(g.stdin, "bye\n"); err != nil {
			errs = append(errs, fmt.Errorf("vip guard bye: %w", err))
		}
		if err := g.stdin.Close(); err != nil {
			errs = append(errs, fmt.Errorf("vip guard: close pipe: %w", err))
		}
	}
	g.mu.Unlock()
	<-g.done
	if g.err != nil {
		errs = append(errs, fmt.Errorf("vip guard: %w", g.err))
	}
	return errors.Join(errs...)
}

// abandon closes the pipe without a goodbye.
func (g *Guard) abandon() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return
	}
	g.closed = true
	if err := g.stdin.Close(); err != nil {
		g.log.Warn("vip guard: close pipe", "err", err)
	}
}

// RunGuard is the guard child's whole life: it reads the protocol from r
// and, if r ends without a goodbye, removes the VIPs still held from the
// current network namespace. It ignores SIGINT, SIGTERM and SIGHUP: only
// the end of r ends it.
func RunGuard(r io.Reader, log *slog.Logger) error {
	return runGuard(r, log, guardEnv{rm: tableRemover{kernelAddrs{}}})
}

// guardEnv is what the guard acts through: the VIPs' remover and, for
// the farewell, the key file's reader and the links' opener (nil: the
// real ones).
type guardEnv struct {
	rm       vipRemover
	readKey  func(path string) ([]byte, error)
	openLink func(heartbeat.LinkSpec) (heartbeat.Link, error)
}

// vipRemover removes a VIP and tells whether it was there.
type vipRemover interface {
	Remove(VIP) (bool, error)
}

type tableRemover struct{ table AddrTable }

func (t tableRemover) Remove(v VIP) (bool, error) { return removeVIP(t.table, v) }

// Prepare looks the VIP up once when it is held. The guard is a fresh
// process: its first netlink calls open sockets and, on a slow machine,
// run code for the first time. Doing that now, while the parent lives,
// keeps the removal after a crash down to one request.
func (t tableRemover) Prepare(v VIP) {
	_, _, _ = findVIP(t.table, v)
}

// preparer is a vipRemover that can get ready for a VIP in advance.
type preparer interface{ Prepare(VIP) }

func runGuard(r io.Reader, log *slog.Logger, env guardEnv) error {
	signal.Ignore(syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	return serveGuard(r, log, env)
}

// serveGuard reads the protocol until a goodbye or the end of r. Bad
// lines are logged and skipped: whatever the parent sends, the guard
// must still be there to clean up after it.
func serveGuard(r io.Reader, log *slog.Logger, env guardEnv) error {
	if env.readKey == nil {
		env.readKey = heartbeat.ReadAuthKey
	}
	if env.openLink == nil {
		env.openLink = heartbeat.LinkSpec.OpenSender
	}
	rm := env.rm
	held := map[VIP]int{} // when it was held, to remove in that order
	seq := 0
	var next, fw *farewell // the farewell being told, and the one in force
	defer func() { fw.close() }()
	br := bufio.NewReaderSize(r, maxGuardLine)
	for {
		line, err := readGuardLine(br, log)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				log.Error("vip guard: reading from parent", "err", err)
			}
			if err := removeHeld(held, log, rm); err != nil {
				// A VIP may still be here: the peer must find it in
				// its probe, not take it over on our word.
				return err
			}
			fw.say(log)
			return nil
		}
		fields := strings.Fields(line)
		switch {
		case len(fields) == 1 && fields[0] == "bye":
			log.Debug("vip guard: parent exiting cleanly", "held", len(held))
			return nil
		case len(fields) >= 2 && fields[0] == "key":
			next = &farewell{keyFile: strings.TrimPrefix(line, "key ")}
		case len(fields) == 4 && fields[0] == "node" && next != nil:
			prio, err1 := strconv.ParseUint(fields[2], 10, 8)
			digest, err2 := hex.DecodeString(fields[3])
			if err := errors.Join(err1, err2); err != nil || len(digest) != len(next.digest) || len(fields[1]) > heartbeat.MaxNodeName {
				log.Warn("vip guard: ignoring bad line", "line", line, "err", err)
				next = nil
				continue
			}
			next.node, next.priority = fields[1], uint8(prio)
			copy(next.digest[:], digest)
		case len(fields) >= 1 && fields[0] == "link" && next != nil:
			spec, err := parseLinkLine(fields[1:])
			if err != nil {
				log.Warn("vip guard: ignoring bad line", "line", line, "err", err)
				continue
			}
			next.specs = append(next.specs, spec)
		case len(fields) == 1 && fields[0] == "farewell" && next != nil && next.node != "":
			if err := next.ready(env); err != nil {
				log.Error("vip guard: cannot get ready to tell the peer this director is gone; it will wait for deadtime", "err", err)
			}
			fw.close()
			fw, next = next, nil
		case len(fields) == 3 && (fields[0] == "hold" || fields[0] == "drop"):
			p, err := netip.ParsePrefix(fields[1])
			v := VIP{Prefix: p, Interface: fields[2]}
			if err == nil {
				err = v.check()
			}
			if err != nil {
				log.Warn("vip guard: ignoring bad line", "line", line, "err", err)
				continue
			}
			if fields[0] == "hold" {
				if _, ok := held[v]; !ok {
					seq++
					held[v] = seq
					if p, ok := rm.(preparer); ok {
						p.Prepare(v)
					}
				}
			} else {
				delete(held, v)
			}
			log.Debug("vip guard: "+fields[0], "vip", v.Prefix, "interface", v.Interface)
		default:
			log.Warn("vip guard: ignoring bad line", "line", line)
		}
	}
}

// farewell is the guard's goodbye for a parent that died: a leaving
// message, sent on every link once the VIPs are gone.
type farewell struct {
	keyFile  string
	node     string
	priority uint8
	digest   [16]byte
	specs    []heartbeat.LinkSpec
	key      []byte
	links    []heartbeat.Link
	open     func(heartbeat.LinkSpec) (heartbeat.Link, error)
}

// ready reads the key and opens the UDP links' senders now, while the
// parent lives: after a crash, the farewell is then one send per link.
// A serial device is the parent's while it lives, and is opened then.
func (f *farewell) ready(env guardEnv) error {
	key, err := env.readKey(f.keyFile)
	if err != nil {
		return err
	}
	f.key, f.open = key, env.openLink
	var errs []error
	for _, s := range f.specs {
		if s.Serial != "" {
			continue
		}
		l, err := f.open(s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		f.links = append(f.links, l)
	}
	return errors.Join(errs...)
}

// say sends the leaving message on every link it can open.
func (f *farewell) say(log *slog.Logger) {
	if f == nil || f.key == nil {
		return
	}
	for _, s := range f.specs {
		if s.Serial == "" {
			continue
		}
		l, err := f.open(s)
		if err != nil {
			log.Error("vip guard: cannot open a link to tell the peer", "err", err)
			continue
		}
		f.links = append(f.links, l)
	}
	// A boot of its own, later than any of the parent's messages: the
	// peer takes it as the parent restarted and leaving at once.
	frame, err := heartbeat.Encode(f.key, heartbeat.Message{
		Kind: heartbeat.KindLeaving, Node: f.node, Priority: f.priority, Role: heartbeat.RoleStandby,
		Boot: heartbeat.NewBoot(), Seq: 1, Time: time.Now(), ConfigDigest: f.digest,
	})
	if err != nil {
		log.Error("vip guard: cannot encode the farewell", "err", err)
		return
	}
	told := 0
	for _, l := range f.links {
		if err := l.Send(frame); err != nil {
			log.Error("vip guard: cannot tell the peer on a link", "link", l.Name(), "err", err)
			continue
		}
		told++
	}
	log.Warn("vip guard: told the peer this director is gone", "links", told)
}

func (f *farewell) close() {
	if f == nil {
		return
	}
	for _, l := range f.links {
		l.Close()
	}
	f.links = nil
}

// linkLine is s in the guard's protocol (Guard.Farewell).
func linkLine(s heartbeat.LinkSpec) (string, error) {
	switch {
	case s.Serial != "":
		if strings.ContainsAny(s.Serial, " \n") {
			return "", fmt.Errorf("serial device %q: a space or newline in its path", s.Serial)
		}
		return "link serial " + s.Serial, nil
	case s.Multicast.IsValid():
		return fmt.Sprintf("link multicast %s %s %d", s.Interface, s.Multicast, s.Port), nil
	}
	return fmt.Sprintf("link udp %s %s %d", s.Interface, s.Peer, s.Port), nil
}

// parseLinkLine reads a link line's fields after "link".
func parseLinkLine(f []string) (heartbeat.LinkSpec, error) {
	if len(f) == 2 && f[0] == "serial" {
		return heartbeat.LinkSpec{Serial: f[1]}, nil
	}
	if len(f) != 4 || (f[0] != "udp" && f[0] != "multicast") {
		return heartbeat.LinkSpec{}, errors.New("want serial PATH, udp IFACE PEER PORT or multicast IFACE GROUP PORT")
	}
	a, err := netip.ParseAddr(f[2])
	if err != nil {
		return heartbeat.LinkSpec{}, err
	}
	port, err := strconv.ParseUint(f[3], 10, 16)
	if err != nil || port == 0 {
		return heartbeat.LinkSpec{}, fmt.Errorf("port %q", f[3])
	}
	s := heartbeat.LinkSpec{Interface: f[1], Port: uint16(port)}
	if f[0] == "multicast" {
		s.Multicast = a
	} else {
		s.Peer = a
	}
	return s, nil
}

// readGuardLine returns the next complete line. Overlong lines are
// skipped whole; a last line without its newline is dropped, since a
// parent that died mid-write had not yet acted on it.
func readGuardLine(br *bufio.Reader, log *slog.Logger) (string, error) {
	for {
		b, err := br.ReadSlice('\n')
		switch {
		case err == nil:
			return string(b[:len(b)-1]), nil
		case errors.Is(err, bufio.ErrBufferFull):
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
			log.Warn("vip guard: ignoring overlong line", "max", maxGuardLine)
			if err != nil {
				return "", err
			}
		default:
			if len(b) > 0 {
				log.Warn("vip guard: ignoring unfinished last line", "line", string(b))
			}
			return "", err
		}
	}
}

// removeHeld removes every VIP still held: the parent is gone.
func removeHeld(held map[VIP]int, log *slog.Logger, rm vipRemover) error {
	vips := make([]VIP, 0, len(held))
	for v := range held {
		vips = append(vips, v)
	}
	slices.SortFunc(vips, func(a, b VIP) int { return held[a] - held[b] })
	if len(vips) > 0 {
		log.Warn("vip guard: parent gone without saying bye; removing the vips it held", "count", len(vips))
	}
	var errs []error
	for _, v := range vips {
		removed, err := rm.Remove(v)
		switch {
		case err != nil:
			log.Error("vip guard: could not remove vip", "vip", v.Prefix, "interface", v.Interface, "err", err)
			errs = append(errs, err)
		case removed:
			log.Warn("vip guard: removed vip", "vip", v.Prefix, "interface", v.Interface)
		default:
			log.Info("vip guard: vip already gone", "vip", v.Prefix, "interface", v.Interface)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("vip guard: %w", err)
	}
	return nil
}
