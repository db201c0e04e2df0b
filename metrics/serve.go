package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/net/netutil"
)

// limits are the metrics server's timeouts and connection limit: the
// port is open to every local user, and none of them may take it, or
// directord's descriptors, for themselves.
type limits struct {
	readHeader, read, write, idle time.Duration
	maxHeaderBytes, maxConns      int
}

// defaultLimits: Prometheus sends its request at once, so 5s for the
// headers and 10s for the whole request are plenty. The write timeout
// bounds how long a client that does not read holds its connection; 60s
// is Prometheus's longest sensible scrape timeout and leaves a large
// farm's page (7 MB gzipped at 100,000 real servers) time over a slow
// link. 90s idle keeps Prometheus's connection alive across a 60s scrape
// interval. 32 connections are several times what two Prometheus servers,
// a health probe and an admin's curl need, and bound what a client can
// cost: 32 descriptors and, at worst, 32 pages held by slow readers.
func defaultLimits() limits {
	return limits{readHeader: 5 * time.Second, read: 10 * time.Second, write: 60 * time.Second,
		idle: 90 * time.Second, maxHeaderBytes: 16 << 10, maxConns: 32}
}

// Serve serves the handler on l until ctx ends.
func (e *Exporter) Serve(ctx context.Context, l net.Listener) error {
	return e.serve(ctx, l, defaultLimits())
}

func (e *Exporter) serve(ctx context.Context, l net.Listener, lim limits) error {
	srv := &http.Server{
		Handler:           e.Handler(),
		ReadHeaderTimeout: lim.readHeader,
		ReadTimeout:       lim.read,
		WriteTimeout:      lim.write,
		IdleTimeout:       lim.idle,
		MaxHeaderBytes:    lim.maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(e.src.Log.Handler(), slog.LevelWarn),
	}
	// Beyond the limit, connections wait in the kernel's backlog until
	// one closes, rather than being refused.
	l = netutil.LimitListener(&retryListener{Listener: l, log: e.src.Log, closed: make(chan struct{})}, lim.maxConns)
	shutDown := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(shutDown)
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if srv.Shutdown(sctx) != nil {
			// Slow readers left: they are cut off.
			srv.Close()
		}
	})
	err := srv.Serve(l)
	if !stop() {
		<-shutDown
	}
	if !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metrics: %w", err)
	}
	return nil
}

// Accept's backoff after an error, as net/http's: from 5ms, doubling to 1s.
const (
	minAcceptBackoff = 5 * time.Millisecond
	maxAcceptBackoff = time.Second
)

// retryListener retries every accept error but a closed listener's.
// net/http retries only those it deems temporary (EMFILE, ENFILE) and
// stops serving on others that pass as well, such as ENOBUFS or ENOMEM.
type retryListener struct {
	net.Listener
	log    *slog.Logger
	once   sync.Once
	closed chan struct{}
}

func (l *retryListener) Accept() (net.Conn, error) {
	var delay time.Duration
	for {
		c, err := l.Listener.Accept()
		if err == nil || errors.Is(err, net.ErrClosed) {
			return c, err
		}
		delay = min(max(2*delay, minAcceptBackoff), maxAcceptBackoff)
		l.log.Warn("metrics: accept failed, retrying", "err", err, "retry_in", delay)
		t := time.NewTimer(delay)
		select {
		case <-l.closed:
			t.Stop()
			return nil, net.ErrClosed
		case <-t.C:
		}
	}
}

func (l *retryListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return l.Listener.Close()
}
