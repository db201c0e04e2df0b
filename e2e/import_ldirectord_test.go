//go:build lab

package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"maps"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/directorlb/director/lab/topo"
)

// ldirectordCorpus is the ldirectord part of the import corpus, copied
// into the guest beside the clone as on the host (see keepalivedCorpus).
const ldirectordCorpus = "../../shared/import-corpus/ldirectord"

// ldirectordCases are compared table against table: the fixture with
// every mapped construct, and the corpus files Debian's ldirectord 4.12
// accepts. The real servers answer HTTP (HTTPS where the service is
// https) on the ports of http, connect and unchecked services; nothing
// answers the mysql, ldap and dns checks, nor the external commands the
// corpus names (/opt/check.sh): both daemons must find those servers down.
var ldirectordCases = []string{
	"testdata/ldirectord/mapped.cf",
	ldirectordCorpus + "/01-ClusterLabs-resource-agents.cf",
	ldirectordCorpus + "/02-grimli-ScriptUtili.cf",
	ldirectordCorpus + "/03-wjesus374-ldirectord_manager-ld.cf",
	ldirectordCorpus + "/04-wjesus374-ldirectord_manager-mariadb.cf",
	ldirectordCorpus + "/05-wjesus374-ldirectord_manager-radius.cf",
}

// ldirectordRefused are the corpus files ldirectord 4.12 refuses to start
// on: the import must say so at the line ldirectord names, or print
// nothing (exit 2).
var ldirectordRefused = []string{
	ldirectordCorpus + "/06-wjesus374-ldirectord_manager-FD.cf",
	ldirectordCorpus + "/07-wjesus374-ldirectord_manager-m2m.cf",
	ldirectordCorpus + "/08-wjesus374-ldirectord_manager-gprs2.cf",
	ldirectordCorpus + "/09-wjesus374-ldirectord_manager-ld.conf.cf",
	ldirectordCorpus + "/10-vincentmli-lvsadm.cf",
}

const ldirectordBin = "/usr/sbin/ldirectord"

// TestImportLdirectordSameTable runs Debian's ldirectord on each file,
// then directord on its import, in the same namespace with the same real
// servers answering, and compares the kernel tables: every service that
// differs must have a line of the import report in the virtual section
// that made it (or a global line).
func TestImportLdirectordSameTable(t *testing.T) {
	if _, err := os.Stat(ldirectordBin); err != nil {
		t.Fatalf("ldirectord is not in the guest (lab -host-trees): %v", err)
	}
	for _, file := range ldirectordCases {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".cf"), func(t *testing.T) {
			t.Parallel()
			compareWithLdirectord(t, file)
		})
	}
	for _, file := range ldirectordRefused {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".cf"), func(t *testing.T) {
			t.Parallel()
			refusedByLdirectord(t, file)
		})
	}
}

// ldirectordFile is file ready to run: the fixture with @TESTDATA@ made
// the absolute testdata directory (its external check's path); the
// corpus as it is.
func ldirectordFile(t *testing.T, file string) (path, src string) {
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "@TESTDATA@") {
		abs, err := filepath.Abs(file)
		if err != nil {
			t.Fatal(err)
		}
		return abs, string(data)
	}
	td, err := filepath.Abs(filepath.Dir(file))
	if err != nil {
		t.Fatal(err)
	}
	src = strings.ReplaceAll(string(data), "@TESTDATA@", td)
	path = filepath.Join(t.TempDir(), filepath.Base(file))
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, src
}

