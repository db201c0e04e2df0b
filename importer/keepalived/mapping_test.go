package keepalived

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/directorlb/director/config"
	"github.com/directorlb/director/importer"
)

// importText imports a keepalived file holding text; the YAML must parse.
func importText(t *testing.T, text string) importer.Result {
	t.Helper()
	p := filepath.Join(t.TempDir(), "k.conf")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	res := Import(p, Options{ID: "test"})
	if res.YAML != nil {
		if _, err := config.Parse("out.yaml", res.YAML); err != nil {
			t.Fatalf("YAML does not parse: %v\n%s", err, res.YAML)
		}
	}
	return res
}

const vsHead = "virtual_server 192.0.2.10 80 {\n delay_loop 6\n protocol TCP\n"

func TestMapping(t *testing.T) {
	for _, tc := range []struct {
		name  string
		in    string
		yaml  []string // lines the YAML must hold (trimmed)
		not   []string // lines it must not hold
		finds []string // keywords the report must name
		exit  int
	}{
		{name: "address vs, legacy names, NAT default remove",
			in: vsHead + " lb_algo wrr\n lb_kind DR\n nb_get_retry 2\n delay_before_retry 2\n connect_timeout 3\n persistence_timeout 300\n persistence_granularity 255.255.255.0\n protocol TCP\n" +
				" real_server 10.0.0.1 80 {\n  weight 5\n  TCP_CHECK {\n  }\n }\n}\n",
			yaml: []string{`vip: "192.0.2.10"`, "port: 80", "scheduler: wrr", "forward: dr", "persistence: 300s", `persistence_netmask: "255.255.255.0"`,
				"on_failure: remove", "type: tcp", "interval: 6s", "fast_interval: 2s", "timeout: 3s", "rise: 1", "fall: 3", "start_healthy: true",
				`- {address: "10.0.0.1", weight: 5}`},
			exit: 0},
		{name: "inhibit_on_failure quiesces; alpha starts down; sorry server",
			in:   vsHead + " inhibit_on_failure\n alpha\n sorry_server 10.0.0.9 8080\n real_server 10.0.0.1 8080 {\n  TCP_CHECK {\n  connect_port 8081\n  }\n }\n}\n",
			yaml: []string{"on_failure: quiesce", `sorry_server: "10.0.0.9:8080"`, "port: 8081", `- {address: "10.0.0.1:8080", weight: 1}`},
			not:  []string{"start_healthy: true"}, exit: 0},
		{name: "fwmark, tunnel, thresholds, per-real forward",
			in: "virtual_server fwmark 7 {\n lvs_method TUN type gue port 5555 csum\n lvs_sched mh\n mh-port\n real_server 10.0.0.1 80 {\n  uthreshold 100\n  lthreshold 50\n }\n" +
				" real_server 10.0.0.2 {\n  lvs_method NAT\n }\n}\n",
			yaml: []string{"fwmark: 7", "forward: tun", `tunnel: {type: gue, port: 5555, checksum: csum}`, "scheduler: mh", "scheduler_flags: [mh-port]",
				`- {address: "10.0.0.1", weight: 1, upper_threshold: 100, lower_threshold: 50}`, `- {address: "10.0.0.2", weight: 1, forward: nat}`, "type: none"},
			finds: []string{"real_server"}, exit: 1},
		{name: "group to vips, fwmark entry reported",
			in:   "virtual_server_group g {\n 192.0.2.1 443\n 2001:db8::1 443\n fwmark 3\n}\nvirtual_server group g {\n real_server 10.0.0.1 443 {\n }\n real_server 2001:db8:1::1 443 {\n }\n}\n",
			yaml: []string{`vips: ["192.0.2.1", "2001:db8::1"]`, "port: 443"}, finds: []string{"virtual_server_group"}, exit: 1},
		{name: "group VIP of a family with no real server",
			in:   "virtual_server_group g {\n 192.0.2.1 80\n 2001:db8::1 80\n}\nvirtual_server group g {\n real_server 10.0.0.1 80 {\n }\n}\n",
			yaml: []string{`vips: ["192.0.2.1"]`}, finds: []string{"virtual_server"}, exit: 1},
		{name: "every-port service, DR real server port left out",
			in:   "virtual_server 192.0.2.1 {\n lb_kind DR\n persistence_timeout 60\n real_server 10.0.0.1 80 {\n }\n}\n",
			yaml: []string{"port: 0", `- {address: "10.0.0.1", weight: 1}`}, finds: []string{"real_server"}, exit: 1},
		{name: "group range",
			in:   "virtual_server_group g {\n 192.0.2.1-3 80\n}\nvirtual_server group g {\n protocol TCP\n real_server 10.0.0.1 80 {\n }\n}\n",
			yaml: []string{`vips: ["192.0.2.1", "192.0.2.2", "192.0.2.3"]`}, exit: 0},
		{name: "no protocol: keepalived 2.2.7 makes UDP",
			in:   "virtual_server 192.0.2.10 53 {\n real_server 10.0.0.1 53 {\n }\n}\n",
			yaml: []string{"protocol: udp"}, finds: []string{"virtual_server"}, exit: 1},
		{name: "granularity alone: persistent for 360 s",
			in:   vsHead + " persistence_granularity 255.255.255.0\n real_server 10.0.0.1 80 {\n }\n}\n",
			yaml: []string{"persistence: 360s", `persistence_netmask: "255.255.255.0"`}, finds: []string{"virtual_server"}, exit: 1},
		{name: "http digest regex virtualhost",
			in:    vsHead + " virtualhost www.example.com\n real_server 10.0.0.1 80 {\n  HTTP_GET {\n   url {\n    path /h\n    status_code 200 301\n    digest 9B3A0C85A887A256D6939DA88AABD8CD\n   }\n   url {\n    path /x\n   }\n  }\n }\n}\n",
			yaml:  []string{"type: http", `path: "/h"`, `expect_status: ["200", "301"]`, `digest: "9b3a0c85a887a256d6939da88aabd8cd"`, `host: "www.example.com"`},
			finds: []string{"url"}, exit: 1},
		{name: "ssl_get regex",
			in:   vsHead + " real_server 10.0.0.1 443 {\n  SSL_GET {\n   url {\n    path /\n    regex ok\n   }\n  }\n }\n}\n",
			yaml: []string{"type: https", `body: "ok"`, "insecure_skip_verify: true"}, finds: []string{"regex"}, exit: 1},
		{name: "misc_check split, address placeholder, misc_dynamic",
			in: vsHead + " real_server 10.0.0.1 80 {\n  weight 3\n  MISC_CHECK {\n   misc_path \"/usr/lib/chk -H 10.0.0.1 'a b'\"\n   misc_timeout 4\n   misc_dynamic\n  }\n }\n" +
				" real_server 10.0.0.2 80 {\n  weight 100\n  MISC_CHECK {\n   misc_path \"/usr/lib/chk -H 10.0.0.2 'a b'\"\n   misc_timeout 4\n   misc_dynamic\n  }\n }\n}\n",
			yaml:  []string{`command: ["/usr/lib/chk", "-H", "{address}", "a b"]`, "weight_from_exit: true", "timeout: 4s", "fall: 1", `- {address: "10.0.0.1", weight: 100}`},
			finds: []string{"real_server"}, exit: 1},
		{name: "misc_check with a shell",
			in:    vsHead + " real_server 10.0.0.1 80 {\n  MISC_CHECK {\n   misc_path \"curl -s x | grep ok\"\n  }\n }\n}\n",
			yaml:  []string{`command: ["/bin/sh", "-c", "curl -s x | grep ok"]`},
			finds: []string{"misc_path"}, exit: 1},
		{name: "dns smtp udp ping file",
			in: "track_file tf {\n file /run/w\n}\n" + "virtual_server 192.0.2.10 53 {\n protocol UDP\n real_server 10.0.0.1 53 {\n  DNS_CHECK {\n   type A\n   name example.com\n  }\n }\n}\n" +
				"virtual_server 192.0.2.10 25 {\n real_server 10.0.0.1 25 {\n  SMTP_CHECK {\n   helo_name lb.example\n  }\n }\n}\n" +
				"virtual_server 192.0.2.10 5000 {\n protocol UDP\n real_server 10.0.0.1 5000 {\n  UDP_CHECK {\n   payload 6869\n  }\n }\n}\n" +
				"virtual_server 192.0.2.10 22 {\n real_server 10.0.0.1 22 {\n  PING_CHECK {\n  }\n }\n}\n" +
				"virtual_server 192.0.2.10 23 {\n real_server 10.0.0.1 23 {\n  FILE_CHECK {\n   track_file tf\n  }\n }\n}\n",
			yaml: []string{"type: dns", `query_name: "example.com"`, "query_type: A", "type: smtp", `helo_name: "lb.example"`,
				"type: udp", `send: "hi"`, "type: icmp", "type: file", `file: "/run/w"`},
			finds: []string{"UDP_CHECK", "FILE_CHECK"}, exit: 1},
		{name: "vrrp pair, sync group, timeouts, sync daemon",
			in: "global_defs {\n router_id lb1\n lvs_timeouts tcp 900 tcpfin 120 udp 300\n lvs_sync_daemon eth1 VI_1 id 9\n notification_email {\n  a@b\n }\n}\n" +
				"vrrp_sync_group G {\n group {\n  VI_1\n  VI_2\n }\n}\n" +
				"vrrp_instance VI_1 {\n state MASTER\n interface eth0\n virtual_router_id 51\n priority 150\n advert_int 0.5\n nopreempt\n unicast_peer {\n  192.168.50.2\n }\n" +
				" virtual_ipaddress {\n  192.0.2.10/24 dev eth0\n }\n notify_master /x/m.sh\n track_script {\n  chk\n }\n}\n" +
				"vrrp_instance VI_2 {\n interface eth2\n virtual_ipaddress {\n  198.51.100.1\n }\n}\n" +
				"vrrp_instance VI_3 {\n interface eth3\n virtual_ipaddress {\n  203.0.113.1\n }\n}\n" +
				vsHead + " real_server 10.0.0.1 80 {\n }\n}\n",
			yaml: []string{`node: "lb1"`, "timeouts: {tcp: 900s, tcp_fin: 120s, udp: 300s}", "priority: 150", "auto_failback: false", "keepalive: 500ms",
				"deadtime: 1500ms", `auth_key_file: "/etc/director/authkey"`, `- {interface: "eth0", peer: "192.168.50.2"}`,
				`- {address: "192.0.2.10/24", interface: "eth0"}`, `- {address: "198.51.100.1/32", interface: "eth2"}`,
				`sync: {interface: "eth1", sync_id: 9}`, `notify: "/etc/director/notify"`},
			not:   []string{"203.0.113.1"},
			finds: []string{"notification_email", "vrrp_instance", "notify_master", "track_script"}, exit: 1},
		{name: "placeholder real server leaves the service out",
			in:    vsHead + " real_server x.x.x.x 80 {\n }\n}\nvirtual_server 192.0.2.11 80 {\n real_server 10.0.0.1 80 {\n }\n}\n",
			yaml:  []string{`vip: "192.0.2.11"`},
			not:   []string{`vip: "192.0.2.10"`},
			finds: []string{"virtual_server"}, exit: 1},
		{name: "dpvs keywords",
			in:    vsHead + " lb_kind FNAT\n laddr_group_name l\n syn_proxy\n real_server 10.0.0.1 80 {\n }\n}\n",
			yaml:  []string{"forward: nat"},
			finds: []string{"lb_kind", "laddr_group_name", "syn_proxy"}, exit: 1},
		{name: "unknown keyword and typo", in: vsHead + " real_server 10.0.0.1 80 {\n  weigth 3\n }\n}\n",
			finds: []string{"weigth"}, exit: 1},
		{name: "not keepalived", in: "[section]\nkey=value\n", exit: 2},
		{name: "only globals", in: "global_defs {\n router_id x\n}\n", finds: []string{"file"}, exit: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := importText(t, tc.in)
			if res.Exit() != tc.exit {
				t.Errorf("exit %d, want %d; findings %v", res.Exit(), tc.exit, res.Findings)
			}
			lines := map[string]bool{}
			for _, l := range strings.Split(string(res.YAML), "\n") {
				l = strings.TrimSpace(l)
				if i := strings.Index(l, "  # "); i > 0 {
					l = l[:i]
				}
				lines[l] = true
			}
			for _, w := range tc.yaml {
				if !lines[w] {
					t.Errorf("YAML lacks %q:\n%s", w, res.YAML)
				}
			}
			for _, w := range tc.not {
				if strings.Contains(string(res.YAML), w) {
					t.Errorf("YAML holds %q:\n%s", w, res.YAML)
				}
			}
			for _, kw := range tc.finds {
				found := false
				for _, f := range res.Findings {
					found = found || f.Keyword == kw
				}
				if !found {
					t.Errorf("no finding on %q; findings:\n%v", kw, res.Findings)
				}
			}
		})
	}
}

// TestSourceComments: each service carries the line it came from.
func TestSourceComments(t *testing.T) {
	res := importText(t, "\n\n"+vsHead+" real_server 10.0.0.1 80 {\n }\n}\n")
	if !strings.Contains(string(res.YAML), "k.conf:3\n  - name:") {
		t.Errorf("no source comment before the service:\n%s", res.YAML)
	}
}
