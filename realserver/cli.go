package realserver

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"

	"github.com/directorlb/director/config"
)

const usage = `usage: realserver up|down|status [flags]

Prepares this host as a real server behind an LVS director, for direct
routing (dr) or IP-in-IP tunnelling (tun), and puts it all back.

  realserver up --mode dr|tun --vip ADDR[,ADDR...] [--interface IFACE]
      hold each VIP (/32 or /128) on lo (dr) or tunl0/ip6tnl0 (tun), set
      arp_ignore=1 and arp_announce=2 on all and IFACE (tun: rp_filter 0 on
      tunl0), and record the earlier value of everything changed.
      Running it again changes nothing.
  realserver down
      put back exactly what up changed; nothing else.
  realserver status [--mode dr|tun --vip ADDR[,ADDR...] [--interface IFACE]]
      show what is set and whether it is what DR/TUN needs (by default,
      what up was last asked for): exit 0 if so, 1 if not, 2 if unknown.

Flags of every command:
  -config FILE   mode, vips, interface and state from a YAML file instead
  --state PATH   the record of what up changed (default ` + DefaultState + `)
  IFACE defaults to the interface of the IPv4 default route.
`

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
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	cmd := args[0]
	switch cmd {
	case "up", "down", "status":
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "realserver: unknown command %q\n%s", cmd, usage)
		return exitUsage
	}
	fs := flag.NewFlagSet("realserver "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	mode := fs.String("mode", "", "dr or tun")
	vips := fs.String("vip", "", "the VIPs, separated by commas")
	iface := fs.String("interface", "", "the interface facing the director")
	state := fs.String("state", "", "the state file")
	cfgPath := fs.String("config", "", "a YAML file with mode, vips, interface and state")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
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
	if *cfgPath != "" {
		for _, f := range []string{"mode", "vip", "interface"} {
			if set[f] {
				return fail(exitUsage, fmt.Errorf("--%s and -config do not go together: the file says it", f))
			}
		}
		c, err := config.LoadRealServerHost(*cfgPath)
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
		addrs, err := ParseVIPs(*vips)
		if err != nil {
			return fail(exitUsage, err)
		}
		spec = &Spec{Mode: Mode(*mode), VIPs: addrs, Interface: *iface}
		if err := spec.Validate(); err != nil {
			return fail(exitUsage, err)
		}
	} else if cmd == "up" {
		return fail(exitUsage, errors.New("give --mode and --vip, or -config FILE"))
	}
	if set["state"] {
		if !filepath.IsAbs(*state) {
			return fail(exitUsage, fmt.Errorf("--state must be an absolute path, got %q", *state))
		}
		store.Path = filepath.Clean(*state)
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
