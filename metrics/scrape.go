package metrics

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/prometheus/common/expfmt"
)

// A scrape is gathered under Exporter.mu into a gzipped page held in
// memory, and written to the client outside any lock: a client that
// does not read its answer holds up nobody but itself (and only until
// the server's write timeout). The page is kept gzipped because that is
// what Prometheus asks for, and because a large farm's text page is
// 25 times the size of the gzipped one (175 MB against 7 MB for
// 10,000 services of 10 real servers); a client that does not take gzip
// is sent it decompressed as it goes.
//
// Scrapes that arrive while a page is being gathered wait for that page
// and share it (as Prometheus servers scraping the same target do, and
// as anyone looping on /metrics does): the kernel is read once for them
// all, and no scrape waits behind more than one gather.

// page is one gather, shared by the scrapes that asked for it while it
// ran. Its buffer is reused for a later gather once the last of them has
// written it out, so that a scrape leaves no megabytes of garbage behind.
type page struct {
	done chan struct{} // closed once gz and err are set
	gz   []byte        // the text exposition, gzipped
	err  error
	// Guarded by Exporter.fmu:
	waiters int // scrapes that joined the gather
	refs    int // scrapes that have not released the page
}

var errGatherDied = errors.New("metrics: the gather did not finish")

// page returns a fresh page, joining the gather in progress if any. The
// caller must release it, even on error.
func (e *Exporter) page(ctx context.Context) (*page, error) {
	e.fmu.Lock()
	if p := e.flight; p != nil {
		p.waiters++
		p.refs++
		e.fmu.Unlock()
		select {
		case <-p.done:
			return p, p.err
		case <-ctx.Done():
			return p, ctx.Err()
		}
	}
	p := &page{done: make(chan struct{}), err: errGatherDied, refs: 1}
	e.flight = p
	buf := e.spare
	e.spare = nil
	e.fmu.Unlock()
	// Deferred, so that a collector's panic (which net/http recovers)
	// cannot leave later scrapes waiting on this page forever.
	defer func() {
		e.fmu.Lock()
		e.flight = nil
		e.fmu.Unlock()
		close(p.done)
	}()
	p.gz, p.err = e.gather(buf)
	return p, p.err
}

// release gives back a scrape's hold on p; the last one keeps its
// buffer for the next gather.
func (e *Exporter) release(p *page) {
	e.fmu.Lock()
	defer e.fmu.Unlock()
	p.refs--
	if p.refs == 0 && p.gz != nil && cap(p.gz) > cap(e.spare) {
		e.spare = p.gz[:0]
	}
}

// waiting is how many scrapes joined the gather in progress.
func (e *Exporter) waiting() int {
	e.fmu.Lock()
	defer e.fmu.Unlock()
	if e.flight == nil {
		return 0
	}
	return e.flight.waiters
}

// gather writes every metric, gzipped, into spare's memory if it is
// large enough, else into a new buffer.
func (e *Exporter) gather(spare []byte) ([]byte, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	// Sized from the last page: growing a buffer of megabytes by
	// doubling would leave as much again behind as garbage.
	if want := e.lastPage + e.lastPage/8; cap(spare) < want {
		spare = make([]byte, 0, want)
	}
	buf := bytes.NewBuffer(spare[:0])
	// The compressor's state is a megabyte: one, reused.
	if e.zw == nil {
		e.zw, _ = gzip.NewWriterLevel(buf, gzip.BestSpeed)
		e.bw = bufio.NewWriterSize(e.zw, 64<<10)
	} else {
		e.zw.Reset(buf)
		e.bw.Reset(e.zw)
	}
	if err := e.write(e.bw); err != nil {
		return nil, err
	}
	if err := e.zw.Close(); err != nil {
		return nil, err
	}
	e.lastPage = buf.Len()
	return buf.Bytes(), nil
}

func (e *Exporter) serveMetrics(w http.ResponseWriter, r *http.Request) {
	p, err := e.page(r.Context())
	defer e.release(p)
	if err != nil {
		if r.Context().Err() == nil {
			e.src.Log.Warn("metrics: scrape failed", "err", err)
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
		return
	}
	gz := p.gz
	h := w.Header()
	h.Set("Content-Type", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
	h.Set("Vary", "Accept-Encoding")
	if acceptsGzip(r) {
		h.Set("Content-Encoding", "gzip")
		h.Set("Content-Length", strconv.Itoa(len(gz)))
		_, err = w.Write(gz)
	} else {
		var zr *gzip.Reader
		if zr, err = gzip.NewReader(bytes.NewReader(gz)); err == nil {
			_, err = io.Copy(w, zr)
		}
	}
	if err != nil {
		// A client gone, or too slow for the write timeout.
		e.src.Log.Debug("metrics: scrape ended early", "err", err)
	}
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		if enc, _, _ := strings.Cut(strings.TrimSpace(part), ";"); enc == "gzip" {
			return true
		}
	}
	return false
}
