package heartbeat

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// A serial line is a byte stream that may start mid-frame, drop or
// garble bytes. Each frame goes out as
//
//	sync 0xA5 0x5A | length 2 | ^length 2 | frame | CRC32 4
//
// all big-endian, the CRC (IEEE) over the length, its complement and
// the frame. The complement lets the reader reject a false sync found in
// noise at once, instead of waiting for the bytes of a length it made up.
// The reader resynchronises by scanning for the next sync after anything
// that does not check out.
const (
	serialSync0, serialSync1 = 0xA5, 0x5A
	serialHeaderLen          = 6
	serialTrailerLen         = 4
	// serialMaxFrame bounds a frame on the line; a heartbeat takes at
	// most MaxFrameSize.
	serialMaxFrame = 1024
	// serialWriteTimeout bounds a Send on a line nobody reads (a
	// pseudo-terminal's buffer fills up). A whole frame takes under
	// 0.1 s at 115200 baud.
	serialWriteTimeout = time.Second
	// serialFrameGap is how long the reader waits for the rest of a
	// frame whose header it has: a sender that gave up mid-frame must not
	// hold back the frames after it until enough bytes arrive to fill the
	// length it announced.
	serialFrameGap = 500 * time.Millisecond
)

// serialLink is a heartbeat path over a serial line (a null-modem
// cable), heartbeat's "serial /dev/ttyS1".
type serialLink struct {
	name   string
	f      *os.File
	closed atomic.Bool

	wmu sync.Mutex // one frame at a time on the line

	rmu   sync.Mutex
	de    serialDeframer
	chunk []byte
}

// OpenSerial opens the tty at path in raw mode at 115200 baud, 8N1,
// ignoring modem control lines and without flow control. It is opened
// once: LinkSpec.Open gives a link that reopens it when reading fails.
func OpenSerial(path string) (Link, error) {
	name := "serial " + path
	// O_NONBLOCK: the open must not wait for a carrier, which a line
	// whose CLOCAL is not yet set does; the link is reopened by its
	// reader, which a stop waits for. The file is read through Go's
	// poller, non-blocking anyway.
	f, err := os.OpenFile(path, os.O_RDWR|syscall.O_NOCTTY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return newSerialLink(name, f)
}

// newSerialLink makes f raw and frames heartbeats on it; it takes f
// over, closing it on failure. f may be either end of a
// pseudo-terminal, which is how the link is tested.
func newSerialLink(name string, f *os.File) (*serialLink, error) {
	if err := serialMakeRaw(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &serialLink{name: name, f: f, chunk: make([]byte, 512)}, nil
}

// serialMakeRaw does what cfmakeraw(3) does, and also sets the speed,
// turns off flow control (XON/XOFF bytes occur in binary frames) and
// ignores the modem lines (a three-wire cable has no carrier detect).
func serialMakeRaw(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		t, err := unix.IoctlGetTermios(int(fd), unix.TCGETS)
		if err != nil {
			serr = os.NewSyscallError("ioctl TCGETS", err)
			return
		}
		t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL |
			unix.IXON | unix.IXOFF | unix.IXANY
		t.Oflag &^= unix.OPOST
		t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
		t.Cflag &^= unix.CSIZE | unix.PARENB | unix.CSTOPB | unix.CRTSCTS | unix.CBAUD
		t.Cflag |= unix.CS8 | unix.CREAD | unix.CLOCAL | unix.B115200
		t.Ispeed, t.Ospeed = unix.B115200, unix.B115200
		t.Cc[unix.VMIN], t.Cc[unix.VTIME] = 1, 0
		if err := unix.IoctlSetTermios(int(fd), unix.TCSETS, t); err != nil {
			serr = os.NewSyscallError("ioctl TCSETS", err)
		}
	}); err != nil {
		return err
	}
	return serr
}

func (l *serialLink) Name() string { return l.name }

func (l *serialLink) Send(frame []byte) error {
	if len(frame) == 0 || len(frame) > serialMaxFrame {
		return fmt.Errorf("%s: send: frame of %d bytes, want 1 to %d", l.name, len(frame), serialMaxFrame)
	}
	b := serialEncode(frame)
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if err := l.f.SetWriteDeadline(time.Now().Add(serialWriteTimeout)); err != nil && !errors.Is(err, os.ErrNoDeadline) {
		return l.ioError("send", err)
	}
	if _, err := l.f.Write(b); err != nil {
		// A partial frame is resynchronised on by the reader.
		return l.ioError("send", err)
	}
	return nil
}

