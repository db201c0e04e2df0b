// Package daemon is directord's lifecycle: load and validate the config,
// adopt and converge the kernel's table, answer directorctl on the control
// socket, reload when asked, and stop leaving traffic flowing.
//
// Run is in two parts: build (build.go) loads, checks and opens
// everything, in an order that touches the kernel only once the config
// is known good; run (run.go) starts the loops in a stated order and
// stops them in the reverse, the pair first. server.go answers the
// control socket and reloads.
package daemon

import (
	"context"
	"errors"
	"log/slog"

	"github.com/directorlb/director/director"
)

// Options configure a daemon run.
type Options struct {
	ConfigPath string
	Logger     *slog.Logger
	// OpenKernel opens IPVS; nil opens the kernel's (ipvsdump.New). What
	// it returns is closed at the end of Run if it is an io.Closer.
	OpenKernel func() (director.Kernel, error)
	// Reload asks for a reload (cmd/directord sends one on SIGHUP); a
	// reload asked before directord is ready waits until it is.
	Reload <-chan struct{}
}

// ErrNoIPVS means the kernel's IPVS could not be opened.
var ErrNoIPVS = errors.New("cannot open kernel IPVS")

// Run runs directord until ctx ends. A config that does not load is
// returned as config.Errors before anything touches the kernel. Every
// handle it opened is closed when it returns.
func Run(ctx context.Context, opts Options) error {
	d, err := build(opts)
	if err != nil {
		return err
	}
	defer d.close()
	return d.run(ctx, opts.Reload)
}