func compareWithLdirectord(t *testing.T, file string) {
	path, src := ldirectordFile(t, file)
	tmp := t.TempDir()
	yamlOut, report := importLdirectord(t, path)
	s := parseLdSource(src)

	n := topo.New(t)
	h := n.Host("lb")
	serveLdRealServers(t, h, s)
	standInCommands(t, s)

	lw := topo.NewLogWatch(io.Discard, "")
	cmd := exec.Command(ldirectordBin, "-d", path, "start")
	// PERLIO set: ldirectord would otherwise exec itself once to set it.
	cmd.Env = append(os.Environ(), "PERLIO=perlio")
	cmd.Stdout, cmd.Stderr = lw, lw
	lp, err := h.StartCmd(cmd)
	if err != nil {
		t.Fatal(err)
	}
	waitLdirectordAsleep(t, lp, lw)
	theirs := settledTable(t, h)
	if err := lp.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-lp.Done():
	case <-time.After(2 * time.Minute):
		t.Fatal("ldirectord did not stop on SIGTERM")
	}
	must(t, h, "/bin/ipvsadm", "-C")
	must(t, h, "/bin/ipvsadm", "--set", "900", "120", "300")

	cfg := filepath.Join(tmp, "director.yaml")
	yamlOut = privateSecrets(t, tmp, yamlOut)
	if err := os.WriteFile(cfg, []byte(directorConfig(tmp, yamlOut)), 0o644); err != nil {
		t.Fatal(err)
	}
	d := startDirectord(t, h, cfg)
	waitChecked(t, d)
	ours := settledTable(t, h)
	_ = d.proc.Stop(5 * time.Second)

	explainLdDifferences(t, path, s, report, theirs, ours)
}

// refusedByLdirectord: ldirectord must refuse the file (exit non-zero,
// naming a line), and the import must report that line, or print nothing.
func refusedByLdirectord(t *testing.T, file string) {
	path, _ := ldirectordFile(t, file)
	n := topo.New(t)
	h := n.Host("lb")
	cmd := exec.Command(ldirectordBin, "-d", path, "start")
	cmd.Env = append(os.Environ(), "PERLIO=perlio")
	out, code := runCmd(t, h, cmd)
	if code == 0 {
		t.Fatalf("ldirectord accepted %s:\n%s", file, out)
	}
	m := regexp.MustCompile(`reading file .* at line (\d+): (.*)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("ldirectord exited %d without naming a line:\n%s", code, lastLines(out, 20))
	}
	var stdout, stderr strings.Builder
	imp := exec.Command("/bin/directorctl", "import", "ldirectord", path)
	imp.Stdout, imp.Stderr = &stdout, &stderr
	err := imp.Run()
	exit := 0
	if ee, ok := err.(*exec.ExitError); ok {
		exit = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	at := fmt.Sprintf("%s:%s: ", path, m[1])
	switch {
	case exit == 2:
		t.Logf("ldirectord: line %s: %s\nimport: exit 2, nothing printed:\n%s", m[1], m[2], stderr.String())
	case strings.Contains(stderr.String(), at):
		for _, l := range strings.Split(stderr.String(), "\n") {
			if strings.HasPrefix(l, at) {
				t.Logf("ldirectord: line %s: %s\nimport: %s", m[1], m[2], l)
			}
		}
	default:
		t.Errorf("ldirectord refuses line %s (%s); the import (exit %d) says nothing there:\n%s", m[1], m[2], exit, stderr.String())
	}
}

func runCmd(t *testing.T, h *topo.Host, cmd *exec.Cmd) (string, int) {
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	p, err := h.StartCmd(cmd)
	if err != nil {
		t.Fatal(err)
	}
	err = p.Wait()
	if ee, ok := err.(*exec.ExitError); ok {
		return out.String(), ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), 0
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(l[max(0, len(l)-n):], "\n")
}

func importLdirectord(t *testing.T, file string) (yamlOut, report string) {
	var stdout, stderr strings.Builder
	cmd := exec.Command("/bin/directorctl", "import", "ldirectord", file)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() != 1 || err != nil && !ok {
		t.Fatalf("directorctl import ldirectord %s: %v\n%s", file, err, stderr.String())
	}
	t.Logf("import report:\n%s", stderr.String())
	return stdout.String(), stderr.String()
}

var secretFileRE = regexp.MustCompile(`(?m)(?:password_file|secret_file): "?/etc/director/([^"\s]+)"?`)

