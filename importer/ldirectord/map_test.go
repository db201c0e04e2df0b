package ldirectord

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/directorlb/director/config"
	"github.com/directorlb/director/importer"
)

func importText(t *testing.T, text string) importer.Result {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ld.cf")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	r := Import(p)
	if r.YAML != nil {
		if _, err := config.Parse(p, r.YAML); err != nil {
			t.Fatalf("YAML does not parse: %v\n%s", err, r.YAML)
		}
	}
	return r
}

func reportText(r importer.Result) string {
	var b strings.Builder
	for _, f := range r.Findings {
		b.WriteString(f.String() + "\n")
	}
	return b.String()
}

// TestMapping: one small file per rule; want are lines the YAML must
// have, report texts the report must have (none: an empty report).
func TestMapping(t *testing.T) {
	const web = "virtual=192.0.2.10:80\n    real=10.0.0.1:80 masq\n"
	for _, tc := range []struct {
		name, file string
		want, not  []string
		report     []string
		exit       int
	}{
		{"defaults", web, []string{"scheduler: \"wrr\"", "on_failure: remove", "type: http", "interval: 10s", "timeout: 30s", "rise: 1", "fall: 1", "path: \"/\"", "forward: nat", "# from "}, nil, nil, 0},
		{"quiescent yes", "quiescent=yes\n" + web, nil, []string{"on_failure"}, nil, 0},
		{"quiescent per virtual", web + "    quiescent=yes\n", nil, []string{"on_failure"}, nil, 0},
		{"scheduler", web + "    scheduler=wlc\n", []string{"scheduler: \"wlc\""}, nil, nil, 0},
		{"timeouts", "checktimeout=3\nnegotiatetimeout=7\ncheckinterval=4\nfailurecount=5\n" + web + "    checktype=connect\n", []string{"type: tcp", "timeout: 3s", "interval: 4s", "fall: 5"}, nil, nil, 0},
		{"negotiate timeout", "checktimeout=3\n" + web + "    negotiatetimeout=9\n", []string{"timeout: 9s"}, nil, nil, 0},
		{"external", web + "    checktype=external\n    checkcommand=\"/usr/local/bin/chk\"\n", []string{`command: ["/usr/local/bin/chk", "192.0.2.10", "80", "{address}", "{port}"]`, "timeout: 5s"}, nil, nil, 0},
		{"external fwmark", "virtual=7\n    real=10.0.0.1 gate\n    checktype=external\n    checkcommand=/c\n", []string{"fwmark: 7", `command: ["/c", "7", "0", "{address}", "0"]`, "forward: dr"}, nil, nil, 0},
		{"ping", web + "    checktype=ping\n", []string{"type: icmp"}, nil, nil, 0},
		{"connect udp is ping", "virtual=192.0.2.10:53\n    real=10.0.0.1 gate\n    checktype=connect\n", []string{"protocol: udp", "type: icmp"}, nil, nil, 0},
		{"on", web + "    checktype=on\n", []string{"type: none"}, nil, nil, 0},
		{"off", web + "    checktype=off\n", []string{"type: none"}, nil, []string{":3: checktype: off"}, 1},
		{"combined", web + "    checktype=5\n", []string{"type: http"}, nil, []string{"every 5th"}, 1},
		{"http", web + "    request=\"health\"\n    receive=\"ok.*\"\n    virtualhost=www.example.com\n    httpmethod=head\n",
			[]string{`path: "/health"`, `body: "ok.*"`, `host: "www.example.com"`, `method: "HEAD"`}, nil, nil, 0},
		{"per-real request", "virtual=192.0.2.10:80\n    real=10.0.0.1:80 masq 3 \"a.html\", \"A\"\n", []string{`path: "/a.html"`, `body: "A"`, "weight: 3"}, nil, nil, 0},
		{"https", "virtual=192.0.2.10:443\n    real=10.0.0.1 gate\n", []string{"type: https", "insecure_skip_verify: true", "{address: \"10.0.0.1\"}"}, nil, []string{":1: service: https: ldirectord verified the real server's certificate chain"}, 1},
		{"mysql", "virtual=192.0.2.10:mysql\n    real=10.0.0.1:3306 masq\n    login=\"mon\"\n    passwd=\"s3cret\"\n    database=\"db\"\n    request=\"SELECT 1\"\n",
			[]string{"type: mysql", `user: "mon"`, "password_file: /etc/director/mysql-1.password", `database: "db"`, `query: "SELECT 1"`}, []string{"s3cret"}, []string{":4: passwd: director reads"}, 1},
		{"radius", "virtual=192.0.2.10:1812\n    protocol=udp\n    real=10.0.0.1 gate\n    login=\"u\"\n    passwd=\"p\"\n    secret=\"shh\"\n",
			[]string{"type: radius", "secret_file: /etc/director/radius-1.secret", "password_file: /etc/director/radius-1.password"}, []string{"shh"}, []string{":6: secret:"}, 1},
		{"ldap", "virtual=192.0.2.10:389\n    real=10.0.0.1 gate\n    login=\"cn=m\"\n    passwd=\"x\"\n    request=\"dc=example\"\n", []string{"type: ldap", `bind_dn: "cn=m"`, `base_dn: "dc=example"`}, nil, []string{"passwd:"}, 1},
		{"smtp", "virtual=192.0.2.10:25\n    real=10.0.0.1 gate\n", []string{"type: smtp"}, nil, nil, 0},
		{"pop", "virtual=192.0.2.10:110\n    real=10.0.0.1 gate\n", []string{"type: banner", "protocol: pop3"}, nil, nil, 0},
		{"ftp anonymous", "virtual=192.0.2.10:21\n    real=10.0.0.1 gate\n    service=ftp\n", []string{"protocol: ftp", `user: "anonymous"`}, nil, []string{"ftp-1.password"}, 1},
		{"dns", "virtual=192.0.2.10:domain\n    real=10.0.0.1 gate\n    request=\"www.example.com\"\n    receive=\"192.0.2.1\"\n", []string{"protocol: udp", "type: dns", `query_name: "www.example.com"`, `answer: "192.0.2.1"`}, nil, nil, 0},
		{"sip", "virtual=192.0.2.10:5060\n    protocol=udp\n    real=10.0.0.1 gate\n", []string{"type: sip"}, nil, nil, 0},
		{"simpletcp", web + "    service=simpletcp\n    request=\"PING\\n\"\n    receive=\"PONG\"\n", []string{"type: tcp", `send: "PING\n"`, `expect: "PONG"`}, nil, nil, 0},
		{"service none", "virtual=192.0.2.10:22\n    real=10.0.0.1 gate\n", []string{"type: none"}, nil, nil, 0},
		{"unknown service", web + "    service=pingpong\n", []string{"type: tcp"}, nil, []string{"a patched ldirectord"}, 1},
		{"fallback", web + "    fallback=10.0.0.9:80 masq\n", []string{`sorry_server: "10.0.0.9:80"`}, nil, nil, 0},
		{"global fallback", "fallback=10.0.0.9\n" + "virtual=192.0.2.10:80\n    real=10.0.0.1 gate\n", []string{`sorry_server: "10.0.0.9"`}, nil, nil, 0},
		{"persistent", web + "    persistent=300\n    netmask=255.255.255.0\n", []string{"persistence: 300s", `persistence_netmask: "255.255.255.0"`}, nil, nil, 0},
		{"netmask alone", web + "    netmask=255.255.255.0\n", nil, []string{"persistence"}, []string{"netmask: ldirectord uses netmask only with persistent"}, 1},
		{"forwards", "virtual=192.0.2.10:80\n    real=10.0.0.1 gate\n    real=10.0.0.2 ipip\n    real=10.0.0.3:80 masq\n", []string{"forward: dr", `{address: "10.0.0.2", forward: tun}`, `{address: "10.0.0.3:80", forward: nat}`}, nil, nil, 0},
		{"range", "virtual=192.0.2.10:80\n    real=10.0.0.1->10.0.0.3 gate\n", []string{`"10.0.0.1"`, `"10.0.0.2"`, `"10.0.0.3"`}, nil, nil, 0},
		{"virtual6", "virtual6=[2001:db8::10]:80\n    real6=[2001:db8::1]:80 masq\n", []string{`vip: "2001:db8::10"`, `"[2001:db8::1]:80"`}, nil, nil, 0},
		{"ops", "virtual=192.0.2.10:53\n    real=10.0.0.1 gate\n    ops=yes\n    request=\"a.example\"\n", []string{"one_packet: true"}, nil, nil, 0},
		{"servicename and comment", web + "    servicename=Web Site\n    comment=front page\n", []string{"name: web-site", "# front page"}, nil, nil, 0},
		{"checkport", web + "    checkport=8080\n", []string{"port: 8080"}, nil, nil, 0},
		{"checkinterval without fork", web + "    checkinterval=3\n", []string{"interval: 10s"}, nil, []string{"unless fork = yes"}, 1},
		{"checkinterval with fork", "fork=yes\n" + web + "    checkinterval=3\n", []string{"interval: 3s"}, nil, nil, 0},
		{"cleanstop", "cleanstop=yes\n" + web, []string{"cleanup_on_exit: true"}, nil, nil, 0},
		{"unmapped globals", "emailalert=a@b\nlogfile=\"/x\"\nautoreload=yes\ncallback=\"/y\"\nmaintenancedir=/m\nreaddquiescent=yes\n" + web, nil, nil,
			[]string{":1: emailalert:", ":2: logfile:", ":3: autoreload:", ":4: callback:", ":5: maintenancedir:", ":6: readdquiescent:"}, 1},
		{"unknown global", "bogus=1\n" + web, nil, nil, []string{":1: bogus: not an ldirectord global"}, 1},
		{"duplicate virtual", web + web, nil, nil, []string{":3: virtual: the same virtual service as line 1"}, 1},
		{"family", "virtual6=[2001:db8::10]:80\n    real6=[2001:db8::1]:80 masq\n    real=10.0.0.1:80 masq\n", []string{`"[2001:db8::1]:80"`}, []string{`{address: "10.0.0.1`}, []string{":3: real: address"}, 1},
		{"sorry server refused", web + "    fallback=10.0.0.1:80 masq\n", []string{"10.0.0.1:80"}, []string{`sorry_server: "`}, []string{":3: fallback: director refuses it as a sorry_server"}, 1},
		{"service refused", web + "    virtualhost=\"a b\"\n" + "virtual=192.0.2.11:80\n    real=10.0.0.1:80 masq\n", []string{"192.0.2.11"}, []string{"192.0.2.10"}, []string{":1: virtual: director refuses the service made of it (services[0].check.host: must be a host name"}, 1},
		{"check port from service", "virtual=192.0.2.10:8080\n    real=10.0.0.1 masq\n    service=http\n", []string{"      port: 80\n"}, nil, nil, 0},
		{"check port from real", "virtual=192.0.2.10:8080\n    real=10.0.0.1:8080 masq\n    service=http\n", nil, []string{"      port:"}, nil, 0},
		{"external real without port", "virtual=192.0.2.10:80\n    real=10.0.0.1 gate\n    checktype=external\n    checkcommand=/c\n", []string{`command: ["/c", "192.0.2.10", "80", "{address}", "0"]`}, nil, nil, 0},
		{"host name", "virtual=www.example.com:80\n    real=10.0.0.1 gate\n", nil, nil, []string{"not an IP address"}, 2},
		{"timeout over interval", "checkinterval=5\n" + web + "    negotiatetimeout=8\n", []string{"timeout: 8s", "interval: 5s"}, nil,
			[]string{":4: negotiatetimeout: the check's timeout 8s is not shorter than checkinterval 5s"}, 1},
		{"global timeout over interval", "checkinterval=2\nchecktimeout=2\n" + web + "    checktype=connect\n", []string{"timeout: 2s"}, nil,
			[]string{":3: checktimeout: the check's timeout 2s is not shorter than checkinterval 2s"}, 1},
		{"default timeouts not reported", web + "    checktype=connect\n", []string{"timeout: 5s"}, []string{"not shorter"}, nil, 0},
		{"thresholds", "virtual=192.0.2.10:80\n    real=10.0.0.1:80 masq 2 l:10 u:100\n    real=10.0.0.2:80 masq 1 \"/a\", \"b\" u:7\n    checktype=connect\n",
			[]string{`{address: "10.0.0.1:80", weight: 2, upper_threshold: 100, lower_threshold: 10}`, `{address: "10.0.0.2:80", upper_threshold: 7}`}, nil, nil, 0},
		{"thresholds crossed", web + "    real=10.0.0.2:80 masq 1 l:10 u:5\n    checktype=connect\n", []string{`{address: "10.0.0.2:80", upper_threshold: 5}`}, []string{"lower_threshold"}, []string{":3: real: lower threshold 10 is above the upper 5"}, 1},
		{"portless real quiesced", "quiescent=yes\nvirtual=192.0.2.10:80\n    real=10.0.0.1 gate\n    real=10.0.0.2:80 gate\n    checktype=connect\n", nil, nil,
			[]string{":3: real: written without a port, with quiescent=yes: ldirectord 4.12 looks it up as 10.0.0.1:0"}, 1},
		{"portless real removed", "virtual=192.0.2.10:80\n    real=10.0.0.1 gate\n    checktype=connect\n", nil, []string{"without a port"}, nil, 0},
		{"shared real quiesced", "quiescent=yes\nvirtual=192.0.2.10:80\n    real=10.0.0.1:80 gate\n    checktype=connect\nvirtual=192.0.2.11:80\n    real=10.0.0.1:80 gate\n    checktype=connect\n", nil, nil,
			[]string{":3: real: 10.0.0.1:80 is also a real server of the virtual at line 5"}, 1},
		{"redirects", web + "    httpmethod=POST\n", []string{`method: "POST"`}, []string{"followed redirects"}, nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := importText(t, tc.file)
			y, rep := string(r.YAML), reportText(r)
			for _, w := range tc.want {
				if !strings.Contains(y, w) {
					t.Errorf("YAML lacks %q:\n%s", w, y)
				}
			}
			for _, w := range tc.not {
				if strings.Contains(y, w) || strings.Contains(rep, w) {
					t.Errorf("output has %q:\n%s\n%s", w, y, rep)
				}
			}
			for _, w := range tc.report {
				if !strings.Contains(rep, w) {
					t.Errorf("report lacks %q:\n%s", w, rep)
				}
			}
			// Every http(s) check GET or HEAD has its redirect line:
			// ldirectord followed them, director does not.
			exit := tc.exit
			if m := regexp.MustCompile(`type: https?\n`).FindString(y); m != "" && !strings.Contains(y, `method: "POST"`) {
				if !strings.Contains(rep, "followed redirects") {
					t.Errorf("an http check without the redirect line:\n%s", rep)
				}
				exit = max(exit, 1)
			}
			if r.Exit() != exit {
				t.Errorf("exit %d, want %d; report:\n%s", r.Exit(), exit, rep)
			}
		})
	}
}
