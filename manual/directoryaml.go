package manual

import (
	"github.com/directorlb/director/config"
)

// DirectorYAML is director.yaml(5): every key directord's configuration
// takes, with its default. config/ is the judge of what is accepted;
// this package's tests compare the two.
func DirectorYAML() *Page {
	return &Page{
		Name:    "director.yaml",
		Section: 5,
		Summary: "configuration of directord, the IPVS director daemon",
		Text: `directord(8) reads one YAML file, ` + DefaultConfig + ` unless started with -config PATH; directorctl
check-config validates it. Every problem is reported as FILE:LINE:COL: key: message, the key written as a
path (services[0].real_servers[1].weight); a file with any problem is refused whole: at start directord exits
1, and on a reload the config in force stays.

Durations are Go durations (500ms, 2s, 1m30s) or whole seconds (30). Booleans are true or false.
Addresses are IPv4 or IPv6, without a zone. An empty value (key: or key: ~) counts as not written.
Unknown keys, a key written twice, YAML aliases and merge keys are refused.

A minimal file:

  node: lb1
  services:
    - name: web
      vip: 192.0.2.10
      port: 80
      real_servers:
        - address: 10.1.0.11
        - address: 10.1.0.12

The keys follow, mapping by mapping; a default of "required" means the key must be written, "none"
that nothing is done without it. The full reference, with examples, is docs/configuration.md in
director's source.`,
		Keys: []KeyBlock{
			{Path: "", Keys: []Key{
				{"node", "string", "the host name", "this director's name, in logs, status and the pair's heartbeats: 1 to 64 printable bytes, no spaces"},
				{"control", "mapping", "see control", "the control socket directorctl talks to"},
				{"metrics", "mapping", "see metrics", "the Prometheus endpoint and the status page"},
				{"ipvs", "mapping", "see ipvs", "kernel table settings"},
				{"defaults", "mapping", "see defaults", "what every service inherits"},
				{"services", "list", "none", "the virtual services (services[] below)"},
				{"failover", "mapping", "absent: a single director", "the director pair (failover below)"},
				{"bgp", "mapping", "absent", "a group of directors behind routers (bgp below); not with failover"},
				{"state_dir", "absolute path", config.DefaultStateDir, "where state kept across reboots lives (the drains)"},
				{"allow_no_services", "boolean", "false", "accept a file with no service (directord would remove every service it owns)"},
				{"include", "list of paths or globs", "none", "files whose services join this file's, relative to this file's directory; an included file holds only services"},
			}},
			{Path: "control", Keys: []Key{
				{"socket", "path", config.DefaultSocket, "the unix socket of directorctl (its -socket flag); at most 107 bytes; read at start"},
			}},
			{Path: "metrics", Keys: []Key{
				{"listen", "host:port", config.DefaultMetricsListen, `where /metrics, /healthz, /readyz and the status page are served; "" disables; read at start`},
			}},
			{Path: "ipvs", Keys: []Key{
				{"timeouts", "mapping", "the kernel's", "the kernel's connection timeouts, as ipvsadm --set (ipvs.timeouts below)"},
				{"cleanup_on_exit", "boolean", "false", "remove the services directord created when it stops (false: the table stays, traffic flows across restarts)"},
				{"reconcile_interval", "duration", "5s", "how often the kernel's table is read and repaired"},
			}},
			{Path: "ipvs.timeouts", Keys: []Key{
				{"tcp", "duration, whole seconds", "the kernel's", "idle timeout of an established TCP connection; 0 leaves the kernel's"},
				{"tcp_fin", "duration, whole seconds", "the kernel's", "timeout of a TCP connection after FIN"},
				{"udp", "duration, whole seconds", "the kernel's", "timeout of a UDP connection"},
			}},
			{Path: "defaults", Keys: []Key{
				{"check", "check", "{type: tcp, interval: 2s, timeout: 1s, rise: 2, fall: 3}", "the check every service starts from; a service's check is merged over it key by key"},
			}},
			{Path: "included files", Text: `Each file named by include may hold this key only.`, Keys: []Key{
				{"services", "list", "none", "services, as services[] below; they come after the main file's"},
			}},
			{Path: "services[]", Text: `Each entry is one kernel virtual service (one per VIP with vips) and its real servers.`, Keys: []Key{
				{"name", "string", "required", "unique name: 1 to 64 lower-case letters, digits, _, . and -"},
				{"vip", "address", "required, unless fwmark or vips", "the virtual IP"},
				{"vips", "list of addresses", "none", "several VIPs, of one family or both, instead of vip; each is a kernel service with the real servers of its family"},
				{"port", "integer 0-65535", "required with vip", "the service port; 0 is every port and needs persistence"},
				{"protocol", "tcp, udp or sctp", "tcp", "the transport protocol"},
				{"fwmark", "integer 1-4294967295", "none", "a firewall-mark service instead of vip, port and protocol"},
				{"family", "ipv4 or ipv6", "ipv4", "the family of a fwmark service"},
				{"scheduler", "string", config.DefaultScheduler + " (mh with bgp)", "the kernel scheduler: rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, fo, ovf, mh, twos"},
				{"scheduler_flags", "list", "none (with bgp: mh-port, mh-fallback)", "sh-port, sh-fallback (sh), mh-port, mh-fallback (mh)"},
				{"one_packet", "boolean", "false", "schedule each UDP datagram on its own (ipvsadm -o)"},
				{"persistence", "duration, whole seconds", "none", "a client keeps its real server this long after its last connection (ipvsadm -p)"},
				{"persistence_netmask", "mask or prefix length", "32 (IPv4), 128 (IPv6)", "which clients count as one for persistence (ipvsadm -M)"},
				{"forward", "nat, dr or tun", "nat (with bgp: required, dr or tun)", "how packets reach the real servers; inherited by each"},
				{"tunnel", "mapping", "{type: ipip, checksum: nocsum}", "the tunnel of forward: tun (services[].tunnel below)"},
				{"check", "check", "defaults.check", "how the real servers are checked (check below), merged over defaults.check"},
				{"on_failure", "quiesce or remove", "quiesce", "a failed real server gets weight 0 (its connections finish), or is removed from the kernel (not with bgp)"},
				{"slow_start", "duration", "none", "ramp a recovered real server up to its weight over this time"},
				{"sorry_server", "address[:port]", "none", "served only while no real server is healthy"},
				{"announce", "mapping", "{min_healthy: 1} with bgp", "when the VIP is announced over BGP (services[].announce below)"},
				{"real_servers", "list", "none", "the real servers (services[].real_servers[] below)"},
			}},
			{Path: "services[].tunnel", Text: `Also a real server's own tunnel, which replaces the service's whole.`, Keys: []Key{
				{"type", "ipip, gue or gre", "ipip", "the encapsulation"},
				{"port", "integer 1-65535", "none", "the UDP port real servers decapsulate GUE on: required for gue, refused for the others"},
				{"checksum", "nocsum, csum or remcsum", "nocsum", "tunnel checksums; remcsum only with gue"},
			}},
			{Path: "services[].announce", Keys: []Key{
				{"min_healthy", "integer 1-100000", "1", "healthy real servers needed for the VIP to be announced (bgp only)"},
			}},
			{Path: "services[].real_servers[]", Keys: []Key{
				{"address", "address[:port]", "required", "the real server, with its port or the service's"},
				{"weight", "integer 0-65535", "1", "its share of new connections (0: none)"},
				{"forward", "nat, dr or tun", "the service's", "how packets reach it"},
				{"tunnel", "mapping", "the service's", "its own tunnel (services[].tunnel); needs forward: tun"},
				{"upper_threshold", "integer 0-4294967295", "0", "stop sending it new connections above this many (ipvsadm -x); 0: no limit"},
				{"lower_threshold", "integer 0-4294967295", "0", "resume below this many (ipvsadm -y); at most upper_threshold"},
			}},
			{Path: "check", Text: `A check: defaults.check and each service's check. The keys after start_healthy belong to some
check types only (named in brackets); a key for another type is refused.`, Keys: []Key{
				{"type", "check type", "tcp", "tcp, http, https, mysql, postgres, dns, exec, ldap, radius, smtp, banner, file, udp, icmp, sip or none"},
				{"interval", "duration", "2s", "time between probes of a server"},
				{"fast_interval", "duration", "none", "the interval while a server's state is changing; at most interval"},
				{"timeout", "duration", "1s", "how long one probe may take"},
				{"rise", "integer 1-1000", "2", "successes in a row that make an unhealthy server healthy"},
				{"fall", "integer 1-1000", "3", "failures in a row that make a healthy server unhealthy"},
				{"start_healthy", "boolean", "false", "a new server starts healthy instead of after rise successes"},
				{"address", "address", "the real server's", "probe this address instead"},
				{"port", "integer 1-65535", "the real server's", "probe this port instead"},
				{"send", "string", "none", "[tcp, udp] text to send after connecting; udp: the datagram"},
				{"expect", "string", "none", "[tcp, udp, mysql, postgres] text the reply (or the query's first value) must contain"},
				{"path", "string starting with /", "/", "[http, https] the request path and query"},
				{"expect_status", "list of codes or ranges", "200-299", "[http, https] accepted statuses, 100-599"},
				{"method", "HTTP method", "GET", "[http, https] the request method, upper case"},
				{"host", "host[:port]", "the target address", "[http, https] the Host header"},
				{"body", "regular expression", "none", "[http, https] must match within the first 64 KiB of the body"},
				{"server_name", "name", "host without its port, else the target address", "[https, ldap] the TLS server name sent and verified"},
				{"ca_file", "path", "the system's roots", "[https, ldap] PEM bundle of the CAs to verify against"},
				{"insecure_skip_verify", "boolean", "false", "[https, ldap] do not verify the certificate"},
				{"command", "list of strings", "required", "[exec] the program (an absolute path) and its arguments"},
				{"dynamic_weight", "boolean", "false", "[exec] the first line of output is a weight percentage"},
				{"user", "string", "required (banner: none)", "[mysql, postgres, radius, banner] the user logged in as"},
				{"password_file", "path", "none (radius: required)", "[mysql, postgres, ldap, radius, banner] a file holding the password"},
				{"password_env", "name", "none", "[mysql, postgres, banner] an environment variable of directord holding the password"},
				{"database", "string", "none (postgres: the user's name)", "[mysql, postgres] the database to connect to"},
				{"query", "string", "SELECT 1", "[mysql, postgres] the query"},
				{"query_name", "DNS name", "required", "[dns] the name asked"},
				{"query_type", "DNS type", "A", "[dns] A, AAAA, CNAME, MX, NS, PTR, SOA, SRV or TXT"},
				{"rcode", "DNS response code", "NOERROR", "[dns] NOERROR, NXDOMAIN, SERVFAIL or REFUSED"},
				{"answer", "string", "none", "[dns] text one answer record must contain"},
				{"bind_dn", "DN", "none: an anonymous bind", "[ldap] the DN bound as, with the password in password_file"},
				{"base_dn", "DN", `"" (the root DSE)`, "[ldap] the entry read"},
				{"tls", "starttls or ldaps", "none", "[ldap] StartTLS on the plain port, or TLS from the first byte"},
				{"secret_file", "path", "required", "[radius] a file holding the RADIUS shared secret"},
				{"helo_name", "host name", "directord's host name", "[smtp] the name sent with EHLO"},
				{"protocol", "ftp, pop3, imap or nntp", "required", "[banner] the protocol spoken"},
				{"file", "absolute path", "required", "[file] the file holding the number"},
				{"digest", "HEX, md5:HEX or sha256:HEX", "none", "[http, https] the digest of the whole body (at most 1 MiB)"},
				{"weight_from_exit", "boolean", "false", "[exec] the exit status sets the weight, as keepalived's misc_dynamic"},
			}},
			{Path: "failover", Text: `The director pair: two directors, one active holding the VIPs, heartbeats on every link.`, Keys: []Key{
				{"priority", "integer 0-255", "100", "the higher is active; equal: the lower node name"},
				{"auto_failback", "boolean", "false", "a recovered director of higher priority takes the VIPs back"},
				{"keepalive", "duration", "100ms", "a heartbeat on every link this often"},
				{"deadtime", "duration", "500ms", "the peer is dead after this long without a valid heartbeat on any link"},
				{"initdead", "duration", "5s", "at start, how long to wait for the peer before taking over"},
				{"auth_key_file", "path", "required", "the key heartbeats are signed with; root's, mode 0600"},
				{"port", "integer 1-65535", "694", "the UDP port of the heartbeat links"},
				{"links", "list", "required", "heartbeat links, all used at once (failover.links[] below)"},
				{"vips", "list", "none", "the addresses the active director holds (failover.vips[] below)"},
				{"ping_nodes", "list of addresses", "none", "a director that reaches fewer of them than its peer yields"},
				{"sync", "mapping", "none", "the kernel's IPVS connection sync (failover.sync below)"},
				{"notify", "program", "none", "run as notify ROLE on every role change"},
				{"fence", "program", "none", "run as fence PEER before taking over from a dead peer"},
				{"hook_timeout", "duration", "10s", "how long notify and fence may run"},
			}},
			{Path: "failover.links[]", Text: `A UDP unicast link (interface and peer), a UDP multicast link (interface and multicast), or a serial link.`, Keys: []Key{
				{"interface", "interface name", "required for UDP links", "the interface heartbeats go out on"},
				{"peer", "address", "none", "the peer's address (unicast)"},
				{"multicast", "multicast address", "none", "the group (multicast; TTL 1)"},
				{"serial", "device path", "none", "a serial device such as /dev/ttyS1 (115200 baud); takes no other key"},
			}},
			{Path: "failover.vips[]", Keys: []Key{
				{"address", "address/prefix length", "required", "the VIP and its subnet's prefix length: 192.0.2.10/24"},
				{"interface", "interface name", "required", "where it is added"},
			}},
			{Path: "failover.sync, bgp.sync", Keys: []Key{
				{"interface", "interface name", "required", "the interface the kernel's sync daemons use (group 224.0.0.81, UDP port 8848, TTL 1)"},
				{"sync_id", "integer 0-255", "0", "the sync id; a backup with 0 accepts every master's messages"},
			}},
			{Path: "bgp", Text: `A group of directors, every one active, announcing the VIPs to routers that spread the flows (ECMP).`, Keys: []Key{
				{"asn", "integer 1-4294967295", "required", "this director's AS number"},
				{"router_id", "IPv4 address", "required", "this director's BGP identifier"},
				{"hold_time", "duration, whole seconds", "3s", "0, or 3s to 65535s; keepalives every third of it"},
				{"peers", "list", "required", "the routers (bgp.peers[] below)"},
				{"vip_interface", "interface name", "lo", "where each director holds the VIPs"},
				{"drain_time", "duration", "5s", "on a graceful stop: withdraw, wait this long, then stop"},
				{"sync", "mapping", "none", "the kernel's connection sync among the directors (failover.sync above)"},
				{"group", "mapping", "none", "the directors' heartbeats to one another (bgp.group below)"},
			}},
			{Path: "bgp.peers[]", Keys: []Key{
				{"address", "address", "required", "the router"},
				{"asn", "integer 1-4294967295", "required", "the router's AS (this director's own for iBGP)"},
				{"bfd", "mapping", "none", "fast failure detection (bgp.peers[].bfd below); bfd: {} takes both defaults"},
				{"password_file", "path", "none", "the TCP MD5 password, in a file"},
			}},
			{Path: "bgp.peers[].bfd", Keys: []Key{
				{"interval", "duration, 10ms to 1m", "300ms", "the BFD transmit and receive interval"},
				{"multiplier", "integer 1-255", "3", "missed intervals before the session is down"},
			}},
			{Path: "bgp.group", Keys: []Key{
				{"links", "list", "required", "heartbeat links as failover.links[]; no serial"},
				{"auth_key_file", "path", "required", "the key heartbeats are signed with"},
			}},
		},
		Sections: []Section{
			{Title: "Files", Text: `  ` + DefaultConfig + `
      the configuration directord reads

  /usr/share/doc/director/examples/
      complete examples: a single director (NAT, DR, TUN), a pair, a BGP group`},
		},
		SeeAlso: []string{"directord(8)", "directorctl(8)", "realserver(8)", "ipvsadm(8)"},
	}
}