// privateSecrets moves the password and secret files the import names
// under /etc/director into dir and creates them: no check the corpus
// asks for can pass here (nothing speaks mysql, ldap or radius), so their
// content does not matter, only that directord can read them.
func privateSecrets(t *testing.T, dir, y string) string {
	sec := filepath.Join(dir, "secrets")
	if err := os.MkdirAll(sec, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, m := range secretFileRE.FindAllStringSubmatch(y, -1) {
		if err := os.WriteFile(filepath.Join(sec, m[1]), []byte("secret\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return strings.ReplaceAll(y, "/etc/director/", sec+"/")
}

// waitLdirectordAsleep waits until ldirectord sleeps checkinterval in its
// main loop: by then it has checked every real server twice (once in
// ld_start, once in the loop) and made each change with ipvsadm, which
// it runs synchronously. Its checks wait in select, poll, connect or
// wait4, never in a sleep.
func waitLdirectordAsleep(t *testing.T, p *topo.Proc, lw *topo.LogWatch) {
	deadline := time.Now().Add(10 * time.Minute)
	for time.Now().Before(deadline) {
		select {
		case <-p.Done():
			t.Fatalf("ldirectord exited: %v\n%s", p.Wait(), lastLines(strings.Join(lw.Lines(), "\n"), 40))
		case <-time.After(200 * time.Millisecond):
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/syscall", p.Pid()))
		if err != nil {
			t.Fatal(err)
		}
		// 230 clock_nanosleep (glibc's sleep), 35 nanosleep
		if f := strings.Fields(string(b)); len(f) > 0 && (f[0] == "230" || f[0] == "35") {
			return
		}
	}
	t.Fatalf("ldirectord never went to sleep between rounds of checks:\n%s", lastLines(strings.Join(lw.Lines(), "\n"), 40))
}

// waitChecked waits until directord has checked every real server once:
// the imported checks have rise 1, so one result each decides the table.
func waitChecked(t *testing.T, d *daemon) {
	deadline := time.Now().Add(3 * time.Minute)
	for {
		out, code := d.ctl("status", "--json", "-socket", d.socket)
		if code != 0 {
			t.Fatalf("status --json: exit %d\n%s", code, out)
		}
		var st struct {
			Services []struct {
				RealServers []struct {
					Address string `json:"address"`
					Health  *struct {
						Check   string `json:"check"`
						Checked string `json:"last_checked"`
					} `json:"health"`
				} `json:"real_servers"`
			} `json:"services"`
		}
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("status --json: %v\n%s", err, out)
		}
		var waiting []string
		for _, s := range st.Services {
			for _, r := range s.RealServers {
				if h := r.Health; h != nil && h.Check != "none" && (h.Checked == "" || strings.HasPrefix(h.Checked, "0001-")) {
					waiting = append(waiting, r.Address)
				}
			}
		}
		if len(waiting) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("directord has not checked %v yet", waiting)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// standInCommands puts a command that fails where the file names an
// external check command the guest does not have (the corpus's
// /opt/check.sh): ldirectord finds the servers down when it cannot run
// it, but directord refuses a configuration whose command is missing,
// and a command that fails gives both the result ldirectord reaches.
func standInCommands(t *testing.T, s *ldSource) {
	for _, c := range s.commands {
		if !filepath.IsAbs(c) {
			continue
		}
		if _, err := os.Stat(c); err == nil {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(c), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(c, []byte("#!/bin/sh\n# a stand-in for a check the guest cannot run\nexit 1\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.Remove(c) })
	}
}

// ldSource is an ldirectord file read the way read_config reads it: a
// line that starts with a blank belongs to the virtual section above it;
// any other is a global directive or starts a section.
type ldSource struct {
	globals  []int // 1-based lines
	virtuals []*ldVirtual
	receives []string
	commands []string // checkcommand=
}

type ldVirtual struct {
	line    int
	key     string // as ipvsadm -S -n names it: "-t 192.0.2.1:80", "-f 7"
	port    int
	service string
	opts    []int            // option lines, real= lines excepted
	reals   map[string][]int // address -> real= lines
	ports   []int            // the ports its checks go to
	falls   map[string][]int // fallback address -> lines
}

var (
	ldLineRE = regexp.MustCompile(`^(\S+?)\s*=\s*(.*?)\s*$`)
	ldAddrRE = regexp.MustCompile(`^(\[[0-9A-Fa-f:.]+\]|[0-9.]+)(?:->(\[[0-9A-Fa-f:.]+\]|[0-9.]+))?(?::(\w+))?`)
)

func ldPort(s string, def int) int {
	if s == "" {
		return def
	}
	if p, err := strconv.Atoi(s); err == nil {
		return p
	}
	if p, err := net.LookupPort("tcp", s); err == nil {
		return p // /etc/services, as ldirectord's getservbyname
	}
	return def
}

func parseLdSource(src string) *ldSource {
	s := &ldSource{}
	var v *ldVirtual
	var globalFalls [][2]string // address, line
	for i, raw := range strings.Split(src, "\n") {
		line := strings.TrimRight(raw, "\r")
		if t := strings.TrimSpace(line); t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		m := ldLineRE.FindStringSubmatch(strings.TrimSpace(line))
		indented := line[0] == ' ' || line[0] == '\t'
		if m == nil {
			continue
		}
		key, val := m[1], strings.Trim(m[2], `"`)
		if !indented {
			if key == "virtual" || key == "virtual6" {
				v = newLdVirtual(i+1, val)
				s.virtuals = append(s.virtuals, v)
				continue
			}
			v = nil
			s.globals = append(s.globals, i+1)
			if key == "fallback" || key == "fallback6" {
				if a := ldAddrRE.FindStringSubmatch(val); a != nil {
					globalFalls = append(globalFalls, [2]string{strings.Trim(a[1], "[]"), strconv.Itoa(i + 1)})
				}
			}
			continue
		}
		if v == nil {
			continue
		}
		switch key {
		case "real", "real6":
			a := ldAddrRE.FindStringSubmatch(val)
			if a == nil {
				continue
			}
			for _, addr := range ldRange(a[1], a[2]) {
				v.reals[addr] = append(v.reals[addr], i+1)
			}
			v.ports = append(v.ports, ldPort(a[3], v.port))
			continue
		case "fallback", "fallback6":
			if a := ldAddrRE.FindStringSubmatch(val); a != nil {
				v.falls[strings.Trim(a[1], "[]")] = append(v.falls[strings.Trim(a[1], "[]")], i+1)
				v.ports = append(v.ports, ldPort(a[3], v.port))
			}
		case "protocol":
			if kind, ok := map[string]string{"tcp": "-t", "udp": "-u", "fwm": "-f"}[val]; ok {
				_, rest, _ := strings.Cut(v.key, " ")
				v.key = kind + " " + rest
			}
		case "service":
			v.service = val
		case "checkport":
			v.ports = append(v.ports, ldPort(val, 0))
		case "receive":
			s.receives = append(s.receives, val)
		case "checkcommand":
			s.commands = append(s.commands, val)
		}
		v.opts = append(v.opts, i+1)
	}
	for _, v := range s.virtuals {
		for _, f := range globalFalls {
			n, _ := strconv.Atoi(f[1])
			v.falls[f[0]] = append(v.falls[f[0]], n)
		}
	}
	return s
}

func newLdVirtual(line int, val string) *ldVirtual {
	v := &ldVirtual{line: line, reals: map[string][]int{}, falls: map[string][]int{}}
	if n, err := strconv.Atoi(val); err == nil {
		v.key = "-f " + strconv.Itoa(n)
		return v
	}
	a := ldAddrRE.FindStringSubmatch(val)
	if a == nil {
		return v
	}
	v.port = ldPort(a[3], 0)
	addr, err := netip.ParseAddr(strings.Trim(a[1], "[]"))
	if err != nil {
		return v
	}
	kind := "-t"
	if a[3] == "53" || a[3] == "domain" {
		kind = "-u" // read_config: port 53 is udp unless protocol= says otherwise
	}
	v.key = kind + " " + netip.AddrPortFrom(addr, uint16(v.port)).String()
	return v
}

// ldRange expands a real= address or a->b range (IPv4) to addresses as
// netip prints them.
func ldRange(first, last string) []string {
	a, err := netip.ParseAddr(strings.Trim(first, "[]"))
	if err != nil {
		return nil
	}
	if last == "" {
		return []string{a.String()}
	}
	b, err := netip.ParseAddr(strings.Trim(last, "[]"))
	if err != nil || b.Less(a) {
		return []string{a.String()}
	}
	var out []string
	for x := a; len(out) < 256; x = x.Next() {
		out = append(out, x.String())
		if x == b {
			break
		}
	}
	return out
}

// tlsServices are the services whose real servers are checked over TLS;
// probedElsewhere those whose checks speak a protocol no server here
// speaks: nothing listens on their ports, so both daemons find them down
// at once (an HTTP server would leave a mysql client waiting for a
// greeting).
var (
	tlsServices     = map[string]bool{"https": true}
	probedElsewhere = map[string]bool{"mysql": true, "pgsql": true, "ldap": true, "ldaps": true, "dns": true, "smtp": true,
		"submission": true, "pop": true, "pops": true, "imap": true, "imaps": true, "ftp": true, "nntp": true, "radius": true, "sip": true, "oracle": true}
	// portServices is _ld_read_config_virtual_resolve's default service
	// for a virtual without service=.
	portServices = map[int]string{80: "http", 443: "https", 21: "ftp", 25: "smtp", 110: "pop", 143: "imap", 389: "ldap", 53: "dns",
		3306: "mysql", 5432: "pgsql", 119: "nntp", 1812: "radius", 5060: "sip", 587: "submission", 995: "pops", 993: "imaps", 1521: "oracle", 636: "ldaps"}
)

// serveLdRealServers puts every real and fallback address on a dummy
// interface and answers HTTP on the ports their checks go to (HTTPS with
// a self-signed certificate for https: ldirectord rejects it, director's
// import skips verification, and the report says so), but port 81, which the fixture keeps for failing servers. The
// body has "passing" and every receive= string of the file; /redirect
// answers 302 to /health.
func serveLdRealServers(t *testing.T, h *topo.Host, s *ldSource) {
	dummy := &netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: "rs0"}}
	if err := h.Netlink().LinkAdd(dummy); err != nil {
		t.Fatal(err)
	}
	if err := h.Netlink().LinkSetUp(dummy); err != nil {
		t.Fatal(err)
	}
	body := "passing\n" + strings.Join(s.receives, "\n") + "\n"
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, "/health", http.StatusFound)
			return
		}
		fmt.Fprint(w, body)
	})
	addrs := map[string]bool{}
	ports := map[int]bool{} // port -> TLS
	for _, v := range s.virtuals {
		svc := v.service
		if svc == "" {
			svc = portServices[v.port]
		}
		for a := range maps.Keys(v.reals) {
			addrs[a] = true
		}
		for a := range maps.Keys(v.falls) {
			addrs[a] = true
		}
		if probedElsewhere[svc] {
			continue
		}
		for _, p := range v.ports {
			if p != 0 && p != 81 {
				ports[p] = ports[p] || tlsServices[svc]
			}
		}
	}
	for a := range addrs {
		if ip, err := netip.ParseAddr(a); err == nil && !ip.IsLoopback() {
			h.Addr("rs0", netip.PrefixFrom(ip, ip.BitLen()).String())
		}
	}
	var cert *tls.Certificate
	for _, p := range slices.Sorted(maps.Keys(ports)) {
		if !ports[p] {
			h.ServeHandler(fmt.Sprintf(":%d", p), handler)
			continue
		}
		if cert == nil {
			cert = selfSigned(t)
		}
		l, err := h.Listen("tcp", fmt.Sprintf(":%d", p))
		if err != nil {
			t.Fatal(err)
		}
		// ldirectord refuses the self-signed certificate (it verifies the
		// chain): its handshakes fail, and need not be logged.
		srv := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
		go func() { _ = srv.Serve(tls.NewListener(l, &tls.Config{Certificates: []tls.Certificate{*cert}})) }()
		t.Cleanup(func() { _ = srv.Close() })
	}
}

func selfSigned(t *testing.T) *tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "real server"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// explainLdDifferences fails unless every difference between the tables
// has a report line where it comes from: a service's own line (-A) must
// be explained by its virtual line, an option of its section, or a
// global; a real server's line (-a) by those, its real= line, or the
// fallback naming it.
func explainLdDifferences(t *testing.T, file string, s *ldSource, report string, theirs, ours []string) {
	explainTable(t, "ldirectord", file, report, s, theirs, ours)
}

// serviceLines are the lines a table entry comes from: the virtual line
// and options of each section that makes it (every one, for the
// timeouts), and the globals.
func (s *ldSource) serviceLines(key string) []int {
	var lines []int
	for _, v := range s.virtuals {
		if v.key == key || key == "timeouts" {
			lines = append(append(lines, v.line), v.opts...)
		}
	}
	return append(lines, s.globals...)
}

// serverLines are the real= and fallback lines naming addr in the
// sections that make the entry.
func (s *ldSource) serverLines(key, addr string) []int {
	var lines []int
	for _, v := range s.virtuals {
		if v.key == key || key == "timeouts" {
			lines = append(append(lines, v.reals[addr]...), v.falls[addr]...)
		}
	}
	return lines
}
