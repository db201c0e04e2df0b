package checks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"
)

// maxRead bounds how much of a response any prober reads, so a target
// streaming garbage cannot make the director buffer without limit.
const maxRead = 64 << 10

// TCP connects to the target; optionally sends Send and then reads until
// Expect appears (within maxRead bytes and the probe deadline).
type TCP struct {
	Send   string
	Expect string
}

// Probe implements Prober.
func (t TCP) Probe(ctx context.Context, target netip.AddrPort) Result {
	start := time.Now()
	// Not Dialer.DialTCP with a netip.AddrPort: its zero local address
	// becomes an explicit bind to port 0 before connect, which takes
	// ephemeral ports without regard to the destination and runs out
	// under thousands of checks a second. An address literal skips the
	// resolver anyway. The dial's deadline is ctx's.
	// No TCP keep-alive: the connection lives for one probe, and turning
	// it on costs four setsockopt calls per probe.
	d := net.Dialer{KeepAlive: -1}
	conn, err := d.DialContext(ctx, "tcp", target.String())
	if err != nil {
		return fail(ctx, start, fmt.Errorf("connect: %w", err))
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(dl); err != nil {
			return fail(ctx, start, fmt.Errorf("set deadline: %w", err))
		}
	}
	if t.Send != "" {
		if _, err := io.WriteString(conn, t.Send); err != nil {
			return fail(ctx, start, fmt.Errorf("send: %w", err))
		}
	}
	if t.Expect != "" {
		if err := expect(conn, []byte(t.Expect)); err != nil {
			return fail(ctx, start, err)
		}
	}
	return ok(start)
}

// expect reads from r until want appears in what was read.
func expect(r io.Reader, want []byte) error {
	buf := make([]byte, 0, 4096)
	chunk := make([]byte, 4096)
	for len(buf) < maxRead {
		n, err := r.Read(chunk[:min(len(chunk), maxRead-len(buf))])
		buf = append(buf, chunk[:n]...)
		if bytes.Contains(buf, want) {
			return nil
		}
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("expect %q: connection closed after %d bytes", want, len(buf))
		}
		if err != nil {
			return fmt.Errorf("expect %q: %w", want, err)
		}
	}
	return fmt.Errorf("expect %q: not in the first %d bytes", want, maxRead)
}
