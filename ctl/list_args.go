package ctl

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/directorlb/director/ipvsadm"
	"github.com/directorlb/director/ipvssync"
)

// listArgs is what `directorctl list` was asked, in ipvsadm's terms.
type listArgs struct {
	o       ipvsadm.ListOptions
	conns   bool // -c: the connections
	timeout bool // --timeout
	daemon  bool // --daemon
	json    bool
	help    bool
}

// listFlag is one option of list: its long name (also accepted with one
// dash, as Go's flag package does elsewhere in directorctl), its short
// letter as ipvsadm has it (0: none), and what it sets.
type listFlag struct {
	long  string
	short byte
	help  string
	set   func(a *listArgs)
}

func listFlags() []listFlag {
	return []listFlag{
		{"list", 'L', "list (ipvsadm's -L; the command itself)", func(*listArgs) {}},
		{"", 'l', "", func(*listArgs) {}},
		{"numeric", 'n', "numeric addresses and ports", func(a *listArgs) { a.o.Numeric = true }},
		{"connection", 'c', "the connections, as ipvsadm -L -c", func(a *listArgs) { a.conns = true }},
		{"stats", 0, "statistics: connections, packets, bytes", func(a *listArgs) { a.o.Stats = true }},
		{"rate", 0, "rates: connections, packets and bytes per second", func(a *listArgs) { a.o.Rate = true }},
		{"exact", 0, "exact numbers instead of K/M/G", func(a *listArgs) { a.o.Exact = true }},
		{"thresholds", 0, "connection thresholds", func(a *listArgs) { a.o.Thresholds = true }},
		{"persistent-conn", 0, "persistent connections", func(a *listArgs) { a.o.Persistent = true }},
		{"tun-info", 0, "tunnel details", func(a *listArgs) { a.o.TunnelInfo = true }},
		{"timeout", 0, "the TCP, TCP FIN and UDP timeouts", func(a *listArgs) { a.timeout = true }},
		{"daemon", 0, "the connection sync daemons", func(a *listArgs) { a.daemon = true }},
		{"json", 0, "JSON instead of ipvsadm's layout", func(a *listArgs) { a.json = true }},
		{"help", 'h', "this help", func(a *listArgs) { a.help = true }},
	}
}

// list's help, with these options, is package manual's (the flags are
// compared with it by a test).

// parseListArgs reads list's arguments as ipvsadm reads its options:
// --long, -short letters bundled (-Lnc), and Go's -long too.
func parseListArgs(args []string) (listArgs, error) {
	var a listArgs
	flags := listFlags()
	byLong := func(name string) *listFlag {
		for i := range flags {
			if flags[i].long != "" && flags[i].long == name {
				return &flags[i]
			}
		}
		return nil
	}
	for _, arg := range args {
		switch {
		case strings.HasPrefix(arg, "--") && len(arg) > 2:
			f := byLong(arg[2:])
			if f == nil {
				return a, usagef("unknown option %s", arg)
			}
			f.set(&a)
		case strings.HasPrefix(arg, "-") && len(arg) > 1:
			if f := byLong(arg[1:]); f != nil && len(arg) > 2 {
				f.set(&a)
				continue
			}
		letters:
			for i := 1; i < len(arg); i++ {
				for _, f := range flags {
					if f.short == arg[i] {
						f.set(&a)
						continue letters
					}
				}
				return a, usagef("unknown option -%c in %s", arg[i], arg)
			}
		default:
			return a, usagef("unexpected argument %q", arg)
		}
	}
	if a.help {
		return a, nil
	}
	// ipvsadm's own rule (process_options, CMD_LIST): the connections,
	// timeouts and daemons have no statistics columns.
	other := a.conns || a.timeout || a.daemon
	if other && (a.o.Stats || a.o.Rate || a.o.Thresholds) {
		return a, usagef("options conflicts in the list command")
	}
	if other && a.json {
		return a, usagef("--json lists the table only, not -c, --timeout or --daemon")
	}
	return a, nil
}

// isListShorthand tells whether directorctl's first argument is
// ipvsadm's list option (-L, -l, --list, or bundled like -Ln), so that
// `directorctl -Ln` works as `ipvsadm -Ln` does.
func isListShorthand(arg string) bool {
	if arg == "--list" {
		return true
	}
	if len(arg) < 2 || arg[0] != '-' || arg[1] == '-' {
		return false
	}
	return strings.ContainsAny(arg[1:], "Ll") && strings.Trim(arg[1:], "Llnc") == ""
}

// openConns opens the kernel's connection list.
func openConns(env *Env) (io.ReadCloser, error) {
	if env.OpenConns != nil {
		return env.OpenConns()
	}
	f, err := os.Open(ipvsadm.ConnProcFile)
	if err != nil {
		return nil, fmt.Errorf("cannot open %s: %w (is the ip_vs module loaded?)", ipvsadm.ConnProcFile, err)
	}
	return f, nil
}

// syncDaemons lists the kernel's sync daemons.
func syncDaemons(env *Env) ([]ipvsadm.SyncDaemon, error) {
	if env.SyncDaemons != nil {
		return env.SyncDaemons()
	}
	c, err := ipvssync.OpenSync()
	if err != nil {
		return nil, fmt.Errorf("cannot open kernel IPVS: %w (is the ip_vs module loaded, and are you root?)", err)
	}
	defer c.Close()
	ds, err := c.Daemons()
	if err != nil {
		return nil, err
	}
	out := make([]ipvsadm.SyncDaemon, 0, len(ds))
	for _, d := range ds {
		out = append(out, ipvsadm.SyncDaemon{
			Backup: d.State == ipvssync.SyncBackup, Interface: d.Interface, SyncID: d.SyncID,
			MaxLen: d.MaxLen, Group: d.Group, Port: d.Port, TTL: d.TTL,
		})
	}
	return out, nil
}
