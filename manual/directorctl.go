package manual

import "github.com/directorlb/director/config"

// DefaultConfig is the configuration file directord and check-config
// read unless told otherwise.
const DefaultConfig = "/etc/director/director.yaml"

// socketFlags are how a command that talks to directord finds its
// control socket.
func socketFlags(more ...Flag) []Flag {
	return append([]Flag{
		{Name: "socket", Arg: "PATH", Default: config.DefaultSocket, Help: "directord's control socket"},
		{Name: "config", Arg: "FILE", Help: "directord's config file: the socket is its control.socket (instead of -socket)"},
	}, more...)
}

// Directorctl is directorctl(8), and directorctl's help.
func Directorctl() *Page {
	sock := socketFlags()
	return &Page{
		Name:    "directorctl",
		Section: 8,
		Summary: "the IPVS table as ipvsadm shows it, and control of a running directord",
		Synopsis: []string{
			"COMMAND [flags]",
			"COMMAND -h",
			"-version",
		},
		Text: `directorctl reads and writes the kernel's IPVS table the way ipvsadm does (list, save,
restore: they work with or without directord), turns keepalived and ldirectord configurations
into director's YAML (import), and controls a running directord over its control socket
(status, reload, drain, takeover, ...).`,
		Flags: []Flag{
			{Name: "socket", Arg: "PATH", Default: config.DefaultSocket,
				Help: "directord's control socket, for the commands that talk to directord (also accepted after the command)"},
			{Name: "config", Arg: "FILE",
				Help: "directord's config file, whose control.socket is the socket (instead of -socket; also accepted after the command)"},
			{Name: "version", Default: "false", Help: "print the version and exit"},
		},
		Groups: []Group{
			{Title: "Kernel table (works without directord)", Commands: []Command{
				{
					Name: "list",
					Forms: []string{
						"list [-L|-l] [-n] [-c] [--stats | --rate | --thresholds | --persistent-conn | --tun-info] [--exact] [--timeout] [--daemon] [--json]",
					},
					Summary: "The kernel's IPVS table as ipvsadm -L prints it; with -c the connections, with --timeout the timeouts, with --daemon the sync daemons.",
					Text: `Short options combine as ipvsadm's do (-Ln, -Lnc), and "directorctl -Ln" is
"directorctl list -Ln". The output is byte for byte ipvsadm's.`,
					Flags: []Flag{
						{Name: "list", Short: 'L', Help: "list (ipvsadm's -L; the command itself)"},
						{Name: "numeric", Short: 'n', Help: "numeric addresses and ports"},
						{Name: "connection", Short: 'c', Help: "the connections, as ipvsadm -L -c"},
						{Name: "stats", GNU: true, Help: "statistics: connections, packets, bytes"},
						{Name: "rate", GNU: true, Help: "rates: connections, packets and bytes per second"},
						{Name: "exact", GNU: true, Help: "exact numbers instead of K/M/G"},
						{Name: "thresholds", GNU: true, Help: "connection thresholds"},
						{Name: "persistent-conn", GNU: true, Help: "persistent connections"},
						{Name: "tun-info", GNU: true, Help: "tunnel details"},
						{Name: "timeout", GNU: true, Help: "the TCP, TCP FIN and UDP timeouts"},
						{Name: "daemon", GNU: true, Help: "the connection sync daemons"},
						{Name: "json", GNU: true, Help: "JSON instead of ipvsadm's layout"},
						{Name: "help", Short: 'h', Help: "this help"},
					},
				},
				{
					Name:    "save",
					Forms:   []string{"save [-n]"},
					Summary: "The table in ipvsadm --save -n format, on stdout.",
					Text:    `The output is always numeric, as ipvsadm -R needs; -n is accepted for habit.`,
					Flags:   []Flag{{Name: "n", Default: "true", Help: "numeric (always)"}},
				},
				{
					Name:    "restore",
					Forms:   []string{"restore"},
					Summary: "Program rules in ipvsadm --save format, read from stdin.",
					Text:    `Rules for services directord owns are overwritten at its next reconcile: change its config instead.`,
				},
			}},
			{Title: "Moving from keepalived or ldirectord (works without directord)", Commands: []Command{
				{
					Name:    "import",
					Forms:   []string{"import keepalived FILE [-root DIR] [-id NAME]", "import ldirectord FILE"},
					Summary: "Director YAML on stdout, and a report on stderr (FILE:LINE: keyword: what happened).",
					Text: `The file is read as keepalived or ldirectord reads it (keepalived's includes,
conditionals and variables; ldirectord's sections and defaults). Exit status 0: everything was
carried over; 1: the YAML is printed, read the report; 2: nothing usable. -root and -id are
keepalived's only.`,
					Flags: []Flag{
						{Name: "root", Arg: "DIR", Help: "resolve the absolute paths of include under this directory (a copied /etc/keepalived tree)"},
						{Name: "id", Arg: "NAME", Help: "the name @id conditional lines are decided by (default: this host name's first label, as keepalived)"},
					},
				},
			}},
			{Title: "Control of directord (over its control socket: see -socket and -config)", Commands: []Command{
				{
					Name: "status", Forms: []string{"status [--json]"},
					Summary: "Services, real servers, weights and health; the pair's links or the BGP peers.",
					Text:    `The kernel table shown is as directord last read it, with its own changes since.`,
					Flags:   socketFlags(Flag{Name: "json", Default: "false", Help: "print JSON"}),
				},
				{
					Name: "reload", Forms: []string{"reload [-dry-run]"},
					Summary: "Re-read the config (as SIGHUP); a bad config is refused.",
					Text: `A refused config prints its FILE:LINE:COL errors and exits 1, and directord keeps running
the previous one. -dry-run prints the kernel changes a reload would make and makes none.`,
					Flags: socketFlags(Flag{Name: "dry-run", Default: "false", Help: "print the changes a reload would make to the kernel, and make none"}),
				},
				{
					Name: "reconcile", Forms: []string{"reconcile"},
					Summary: "Compare the kernel with the config now, repairing drift.",
					Flags:   sock,
				},
				{
					Name: "drain", Forms: []string{"drain SERVICE ADDRESS"},
					Summary: "Take a real server out: weight 0, its connections finish.",
					Text: `ADDRESS is IP or IP:port, as the config writes the real server. A drain survives restarts and
reloads (it is kept in state_dir) until enable.`,
					Flags: sock,
				},
				{
					Name: "enable", Forms: []string{"enable SERVICE ADDRESS"},
					Summary: "Put a drained real server back (ADDRESS is IP or IP:port).",
					Flags:   sock,
				},
				{
					Name: "check-config", Forms: []string{"check-config [-config PATH | PATH] [-host=false]"},
					Summary: "Validate a config file and, unless -host=false, the key, password and CA files, programs and interfaces it names on this host.",
					Text: `Every problem is printed as FILE:LINE:COL: key: message, warnings with "(warning)"; exit 1
if there is any error. It needs no directord: the systemd unit runs it before starting one.`,
					Flags: []Flag{
						{Name: "config", Arg: "PATH", Default: DefaultConfig, Help: "configuration file to check"},
						{Name: "host", Default: "true", Help: "also check what the file names on this host: key, password and CA files, programs, interfaces (false: the file alone)"},
					},
				},
				{
					Name: "takeover", Forms: []string{"takeover [-wait D]"},
					Summary: "Planned switchover: this director becomes active.",
					Text:    `It waits until the pair has switched, so a script can rely on the exit status.`,
					Flags:   socketFlags(waitFlag()),
				},
				{
					Name: "release", Forms: []string{"release [-wait D]"},
					Summary: "Planned switchover: the peer becomes active.",
					Text:    `It waits until the peer holds the VIPs.`,
					Flags:   socketFlags(waitFlag()),
				},
				{
					Name: "drain-node", Forms: []string{"drain-node"},
					Summary: "BGP group: withdraw every VIP from the routers and keep forwarding what still arrives; survives restarts.",
					Flags:   sock,
				},
				{
					Name: "enable-node", Forms: []string{"enable-node"},
					Summary: "BGP group: announce again.",
					Flags:   sock,
				},
			}},
		},
		Sections: []Section{
			{Title: "Exit status", Text: `0: success. 1: failure (the command printed why). 2: a usage error, or import found nothing usable.`},
			{Title: "Files", Text: `  ` + DefaultConfig + `
      the configuration check-config reads by default

  ` + config.DefaultSocket + `
      directord's control socket (root, or directord's user, only)

  /proc/net/ip_vs_conn
      the connections list -c reads`},
		},
		SeeAlso: []string{"directord(8)", "director.yaml(5)", "realserver(8)", "ipvsadm(8)"},
	}
}

func waitFlag() Flag {
	return Flag{Name: "wait", Arg: "D", Default: "10s", Help: "how long to wait for the switchover (0: do not wait)"}
}
