// Package ctl implements directorctl: the ipvsadm-like view of the
// kernel's table (list, save, restore), and control of a running
// directord over its socket (status, reload, check-config, ...).
//
// Exit codes: 0 success, 1 failure, 2 usage.
package ctl

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/cloudflare/ipvs"

	"github.com/directorlb/director/ipvsadm"
	"github.com/directorlb/director/version"
)

// Kernel is the kernel's IPVS, as list, save and restore use it.
type Kernel = ipvs.Client

// Env is where a command reads and writes; tests swap it.
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// OpenKernel opens IPVS for list, save and restore.
	OpenKernel func() (Kernel, error)
	// OpenConns opens the connection list of `list -c`; nil is
	// /proc/net/ip_vs_conn.
	OpenConns func() (io.ReadCloser, error)
	// SyncDaemons lists the sync daemons for `list --daemon`; nil asks
	// the kernel.
	SyncDaemons func() ([]ipvsadm.SyncDaemon, error)
}

// usageError makes Main exit 2.
type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// exitError carries an exit status without a message of its own (the
// command has printed what went wrong).
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// directorctl's help is package manual's Directorctl page (help.go).

type command struct {
	name string
	run  func(ctx context.Context, env *Env, args []string) error
}

func commands() []command {
	return []command{
		{"list", runList},
		{"save", runSave},
		{"restore", runRestore},
		{"status", runStatus},
		{"reload", runReload},
		{"reconcile", runReconcile},
		{"drain", runDrain},
		{"enable", runEnable},
		{"check-config", runCheckConfig},
		{"takeover", runTakeover},
		{"release", runRelease},
		{"import", runImport},
		{"drain-node", runDrainNode},
		{"enable-node", runEnableNode},
	}
}

// Main runs directorctl and returns its exit status.
func Main(ctx context.Context, env *Env, args []string) int {
	// -socket (or -config, naming directord's file) may also come before
	// the command, as admins type it; the command gets them as its own.
	var global []string
	for len(args) >= 2 && (args[0] == "-socket" || args[0] == "--socket" || args[0] == "-config" || args[0] == "--config") {
		global, args = append(global, args[0], args[1]), args[2:]
	}
	if len(args) > 0 && isListShorthand(args[0]) {
		// ipvsadm's habit: `directorctl -Ln` is `directorctl list -Ln`.
		args = append([]string{"list"}, args...)
	}
	if len(args) == 1 && (args[0] == "-version" || args[0] == "--version" || args[0] == "version") {
		fmt.Fprintf(env.Stdout, "directorctl %s\n", version.String())
		return 0
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(env.Stdout, usage())
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	if len(global) > 0 {
		args = append(append([]string{args[0]}, global...), args[1:]...)
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, env, args[1:])
		var u usageError
		var x exitError
		var h helpError
		switch {
		case errors.As(err, &h), wantsHelp(args[1:]):
			// Asked for help, but the command stopped before its flags
			// (import -h): its usage all the same.
			fmt.Fprint(env.Stdout, commandUsage(c.name))
			return 0
		case err == nil:
			return 0
		case errors.As(err, &u):
			fmt.Fprintf(env.Stderr, "directorctl %s: %s\n", c.name, u.msg)
			return 2
		case errors.As(err, &x):
			return int(x)
		default:
			fmt.Fprintf(env.Stderr, "directorctl %s: %v\n", c.name, err)
			return 1
		}
	}
	fmt.Fprintf(env.Stderr, "directorctl: unknown command %q\n%s", args[0], usage())
	return 2
}

// newFlags makes a flag set whose errors are usage errors. Both -flag and
// --flag spellings work, as Go's flag package accepts both.
func newFlags(env *Env, name string) *flag.FlagSet {
	fs := flag.NewFlagSet("directorctl "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return flagError(fs, err)
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	return nil
}
