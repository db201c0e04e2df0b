package manual

import "github.com/directorlb/director/config"

// Directord is directord(8), and directord's -help.
func Directord() *Page {
	return &Page{
		Name:     "directord",
		Section:  8,
		Summary:  "Linux IPVS load-balancer director daemon",
		Synopsis: []string{"[-config PATH] [-log-format text|json] [-log-level LEVEL] [-version]"},
		Text: `directord programs the kernel's IPVS table from its YAML configuration, director.yaml(5), and
keeps it that way: it checks the real servers and sets their weights from their health, reads the
kernel's table every ipvs.reconcile_interval and repairs what changed behind its back, and, with a
failover block, runs a pair of directors with heartbeats and the VIPs, or with a bgp block, a group of
directors announcing the VIPs to routers.

It changes only the services it created (and keeps their list next to the control socket, in
owned.json): other services in the kernel are left alone. When it stops, the table stays in the
kernel unless ipvs.cleanup_on_exit is set, so traffic keeps flowing across restarts and upgrades.

A configuration with any problem is refused whole: at start directord prints every problem as
FILE:LINE:COL: key: message and exits 1, having changed nothing; on a reload it keeps the config in
force. directorctl check-config says the same without a daemon.

directorctl(8) talks to it over the control socket (status, reload, drain, takeover); Prometheus
metrics, /healthz, /readyz and a status page are served on metrics.listen.`,
		Flags: []Flag{
			{Name: "config", Arg: "PATH", Default: DefaultConfig, Help: "configuration file"},
			{Name: "log-format", Arg: "FORMAT", Default: "text", Help: "log format: text or json"},
			{Name: "log-level", Arg: "LEVEL", Default: "info", Help: "log level: debug, info, warn or error"},
			{Name: "version", Default: "false", Help: "print the version and exit"},
		},
		Sections: []Section{
			{Title: "Signals", Text: `SIGHUP: reload the configuration (as directorctl reload, which also reports a refused file).
SIGTERM, SIGINT: stop gracefully: a bgp group director withdraws its VIPs and waits bgp.drain_time; a
pair's active director hands its VIPs over.`},
			{Title: "Exit status", Text: `0: stopped on a signal. 1: the configuration is invalid or directord failed (the log and
stderr say why). 2: a usage error.`},
			{Title: "Files", Text: `  ` + DefaultConfig + `
      the configuration, director.yaml(5)

  ` + config.DefaultSocket + `
      the control socket (control.socket), mode 0600; owned.json, the services directord created,
      is kept beside it

  ` + config.DefaultStateDir + `/drains.json
      the real servers drained with directorctl drain, kept across reboots (state_dir)`},
		},
		SeeAlso: []string{"directorctl(8)", "director.yaml(5)", "realserver(8)", "ipvsadm(8)", "keepalived(8)"},
	}
}

// DefaultRealserverState is realserver's default state file
// (realserver.DefaultState; realserver's tests tie the two).
const DefaultRealserverState = "/run/realserver/state.json"

// Realserver is realserver(8), and realserver's -help.
func Realserver() *Page {
	return &Page{
		Name:     "realserver",
		Section:  8,
		Summary:  "prepare a real server for LVS direct routing or tunnelling, and put it back",
		Synopsis: []string{"up|down|status [flags]", "-version"},
		Text: `Prepares this host as a real server behind an LVS director, for direct routing (dr) or IP-in-IP
tunnelling (tun), and puts it all back.`,
		Groups: []Group{{Title: "Commands", Commands: []Command{
			{
				Name:  "up",
				Forms: []string{"up --mode dr|tun --vip ADDR[,ADDR...] [--interface IFACE]", "up -config FILE"},
				Summary: `Hold each VIP (/32 or /128) on lo (dr) or tunl0/ip6tnl0 (tun), set arp_ignore=1 and
arp_announce=2 on all and IFACE (tun: rp_filter 0 on tunl0), and record the earlier value of everything
changed. Running it again changes nothing.`,
			},
			{
				Name:    "down",
				Forms:   []string{"down"},
				Summary: "Put back exactly what up changed; nothing else.",
			},
			{
				Name:  "status",
				Forms: []string{"status [--mode dr|tun --vip ADDR[,ADDR...] [--interface IFACE]]"},
				Summary: `Show what is set and whether it is what DR/TUN needs (by default, what up was last asked
for): exit 0 if so, 1 if not, 2 if unknown.`,
			},
		}}},
		Flags: []Flag{
			{Name: "mode", GNU: true, Arg: "MODE", Help: "dr or tun"},
			{Name: "vip", GNU: true, Arg: "ADDRS", Help: "the VIPs, separated by commas"},
			{Name: "interface", GNU: true, Arg: "IFACE", Help: "the interface facing the director (default: the interface of the IPv4 default route)"},
			{Name: "state", GNU: true, Arg: "PATH", Help: "the record of what up changed (default " + DefaultRealserverState + ")"},
			{Name: "config", Arg: "FILE", Help: "mode, vips, interface and state from a YAML file instead"},
		},
		KeysTitle: "Configuration file",
		Keys: []KeyBlock{{Path: "realserver.yaml", Text: `The file -config reads (/etc/director/realserver.yaml for the systemd unit):`, Keys: []Key{
			{"mode", "dr or tun", "required", "as --mode: dr holds the VIPs on lo, tun on tunl0 (IPv4) and ip6tnl0 (IPv6)"},
			{"vips", "address or list of addresses", "required", "as --vip: the VIPs of every service this server answers for"},
			{"interface", "interface name", "the IPv4 default route's", "as --interface: the interface facing the director"},
			{"state", "absolute path", DefaultRealserverState, "as --state: where up records what it changed"},
		}}},
		Sections: []Section{
			{Title: "Exit status", Text: `0: done (status: the host is ready). 1: the command failed, or status found a problem. 2: bad
flags or configuration, or status could not tell.`},
			{Title: "Files", Text: `  /etc/director/realserver.yaml
      the configuration of the systemd unit realserver.service

  ` + DefaultRealserverState + `
      what up changed, for down; under /run because a reboot forgets both`},
		},
		SeeAlso: []string{"directord(8)", "directorctl(8)", "director.yaml(5)"},
	}
}
