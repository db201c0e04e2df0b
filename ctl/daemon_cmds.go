package ctl

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/directorlb/director/config"
	"github.com/directorlb/director/control"
	"github.com/directorlb/director/director"
	"github.com/directorlb/director/failover"
	"github.com/directorlb/director/preflight"
)

func runStatus(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "status")
	sock := newSocketFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	socket, err := sock.path()
	if err != nil {
		return err
	}
	var st control.Status
	if err := control.Call(ctx, socket, control.Request{Cmd: control.CmdStatus}, &st); err != nil {
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

func writeStatus(env *Env, st control.Status, now time.Time) {
	role := st.Role
	if role == "" && st.Failover == nil {
		// A daemon that does not say (an older one) and has no pair is
		// single, and a single director is always active.
		role = "active"
	}
	fmt.Fprintf(env.Stdout, "node %s  role %s  config %s\n", st.Node, role, st.Config)
	if st.BGP != nil {
		// One of a group: every director active, none single.
		writeBGP(env, st.BGP, now)
	} else {
		writeFailover(env, st.Failover)
	}
	last := "never"
	if !st.LastReconcile.IsZero() {
		last = fmt.Sprintf("%s ago", now.Sub(st.LastReconcile).Round(time.Second))
	}
	read := "never"
	if !st.KernelRead.IsZero() {
		read = fmt.Sprintf("%s ago", now.Sub(st.KernelRead).Round(time.Second))
	}
	// Status reads nothing: the table below is the kernel's at the last
	// read, with directord's own changes since.
	fmt.Fprintf(env.Stdout, "last good reconcile %s (%d reconciles); kernel table as read %s\n", last, st.Reconciles, read)
	if st.LastError != "" {
		fmt.Fprintf(env.Stdout, "last error: %s\n", st.LastError)
	}
	w := tabwriter.NewWriter(env.Stdout, 0, 8, 2, ' ', 0)
	for _, s := range st.Services {
		kernel := "in kernel"
		if !s.InKernel {
			kernel = "NOT IN KERNEL"
		}
		if s.OrderCanonical != nil && !*s.OrderCanonical {
			// The kernel's mh table differs from the group's until the
			// next reconcile restores the order.
			kernel += ", destination order NOT canonical"
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
	sock := newSocketFlags(fs)
	dryRun := fs.Bool("dry-run", false, "print the changes a reload would make to the kernel, and make none")
	if err := parse(fs, args); err != nil {
		return err
	}
	socket, err := sock.path()
	if err != nil {
		return err
	}
	var res control.ReloadResult
	err = control.Call(ctx, socket, control.Request{Cmd: control.CmdReload, DryRun: *dryRun}, &res)
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
	if res.DryRun {
		writePlan(env, res)
		return nil
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

// writePlan prints a reload's dry run: the warnings on stderr as
// check-config prints them, the kernel changes on stdout, one a line.
func writePlan(env *Env, res control.ReloadResult) {
	for _, w := range res.Warnings {
		fmt.Fprintln(env.Stderr, w)
	}
	if len(res.Plan) == 0 {
		fmt.Fprintf(env.Stdout, "dry run: %s is valid; a reload would change nothing in the kernel\n", res.Config)
	} else {
		fmt.Fprintf(env.Stdout, "dry run: %s is valid; a reload would make %d change(s) to the kernel:\n", res.Config, len(res.Plan))
		for _, line := range res.Plan {
			fmt.Fprintf(env.Stdout, "  %s\n", line)
		}
	}
	for _, n := range res.Notes {
		fmt.Fprintf(env.Stdout, "note: %s\n", n)
	}
	fmt.Fprintln(env.Stdout, "nothing was changed")
}

func runCheckConfig(_ context.Context, env *Env, args []string) error {
	fs := newFlags(env, "check-config")
	path := fs.String("config", "/etc/director/director.yaml", "configuration file to check")
	host := fs.Bool("host", true, "also check what the file names on this host: key, password and CA files, programs, interfaces (false: the file alone)")
	if err := parseConfigPath(fs, args, path); err != nil {
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
	// The file's warnings and the host's problems, in file order.
	type line struct {
		pos  config.Pos
		text string
	}
	var lines []line
	for _, w := range cfg.Warnings {
		lines = append(lines, line{w.Pos, w.Error() + " (warning)"})
	}
	var hostErrs []error
	if *host {
		var hostWarns []error
		hostErrs, hostWarns = preflight.Check(cfg)
		add := func(e error, suffix string) {
			var ce *config.Error
			if errors.As(e, &ce) {
				lines = append(lines, line{ce.Pos, ce.Error() + suffix})
			} else {
				lines = append(lines, line{config.Pos{Line: 1 << 30}, e.Error() + suffix})
			}
		}
		for _, e := range hostErrs {
			add(e, "")
		}
		for _, w := range hostWarns {
			add(w, " (warning)")
		}
	}
	slices.SortStableFunc(lines, func(a, b line) int {
		return cmp.Or(cmp.Compare(a.pos.Line, b.pos.Line), cmp.Compare(a.pos.Col, b.pos.Col))
	})
	for _, l := range lines {
		fmt.Fprintln(env.Stdout, l.text)
	}
	if len(hostErrs) > 0 {
		// directord would refuse to start with these (systemd runs this
		// as ExecStartPre to say so before it tries).
		return exitError(1)
	}
	fmt.Fprintf(env.Stdout, "%s: ok (%d service(s))\n", cfg.Path, len(cfg.Services))
	return nil
}

func runReconcile(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "reconcile")
	sock := newSocketFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	socket, err := sock.path()
	if err != nil {
		return err
	}
	var res control.ReloadResult
	if err := control.Call(ctx, socket, control.Request{Cmd: control.CmdReconcile}, &res); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "reconciled: %d change(s) applied, %d refused by the kernel\n", res.Changes, res.Failed)
	if res.Failed > 0 {
		return exitError(1)
	}
	return nil
}

func runDrain(ctx context.Context, env *Env, args []string) error {
	return drainCmd(ctx, env, control.CmdDrain, args)
}

func runEnable(ctx context.Context, env *Env, args []string) error {
	return drainCmd(ctx, env, control.CmdEnable, args)
}

func drainCmd(ctx context.Context, env *Env, cmd control.Command, args []string) error {
	fs := newFlags(env, string(cmd))
	sock := newSocketFlags(fs)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usagef("usage: directorctl %s SERVICE ADDRESS [-socket PATH]", cmd)
	}
	socket, err := sock.path()
	if err != nil {
		return err
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
			return nil, flagError(fs, err)
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

// writeFailover prints the pair: this director, the peer, each link and
// the ping nodes, as an admin checks them during an incident.
func writeFailover(env *Env, fo *failover.Status) {
	if fo == nil {
		fmt.Fprintln(env.Stdout, "failover: none: a single director, always active (it holds its VIPs)")
		return
	}
	req := ""
	if fo.Request != "" {
		req = fmt.Sprintf(", %s requested", fo.Request)
	}
	fmt.Fprintf(env.Stdout, "failover: %s for %s, priority %d%s\n", fo.Role, msText(fo.SinceMS), fo.Priority, req)
	if fo.Fault != "" {
		fmt.Fprintf(env.Stdout, "  fault: %s\n", fo.Fault)
	}
	if p := fo.Peer; p != nil {
		state := "alive"
		if !p.Alive {
			state = "DEAD"
		}
		cfg := "config matches"
		if !p.ConfigMatch {
			cfg = "CONFIG DIFFERS"
		}
		fmt.Fprintf(env.Stdout, "  peer %s: %s, %s, priority %d, last heard %s ago, %s\n", p.Node, p.Role, state, p.Priority, msText(p.LastHeardMS), cfg)
	} else {
		fmt.Fprintln(env.Stdout, "  peer: never heard")
	}
	w := tabwriter.NewWriter(env.Stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(w, "  link\tstate\tlast heartbeat\treceived\tsend errors")
	for _, l := range fo.Links {
		state, age := "down", "never"
		if l.Up {
			state = "up"
		}
		if l.LastHeardMS >= 0 {
			age = msText(l.LastHeardMS) + " ago"
		}
		errText := strconv.FormatUint(l.SendErrors, 10)
		if l.LastError != "" {
			errText += " (" + l.LastError + ")"
		}
		fmt.Fprintf(w, "  %s\t%s\t%s\t%d\t%s\n", l.Name, state, age, l.Received, errText)
	}
	w.Flush()
	if fo.Ping.Total > 0 {
		fmt.Fprintf(env.Stdout, "  ping nodes: %d of %d reachable\n", fo.Ping.Reached, fo.Ping.Total)
	}
	for _, d := range fo.Sync {
		fmt.Fprintf(env.Stdout, "  ipvs sync daemon: %s on %s, syncid %d\n", d.State, d.Interface, d.SyncID)
	}
	if fo.SyncError != "" {
		fmt.Fprintf(env.Stdout, "  ipvs sync daemons: %s\n", fo.SyncError)
	}
	if n := fo.Forged + fo.Malformed + fo.Replayed + fo.SameName; n > 0 {
		fmt.Fprintf(env.Stdout, "  refused heartbeats: %d forged, %d malformed, %d replayed or stale, %d with our name\n", fo.Forged, fo.Malformed, fo.Replayed, fo.SameName)
	}
}

func msText(ms int64) string {
	return (time.Duration(ms) * time.Millisecond).String()
}

func runTakeover(ctx context.Context, env *Env, args []string) error {
	return switchover(ctx, env, control.CmdTakeover, args)
}

func runRelease(ctx context.Context, env *Env, args []string) error {
	return switchover(ctx, env, control.CmdRelease, args)
}

// switchover asks directord for a planned switchover and waits until the
// pair has done it, so a script can rely on the exit status.
func switchover(ctx context.Context, env *Env, cmd control.Command, args []string) error {
	fs := newFlags(env, string(cmd))
	sock := newSocketFlags(fs)
	wait := fs.Duration("wait", 10*time.Second, "how long to wait for the switchover (0: do not wait)")
	if err := parse(fs, args); err != nil {
		return err
	}
	socket, err := sock.path()
	if err != nil {
		return err
	}
	if err := control.Call(ctx, socket, control.Request{Cmd: cmd}, nil); err != nil {
		return err
	}
	want := "active"
	if cmd == control.CmdRelease {
		want = "standby"
	}
	if *wait <= 0 {
		fmt.Fprintf(env.Stdout, "%s requested\n", cmd)
		return nil
	}
	deadline := time.Now().Add(*wait)
	for {
		var st control.Status
		if err := control.Call(ctx, socket, control.Request{Cmd: control.CmdStatus}, &st); err != nil {
			return err
		}
		fo := st.Failover
		done := fo != nil && fo.Role == want
		if cmd == control.CmdRelease {
			// Released is done when the peer holds the VIPs.
			done = done && fo.Peer != nil && fo.Peer.Role == "active"
		}
		if done {
			peer := ""
			if fo.Peer != nil {
				peer = fmt.Sprintf("; peer %s is %s", fo.Peer.Node, fo.Peer.Role)
			}
			fmt.Fprintf(env.Stdout, "%s: this director is %s%s\n", cmd, fo.Role, peer)
			return nil
		}
		if time.Now().After(deadline) {
			role := "unknown"
			if fo != nil {
				role = fo.Role
			}
			fmt.Fprintf(env.Stderr, "directorctl %s: not done after %s; this director is %s\n", cmd, *wait, role)
			return exitError(1)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
