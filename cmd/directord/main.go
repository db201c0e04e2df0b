// Command directord is the director daemon: it programs kernel IPVS from
// its YAML configuration and keeps it that way. See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/directorlb/director/config"
	"github.com/directorlb/director/daemon"
	"github.com/directorlb/director/manual"
	"github.com/directorlb/director/version"
)

func main() {
	if len(os.Args) == 2 && os.Args[1] == daemon.GuardArg {
		// The VIP guard: a child of directord that outlives it only to
		// remove the VIPs if directord dies holding them.
		log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("process", "vip-guard")
		if err := daemon.RunGuard(log); err != nil {
			fmt.Fprintf(os.Stderr, "directord %s: %v\n", daemon.GuardArg, err)
			os.Exit(1)
		}
		return
	}
	o, exit := parseArgs(os.Args[1:], os.Stdout, os.Stderr)
	if exit >= 0 {
		os.Exit(exit)
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(o.level)); err != nil {
		fmt.Fprintf(os.Stderr, "directord: -log-level: %v\n", err)
		os.Exit(2)
	}
	hopts := &slog.HandlerOptions{Level: lvl}
	var h slog.Handler
	switch o.format {
	case "text":
		h = slog.NewTextHandler(os.Stderr, hopts)
	case "json":
		h = slog.NewJSONHandler(os.Stderr, hopts)
	default:
		fmt.Fprintf(os.Stderr, "directord: -log-format must be text or json, not %q\n", o.format)
		os.Exit(2)
	}
	log := slog.New(h)
	// The signals are main's: SIGTERM and SIGINT stop directord
	// gracefully (ctx), SIGHUP asks for a reload.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	err := daemon.Run(ctx, daemon.Options{ConfigPath: o.path, Logger: log, Reload: reloads(log, o.path)})
	if err == nil {
		return
	}
	var errs config.Errors
	if errors.As(err, &errs) {
		for _, e := range errs {
			fmt.Fprintln(os.Stderr, e)
		}
		fmt.Fprintf(os.Stderr, "directord: %s is invalid (%d problem(s)); nothing was changed\n", o.path, len(errs))
	} else {
		fmt.Fprintf(os.Stderr, "directord: %v\n", err)
	}
	os.Exit(1)
}

// options are directord's flags.
type options struct {
	path, format, level string
	version             bool
}

// newFlags is directord's flag set. Its flags are manual.Directord's,
// which -h prints and directord(8) is made of (main_test.go holds the
// two to each other).
func newFlags(o *options) *flag.FlagSet {
	fs := flag.NewFlagSet("directord", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.path, "config", "/etc/director/director.yaml", "configuration file")
	fs.StringVar(&o.format, "log-format", "text", "log format: text or json")
	fs.StringVar(&o.level, "log-level", "info", "log level: debug, info, warn or error")
	fs.BoolVar(&o.version, "version", false, "print the version and exit")
	return fs
}

// parseArgs reads directord's arguments. An exit status of 0 or more
// means stop there: help or the version was printed (0), or a usage
// error (2); -1 means run.
func parseArgs(args []string, stdout, stderr io.Writer) (options, int) {
	var o options
	fs := newFlags(&o)
	err := fs.Parse(args)
	if err == nil && fs.NArg() > 0 {
		err = fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	switch {
	case errors.Is(err, flag.ErrHelp):
		// -h is an answer, not a mistake: usage on stdout, exit 0.
		fmt.Fprint(stdout, manual.Directord().Usage())
		return o, 0
	case err != nil:
		fmt.Fprintf(stderr, "directord: %v\n%s", err, manual.Directord().Usage())
		return o, 2
	case o.version:
		fmt.Fprintf(stdout, "directord %s\n", version.String())
		return o, 0
	}
	return o, -1
}

// reloads turns each SIGHUP into a reload request. Requests coalesce: one
// SIGHUP or many while a reload is pending make one more reload.
func reloads(log *slog.Logger, path string) <-chan struct{} {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	out := make(chan struct{}, 1)
	go func() {
		for range hup {
			log.Info("SIGHUP: reloading", "config", path)
			select {
			case out <- struct{}{}:
			default:
			}
		}
	}()
	return out
}