func (l *serialLink) Recv(buf []byte) (int, error) {
	l.rmu.Lock()
	defer l.rmu.Unlock()
	for {
		if frame, ok := l.de.next(); ok {
			if len(frame) > len(buf) {
				return 0, fmt.Errorf("%s: receive: %d-byte frame in a %d-byte buffer: %w", l.name, len(frame), len(buf), io.ErrShortBuffer)
			}
			return copy(buf, frame), nil
		}
		var deadline time.Time
		if l.de.partial() {
			deadline = time.Now().Add(serialFrameGap)
		}
		if err := l.f.SetReadDeadline(deadline); err != nil && !errors.Is(err, os.ErrNoDeadline) {
			return 0, l.ioError("receive", err)
		}
		n, err := l.f.Read(l.chunk)
		l.de.feed(l.chunk[:n])
		if errors.Is(err, os.ErrDeadlineExceeded) {
			l.de.skip()
			continue
		}
		if err != nil {
			return 0, l.ioError("receive", err)
		}
	}
}

// ioError keeps the Link contract: a closed link's errors wrap
// net.ErrClosed. An os.File says os.ErrClosed, or for a deadline set
// while it closes, an error of the poller's with no sentinel to test.
func (l *serialLink) ioError(op string, err error) error {
	if l.closed.Load() || errors.Is(err, os.ErrClosed) {
		return fmt.Errorf("%s: %s: %w (%w)", l.name, op, net.ErrClosed, err)
	}
	return fmt.Errorf("%s: %s: %w", l.name, op, err)
}

func (l *serialLink) Close() error {
	l.closed.Store(true)
	if err := l.f.Close(); err != nil {
		return l.ioError("close", err)
	}
	return nil
}

// serialEncode frames one frame for the line.
func serialEncode(frame []byte) []byte {
	b := make([]byte, 0, serialHeaderLen+len(frame)+serialTrailerLen)
	b = append(b, serialSync0, serialSync1)
	b = binary.BigEndian.AppendUint16(b, uint16(len(frame)))
	b = binary.BigEndian.AppendUint16(b, ^uint16(len(frame)))
	b = append(b, frame...)
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b[2:]))
}

// serialDeframer finds frames in the bytes read from the line. It holds
// at most one frame's worth of bytes plus what the last read brought.
type serialDeframer struct {
	buf []byte
}

var serialSync = []byte{serialSync0, serialSync1}

func (d *serialDeframer) feed(p []byte) { d.buf = append(d.buf, p...) }

// partial says whether next stopped at a frame's header, waiting for
// the rest of it.
func (d *serialDeframer) partial() bool { return len(d.buf) >= serialHeaderLen }

// skip gives up on the frame next is waiting for, as on a bad CRC.
func (d *serialDeframer) skip() {
	if len(d.buf) > 0 {
		d.buf = d.buf[1:]
	}
}

// next returns the next frame that checks out, discarding anything
// before it, or false when the bytes so far hold none. The frame is
// valid until the next feed.
func (d *serialDeframer) next() ([]byte, bool) {
	for {
		i := bytes.Index(d.buf, serialSync)
		if i < 0 {
			// Keep a last byte that may begin a sync.
			keep := 0
			if n := len(d.buf); n > 0 && d.buf[n-1] == serialSync0 {
				keep = 1
			}
			d.buf = d.buf[len(d.buf)-keep:]
			return nil, false
		}
		d.buf = d.buf[i:]
		if len(d.buf) < serialHeaderLen {
			return nil, false
		}
		n := binary.BigEndian.Uint16(d.buf[2:])
		if ^n != binary.BigEndian.Uint16(d.buf[4:]) || n == 0 || n > serialMaxFrame {
			d.buf = d.buf[1:] // a false sync: look past it
			continue
		}
		end := serialHeaderLen + int(n)
		if len(d.buf) < end+serialTrailerLen {
			return nil, false
		}
		if crc32.ChecksumIEEE(d.buf[2:end]) != binary.BigEndian.Uint32(d.buf[end:]) {
			d.buf = d.buf[1:]
			continue
		}
		frame := d.buf[serialHeaderLen:end]
		d.buf = d.buf[end+serialTrailerLen:]
		return frame, true
	}
}
