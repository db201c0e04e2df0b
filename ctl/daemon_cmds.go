package ctl

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/directorlb/director/config"
	"github.com/directorlb/director/control"
	"github.com/directorlb/director/daemon"
	"github.com/directorlb/director/director"
)

func socketFlag(fs interface {
	StringVar(*string, string, string, string)
}, p *string) {
	fs.StringVar(p, "socket", config.DefaultSocket, "directord's control socket")
}

func runStatus(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "status")
	var socket string
	socketFlag(fs, &socket)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	var st director.Status
	if err := control.Call(ctx, socket, control.Request{Cmd: "status"}, &st); err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	writeStatus(env, st, time.Now())
	return nil
}

func writeStatus(env *Env, st director.Status, now time.Time) {
	fmt.Fprintf(env.Stdout, "node %s  config %s\n", st.Node, st.Config)
	last := "never"
	if !st.LastReconcile.IsZero() {
		last = fmt.Sprintf("%s ago", now.Sub(st.LastReconcile).Round(time.Second))
	}
	fmt.Fprintf(env.Stdout, "last good reconcile %s (%d reconciles)\n", last, st.Reconciles)
	if st.LastError != "" {
		fmt.Fprintf(env.Stdout, "last error: %s\n", st.LastError)
	}
	w := tabwriter.NewWriter(env.Stdout, 0, 8, 2, ' ', 0)
	for _, s := range st.Services {
		kernel := "in kernel"
		if !s.InKernel {
			kernel = "NOT IN KERNEL"
		}
		fmt.Fprintf(w, "\nservice %s\t%s\t%s\t%s\n", s.Name, s.Key, s.Scheduler, kernel)
		fmt.Fprintln(w, "  real server\tforward\tweight\tkernel weight\thealth")
		for _, r := range s.RealServers {
			addr := r.Address
			if r.Sorry {
				addr += " (sorry)"
			}
			if r.Drained {
				addr += " (drained)"
			}
			kw := strconv.Itoa(r.KernelWeight)
			if r.KernelWeight < 0 {
				kw = "-"
			}
			fmt.Fprintf(w, "  %s\t%s\t%d\t%s\t%s\n", addr, r.Forward, r.ConfiguredWeight, kw, healthText(r.Health, now))
		}
	}
	w.Flush()
	if len(st.Foreign) > 0 {
		fmt.Fprintf(env.Stdout, "\nnot managed by directord (left alone): %s\n", strings.Join(st.Foreign, ", "))
	}
}

func runReload(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "reload")
	var socket string
	socketFlag(fs, &socket)
	if err := parse(fs, args); err != nil {
		return err
	}
	var res daemon.ReloadResult
	err := control.Call(ctx, socket, control.Request{Cmd: "reload"}, &res)
	var re *control.RemoteError
	if errors.As(err, &re) {
		// The daemon refused the file: its message is the FILE:LINE:COL
		// list, one problem a line.
		fmt.Fprintln(env.Stderr, re.Msg)
		fmt.Fprintln(env.Stderr, "directorctl reload: refused; directord keeps running the previous config")
		return exitError(1)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "reloaded %s: %d change(s) applied", res.Config, res.Changes)
	if res.Failed > 0 {
		fmt.Fprintf(env.Stdout, ", %d refused by the kernel:\n", res.Failed)
		for _, e := range res.Errors {
			fmt.Fprintf(env.Stdout, "  %s\n", e)
		}
		return exitError(1)
	}
	fmt.Fprintln(env.Stdout)
	return nil
}

func runCheckConfig(_ context.Context, env *Env, args []string) error {
	fs := newFlags(env, "check-config")
	path := fs.String("config", "/etc/director/director.yaml", "configuration file to check")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := config.Load(*path)
	var errs config.Errors
	if errors.As(err, &errs) {
		for _, e := range errs {
			fmt.Fprintln(env.Stdout, e)
		}
		return exitError(1)
	}
	if err != nil {
		return err
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintf(env.Stdout, "%s (warning)\n", w)
	}
	fmt.Fprintf(env.Stdout, "%s: ok (%d service(s))\n", cfg.Path, len(cfg.Services))
	return nil
}

func runReconcile(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "reconcile")
	var socket string
	socketFlag(fs, &socket)
	if err := parse(fs, args); err != nil {
		return err
	}
	var res daemon.ReloadResult
	if err := control.Call(ctx, socket, control.Request{Cmd: "reconcile"}, &res); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "reconciled: %d change(s) applied, %d refused by the kernel\n", res.Changes, res.Failed)
	if res.Failed > 0 {
		return exitError(1)
	}
	return nil
}

func runDrain(ctx context.Context, env *Env, args []string) error {
	return drainCmd(ctx, env, "drain", args)
}

func runEnable(ctx context.Context, env *Env, args []string) error {
	return drainCmd(ctx, env, "enable", args)
}

func drainCmd(ctx context.Context, env *Env, cmd string, args []string) error {
	fs := newFlags(env, cmd)
	var socket string
	socketFlag(fs, &socket)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usagef("usage: directorctl %s SERVICE ADDRESS [-socket PATH]", cmd)
	}
	var res director.DrainResult
	if err := control.Call(ctx, socket, control.Request{Cmd: cmd, Service: pos[0], Address: pos[1]}, &res); err != nil {
		return err
	}
	state := "drained (weight 0; existing connections finish)"
	if !res.Drained {
		state = "enabled"
	}
	note := ""
	if !res.Changed {
		note = " (already)"
	}
	fmt.Fprintf(env.Stdout, "%s %s: %s%s\n", res.Service, res.Server, state, note)
	return nil
}

// parseInterleaved parses flags that may come before, between or after
// the positional arguments, as admins type them.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, usagef("%v", err)
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// healthText is the status column for one server's check.
func healthText(h *director.Health, now time.Time) string {
	if h == nil {
		return "-"
	}
	state := "down"
	if h.Healthy {
		state = "up"
	}
	out := fmt.Sprintf("%s (%s) since %s ago", state, h.Check, now.Sub(h.Since).Round(time.Second))
	if !h.Checked.IsZero() {
		out += fmt.Sprintf(", last check %.1fms", h.LatencyMS)
	}
	if h.Error != "" {
		out += ": " + h.Error
	}
	return out
}
