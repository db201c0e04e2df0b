// Command directord is the director daemon: it programs kernel IPVS from
// its YAML configuration and keeps it that way. See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/directorlb/director/config"
	"github.com/directorlb/director/daemon"
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
	fs := flag.NewFlagSet("directord", flag.ContinueOnError)
	fs.Usage = func() {} // printed below: on stdout for -h, stderr otherwise
	path := fs.String("config", "/etc/director/director.yaml", "configuration file")
	format := fs.String("log-format", "text", "log format: text or json")
	level := fs.String("log-level", "info", "log level: debug, info, warn or error")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			// -h is an answer, not a mistake: usage on stdout, exit 0.
			fs.SetOutput(os.Stdout)
			fmt.Fprintln(os.Stdout, "usage: directord [-config PATH] [-log-format text|json] [-log-level LEVEL] [-version]")
			fs.PrintDefaults()
			os.Exit(0)
		}
		fs.PrintDefaults()
		os.Exit(2)
	}
	if *showVersion {
		fmt.Printf("directord %s\n", version.String())
		return
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintf(os.Stderr, "directord: -log-level: %v\n", err)
		os.Exit(2)
	}
	hopts := &slog.HandlerOptions{Level: lvl}
	var h slog.Handler
	switch *format {
	case "text":
		h = slog.NewTextHandler(os.Stderr, hopts)
	case "json":
		h = slog.NewJSONHandler(os.Stderr, hopts)
	default:
		fmt.Fprintf(os.Stderr, "directord: -log-format must be text or json, not %q\n", *format)
		os.Exit(2)
	}
	log := slog.New(h)
	// The signals are main's: SIGTERM and SIGINT stop directord
	// gracefully (ctx), SIGHUP asks for a reload.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	err := daemon.Run(ctx, daemon.Options{ConfigPath: *path, Logger: log, Reload: reloads(log, *path)})
	if err == nil {
		return
	}
	var errs config.Errors
	if errors.As(err, &errs) {
		for _, e := range errs {
			fmt.Fprintln(os.Stderr, e)
		}
		fmt.Fprintf(os.Stderr, "directord: %s is invalid (%d problem(s)); nothing was changed\n", *path, len(errs))
	} else {
		fmt.Fprintf(os.Stderr, "directord: %v\n", err)
	}
	os.Exit(1)
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
