package realserver

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"

	"github.com/directorlb/director/config"
	"github.com/directorlb/director/manual"
)

// usage is realserver's help, package manual's Realserver page, which
// realserver(8) is rendered from too.
func usage() string { return manual.Realserver().Usage() }

// cliFlags are the flags of every command.
type cliFlags struct {
	mode, vips, iface, state, config string
}

// newFlags is the commands' flag set. Its flags are manual.Realserver's,
// which -h prints and realserver(8) is made of (cli_test.go holds the two
// to each other).
func newFlags(cmd string, fl *cliFlags) *flag.FlagSet {
	fs := flag.NewFlagSet("realserver "+cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&fl.mode, "mode", "", "dr or tun")
	fs.StringVar(&fl.vips, "vip", "", "the VIPs, separated by commas")
	fs.StringVar(&fl.iface, "interface", "", "the interface facing the director (default: the interface of the IPv4 default route)")
	fs.StringVar(&fl.state, "state", "", "the record of what up changed (default "+DefaultState+")")
	fs.StringVar(&fl.config, "config", "", "mode, vips, interface and state from a YAML file instead")
	return fs
}

// Exit statuses.
const (
	exitOK      = 0
	exitFailed  = 1 // the command failed, or status found a problem
	exitUsage   = 2 // bad flags or config, or status could not tell
	exitUnknown = 2
)

// Opener gives the Kernel to work on and a function releasing it.
type Opener func() (Kernel, func(), error)

// OpenNetlink is the Opener of the real kernel: the namespace this
// process runs in.
func OpenNetlink() (Kernel, func(), error) {
	k, err := NewNetlink()
	if err != nil {
		return nil, nil, err
	}
	return k, k.Close, nil
}

// Run is the realserver command: args without the program name. It
// returns the exit status.
func Run(args []string, stdout, stderr io.Writer, open Opener) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage())
		return exitUsage
	}
	cmd := args[0]
	switch cmd {
	case "up", "down", "status":
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage())
		return exitOK
	default:
		fmt.Fprintf(stderr, "realserver: unknown command %q\n%s", cmd, usage())
		return exitUsage
	}
	var fl cliFlags
	fs := newFlags(cmd, &fl)
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usage())
			return exitOK
		}
		fmt.Fprintf(stderr, "realserver %s: %v\n%s", cmd, err, usage())
		return exitUsage
	}
	fail := func(code int, err error) int {
		fmt.Fprintf(stderr, "realserver %s: %v\n", cmd, err)
		return code
	}
	if fs.NArg() > 0 {
		return fail(exitUsage, fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	var spec *Spec
	store := Store{Path: DefaultState}
	if fl.config != "" {
		for _, f := range []string{"mode", "vip", "interface"} {
			if set[f] {
				return fail(exitUsage, fmt.Errorf("--%s and -config do not go together: the file says it", f))
			}
		}
		c, err := config.LoadRealServerHost(fl.config)
		if err != nil {
			fmt.Fprintf(stderr, "realserver %s: %v\n", cmd, err)
			return exitUsage
		}
		if cmd != "down" {
			spec = &Spec{Mode: Mode(c.Mode), VIPs: c.VIPs, Interface: c.Interface}
		}
		if c.State != "" {
			store.Path = c.State
		}
	} else if set["mode"] || set["vip"] || set["interface"] {
		if cmd == "down" {
			return fail(exitUsage, errors.New("down takes no --mode, --vip or --interface: it undoes what the state file records"))
		}
		if !set["mode"] || !set["vip"] {
			return fail(exitUsage, errors.New("give both --mode (dr or tun) and --vip"))
		}
		addrs, err := ParseVIPs(fl.vips)
		if err != nil {
			return fail(exitUsage, err)
		}
		spec = &Spec{Mode: Mode(fl.mode), VIPs: addrs, Interface: fl.iface}
		if err := spec.Validate(); err != nil {
			return fail(exitUsage, err)
		}
	} else if cmd == "up" {
		return fail(exitUsage, errors.New("give --mode and --vip, or -config FILE"))
	}
	if set["state"] {
		if !filepath.IsAbs(fl.state) {
			return fail(exitUsage, fmt.Errorf("--state must be an absolute path, got %q", fl.state))
		}
		store.Path = filepath.Clean(fl.state)
	}

	k, release, err := open()
	if err != nil {
		return fail(exitFailed, err)
	}
	defer release()

	switch cmd {
	case "up":
		if err := Up(k, store, *spec, stdout); err != nil {
			return fail(exitCode(err), err)
		}
	case "down":
		if err := Down(k, store, stdout); err != nil {
			return fail(exitFailed, err)
		}
	case "status":
		if spec == nil {
			st, err := store.Load()
			if err != nil {
				return fail(exitUnknown, err)
			}
			if st == nil {
				return fail(exitUnknown, fmt.Errorf("nothing to check against: no state at %s (run up first, or give --mode and --vip)", store.Path))
			}
			s := st.Spec()
			spec = &s
		}
		rep, err := Status(k, *spec)
		if err != nil {
			return fail(exitUnknown, err)
		}
		rep.Write(stdout)
		if !rep.Ready() {
			return exitFailed
		}
	}
	return exitOK
}

func exitCode(err error) int {
	if errors.Is(err, ErrSpec) {
		return exitUsage
	}
	return exitFailed
}
