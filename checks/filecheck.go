package checks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// maxNumberFile bounds what a file check reads: a number and some blanks.
const maxNumberFile = 64

// FileCheck is the file check, keepalived's FILE_CHECK in spirit: a file
// holds an integer that some other program writes. 0 (or less) is failed;
// above 0 is healthy, and the number is the weight percentage, clamped to
// 100 (the seam of exec's dynamic_weight): 100 is the configured weight,
// 50 half of it. The target is not contacted.
//
// The file is opened non-blocking and must be a regular file: a FIFO
// planted at the path cannot hang the probe, nor a device feed it without
// end. A missing, unreadable or unparsable file is a failure, saying why.
type FileCheck struct {
	Path string
}

// Probe implements Prober.
func (c FileCheck) Probe(ctx context.Context, _ netip.AddrPort) Result {
	start := time.Now()
	n, err := readNumber(c.Path)
	if err != nil {
		return fail(ctx, start, err)
	}
	if n <= 0 {
		return fail(ctx, start, fmt.Errorf("file %s holds %d: failed", c.Path, n))
	}
	r := ok(start)
	r.Weight = int(min(n, 100))
	return r
}

// readNumber reads the integer in path: one line, blanks around it
// ignored.
func readNumber(path string) (int64, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return 0, fmt.Errorf("file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return 0, fmt.Errorf("file %s: not a regular file (%s)", path, fi.Mode().Type())
	}
	buf := make([]byte, maxNumberFile+1)
	k, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return 0, fmt.Errorf("file: %w", err)
	}
	if k > maxNumberFile {
		return 0, fmt.Errorf("file %s: longer than the %d bytes a number takes", path, maxNumberFile)
	}
	s := strings.TrimSpace(string(buf[:k]))
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("file %s: %s is not an integer", path, clipLine(s))
	}
	return n, nil
}
