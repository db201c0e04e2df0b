package checks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
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
	deadline, _ := ctx.Deadline() // zero if none
	return t.ProbeBy(ctx, deadline, target)
}

// ProbeBy probes until deadline (none if zero) or until ctx is done.
func (t TCP) ProbeBy(ctx context.Context, deadline time.Time, target netip.AddrPort) Result {
	start := time.Now()
	conn, stop, err := connect(ctx, deadline, target)
	if err != nil {
		return fail(ctx, start, fmt.Errorf("connect: %w", err))
	}
	defer stop()
	// A reset once the check is answered (see closeReset). Data sent with
	// nothing expected back may still sit in the send buffer, where a
	// reset would discard it: that closes in order.
	if t.Send != "" && t.Expect == "" {
		defer conn.Close()
	} else {
		defer closeReset(conn)
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
