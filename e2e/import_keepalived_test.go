//go:build lab

package e2e

import (
	"fmt"
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

// keepalivedCorpus is the import corpus beside the clone (issue 20); the
// lab copies it into the guest at the same relative path.
const keepalivedCorpus = "../../shared/import-corpus/keepalived"

// keepalivedCases are the configurations compared: single files of the
// corpus whose checks the namespace can make pass (TCP and HTTP without a
// digest; no MISC_CHECK scripts, no SSL), and the fixture that has every
// mapped construct. down lists ports nothing listens on.
var keepalivedCases = []struct {
	file string
	down []int
}{
	{file: "testdata/keepalived/mapped.conf", down: []int{81}},
	{file: keepalivedCorpus + "/01-angeloyang-magic.conf"},
	{file: keepalivedCorpus + "/02-boboyang-mydoc.conf"},
	{file: keepalivedCorpus + "/03-qiuyesuifeng-codis_keepalived_lvs.conf"},
	{file: keepalivedCorpus + "/04-zhangzuoqiang-DevOps.conf"},
	{file: keepalivedCorpus + "/05-loong576-lvs-keepalived-install-k8s-HA-cluster.conf"},
	{file: keepalivedCorpus + "/07-MX-Steve-nsd01.conf"},
	{file: keepalivedCorpus + "/08-coregear-linux.conf"},
	{file: keepalivedCorpus + "/09-outsrkem-script.conf"},
	{file: keepalivedCorpus + "/12-qimanchen-interview_plan.conf"},
	{file: keepalivedCorpus + "/16-nestorFy-myScripts.conf"},
	{file: keepalivedCorpus + "/17-hitto-hub-keepalived-lb.conf"},
	{file: keepalivedCorpus + "/19-pythonee-work-tools.conf"},
	{file: keepalivedCorpus + "/20-jamping-Linux-learning.conf"},
	{file: keepalivedCorpus + "/21-zhdnf-python_script.conf"},
	{file: keepalivedCorpus + "/23-pqarmitage-keepalived-devel-tools-issue1540fwm.conf"},
	{file: keepalivedCorpus + "/26-pqarmitage-keepalived-devel-tools-issue667.conf"},
	{file: keepalivedCorpus + "/33-pqarmitage-keepalived-devel-tools-ASAP-cosmic.conf"},
}

// TestImportKeepalivedSameTable runs Debian's keepalived on each
// configuration, then directord on its import, in the same namespace with
// the same real servers answering, and compares the kernel tables: every
// service that differs must have a line of the import report in the
// source block that made it.
func TestImportKeepalivedSameTable(t *testing.T) {
	if _, err := os.Stat("/bin/keepalived"); err != nil {
		t.Fatalf("keepalived is not in the guest (lab -host-tools): %v", err)
	}
	for _, c := range keepalivedCases {
		t.Run(strings.TrimSuffix(filepath.Base(c.file), ".conf"), func(t *testing.T) {
			t.Parallel()
			compareWithKeepalived(t, c.file, c.down)
		})
	}
}

func compareWithKeepalived(t *testing.T, file string, down []int) {
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	yamlOut, report := importKeepalived(t, file)

	n := topo.New(t)
	h := n.Host("lb")
	serveRealServers(t, h, string(src), down)

	// keepalived: checkers only (-C): VRRP is not what is compared, and
	// the failover block is left out of director's side the same way.
	lw := topo.NewLogWatch(os.Stdout, fmt.Sprintf("[%s keepalived] ", filepath.Base(file)))
	cmd := exec.Command("/bin/keepalived", "-C", "-n", "-l", "-D", "-G", "-f", file,
		"-p", filepath.Join(tmp, "k.pid"), "-c", filepath.Join(tmp, "c.pid"), "-r", filepath.Join(tmp, "v.pid"))
	cmd.Stdout, cmd.Stderr = lw, lw
	kp, err := h.StartCmd(cmd)
	if err != nil {
		t.Fatal(err)
	}
	theirs := settledTable(t, h)
	if err := kp.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-kp.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("keepalived did not stop on SIGTERM")
	}
	// Only this namespace's table; the kernel's default timeouts back.
	must(t, h, "/bin/ipvsadm", "-C")
	must(t, h, "/bin/ipvsadm", "--set", "900", "120", "300")

	cfg := filepath.Join(tmp, "director.yaml")
	if err := os.WriteFile(cfg, []byte(directorConfig(tmp, yamlOut)), 0o644); err != nil {
		t.Fatal(err)
	}
	d := startDirectord(t, h, cfg)
	ours := settledTable(t, h)
	_ = d.proc.Stop(5 * time.Second)

	explainDifferences(t, file, string(src), report, theirs, ours)
}

// importKeepalived runs directorctl import keepalived on file; exit 0 or 1
// is required.
func importKeepalived(t *testing.T, file string) (yamlOut, report string) {
	var stdout, stderr strings.Builder
	cmd := exec.Command("/bin/directorctl", "import", "keepalived", file)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() != 1 || err != nil && !ok {
		t.Fatalf("directorctl import keepalived %s: %v\n%s", file, err, stderr.String())
	}
	return stdout.String(), stderr.String()
}

// directorConfig merges a private control socket, state and short
// reconcile interval into the imported YAML's top level, and leaves out
// its failover block (keepalived runs with -C, no VRRP).
func directorConfig(dir, imported string) string {
	var out []string
	skip := false
	ipvs := false
	for _, line := range strings.Split(imported, "\n") {
		top := line != "" && line[0] != ' ' && line[0] != '#'
		if top {
			skip = strings.HasPrefix(line, "failover:")
		}
		if skip {
			continue
		}
		out = append(out, line)
		if line == "ipvs:" {
			ipvs = true
			out = append(out, "  reconcile_interval: 1s")
		}
	}
	header := fmt.Sprintf("state_dir: %s\ncontrol:\n  socket: %s\nmetrics:\n  listen: \"\"\n",
		filepath.Join(dir, "state"), filepath.Join(dir, "ctl.sock"))
	if !ipvs {
		header += "ipvs:\n  reconcile_interval: 1s\n"
	}
	return header + strings.Join(out, "\n")
}

var (
	realServerRE  = regexp.MustCompile(`(?m)^\s*(?:real_server|sorry_server)\s+(\S+)\s+(\d+)`)
	connectPortRE = regexp.MustCompile(`(?m)^\s*connect_port\s+(\d+)`)
)

// serveRealServers puts every real and sorry server address of src on a
// dummy interface and answers HTTP (200, "passing": what the corpus's
// HTTP_GET checks want) on every real server and connect port but down.
func serveRealServers(t *testing.T, h *topo.Host, src string, down []int) {
	dummy := &netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: "rs0"}}
	if err := h.Netlink().LinkAdd(dummy); err != nil {
		t.Fatal(err)
	}
	if err := h.Netlink().LinkSetUp(dummy); err != nil {
		t.Fatal(err)
	}
	addrs, ports := map[string]bool{}, map[int]bool{}
	for _, m := range realServerRE.FindAllStringSubmatch(src, -1) {
		a, err := netip.ParseAddr(m[1])
		if err != nil {
			continue
		}
		if !addrs[a.String()] {
			addrs[a.String()] = true
			h.Addr("rs0", netip.PrefixFrom(a, a.BitLen()).String())
		}
		p, _ := strconv.Atoi(m[2])
		ports[p] = true
	}
	for _, m := range connectPortRE.FindAllStringSubmatch(src, -1) {
		p, _ := strconv.Atoi(m[1])
		ports[p] = true
	}
	for p := range ports {
		if p == 0 || slices.Contains(down, p) {
			continue
		}
		h.ServeHandler(fmt.Sprintf(":%d", p), http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprintln(w, "passing")
		}))
	}
}

// settledTable waits until the table and timeouts hold still for three
// seconds (checks run every delay_loop; the fixture's is 2 s, and a failed
// server with retry 0 is gone after one) and returns them, sorted.
func settledTable(t *testing.T, h *topo.Host) []string {
	time.Sleep(3 * time.Second)
	read := func() []string {
		lines := withThresholds(strings.Split(strings.TrimSpace(ipvsadmSave(t, h)), "\n"),
			settled(t, h, "/bin/ipvsadm", "-L", "-n", "--thresholds"))
		lines = append(lines, strings.TrimSpace(must(t, h, "/bin/ipvsadm", "-L", "--timeout")))
		slices.Sort(lines)
		return slices.DeleteFunc(lines, func(s string) bool { return s == "" })
	}
	prev := read()
	for range 20 {
		time.Sleep(3 * time.Second)
		cur := read()
		if slices.Equal(cur, prev) {
			return cur
		}
		prev = cur
	}
	t.Fatalf("the IPVS table did not settle; last:\n%s", strings.Join(prev, "\n"))
	return nil
}

// withThresholds adds " -x U -y L" to the -a lines of save whose real
// server has thresholds in list (ipvsadm -L -n --thresholds): ipvsadm -S
// leaves them out.
func withThresholds(save []string, list string) []string {
	protos := map[string]string{"TCP": "-t", "UDP": "-u", "SCTP": "--sctp-service", "FWM": "-f"}
	thr := map[string]string{} // "-t 192.0.2.1:80 -r 10.9.0.1:8080" -> " -x 100 -y 10"
	svc := ""
	for _, l := range strings.Split(list, "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) >= 2 && protos[f[0]] != "":
			svc = protos[f[0]] + " " + f[1]
		case len(f) >= 4 && f[0] == "->" && svc != "" && (f[2] != "0" || f[3] != "0"):
			thr[svc+" -r "+f[1]] = fmt.Sprintf(" -x %s -y %s", f[2], f[3])
		}
	}
	out := slices.Clone(save)
	for i, l := range out {
		f := strings.Fields(l)
		if len(f) >= 5 && f[0] == "-a" && f[3] == "-r" {
			out[i] += thr[f[1]+" "+f[2]+" -r "+f[4]]
		}
	}
	return out
}

// byService groups ipvsadm -S lines by service ("-t 192.0.2.1:80"); the
// timeouts line is its own group.
func byService(lines []string) map[string][]string {
	m := map[string][]string{}
	for _, l := range lines {
		f := strings.Fields(l)
		key := l
		if len(f) >= 3 && (f[0] == "-A" || f[0] == "-a") {
			key = f[1] + " " + f[2]
		}
		if strings.HasPrefix(l, "Timeout") {
			key = "timeouts"
		}
		m[key] = append(m[key], l)
	}
	return m
}

var reportLineRE = regexp.MustCompile(`^(.*?):(\d+): `)

// explainDifferences fails unless every difference between the tables has
// a report line where it comes from: a service's own line (-A) must be
// explained by a line of the service's blocks outside its real servers
// (the virtual_server line, its keywords, its group); a real or sorry
// server's line (-a) by one of those or a line of that server's block.
func explainDifferences(t *testing.T, file, src, report string, theirs, ours []string) {
	explainTable(t, "keepalived", file, report, parseSource(src), theirs, ours)
}

// splitService returns a service's -A line and its -a lines by real
// server address.
func splitService(lines []string) (head string, servers map[string]string) {
	servers = map[string]string{}
	for _, l := range lines {
		f := strings.Fields(l)
		if i := slices.Index(f, "-r"); len(f) > 0 && f[0] == "-a" && i >= 0 && i+1 < len(f) {
			servers[hostOf(f[i+1])] = l
			continue
		}
		head += l
	}
	return head, servers
}

func mergeKeys(a, b map[string]string) map[string]bool {
	m := map[string]bool{}
	for k := range a {
		m[k] = true
	}
	for k := range b {
		m[k] = true
	}
	return m
}

// hostOf returns the address of "A:P" or "[A]:P" as netip prints it.
func hostOf(s string) string {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().String()
	}
	return s
}

// source is a keepalived file as lines, with the brace depth before each
// line (after # and ! comments) and its top-level block.
type source struct {
	fields [][]string // per line, 0-based
	depth  []int      // depth before the line
	block  [][2]int   // first and last line (0-based) of its top-level block
}

func parseSource(src string) *source {
	s := &source{}
	depth, start := 0, -1
	for i, l := range strings.Split(src, "\n") {
		if j := strings.IndexAny(l, "#!"); j >= 0 {
			l = l[:j]
		}
		f := strings.Fields(l)
		s.fields = append(s.fields, f)
		s.depth = append(s.depth, depth)
		s.block = append(s.block, [2]int{-1, -1})
		if depth == 0 && len(f) > 0 {
			start = i
		}
		depth = max(0, depth+strings.Count(l, "{")-strings.Count(l, "}"))
		if depth == 0 && start >= 0 {
			for n := start; n <= i; n++ {
				s.block[n] = [2]int{start, i}
			}
			start = -1
		}
	}
	return s
}

// names reports whether the fields of a line name the service key: its
// address (alone, or in a group's range A.B.C.D-E), "fwmark N", or for
// the timeouts lvs_timeouts.
func names(fields []string, key string) bool {
	if key == "timeouts" {
		return slices.Contains(fields, "lvs_timeouts")
	}
	kind, svc, _ := strings.Cut(key, " ")
	if kind == "-f" {
		return slices.Contains(fields, "fwmark") && slices.Contains(fields, svc)
	}
	ap, err := netip.ParseAddrPort(svc)
	if err != nil {
		return false
	}
	for _, f := range fields {
		if a, err := netip.ParseAddr(f); err == nil && a == ap.Addr() {
			return true
		}
		lo, hi, ok := strings.Cut(f, "-")
		if !ok || !ap.Addr().Is4() {
			continue
		}
		a, err1 := netip.ParseAddr(lo)
		last, err2 := strconv.Atoi(hi)
		if err1 == nil && err2 == nil && a.Is4() {
			x, y := a.As4(), ap.Addr().As4()
			if x[0] == y[0] && x[1] == y[1] && x[2] == y[2] && int(y[3]) >= int(x[3]) && int(y[3]) <= last {
				return true
			}
		}
	}
	return false
}

// blocks returns the top-level blocks that make the service: the
// virtual_server, virtual_server_group and global_defs blocks with a line
// naming it, and the "virtual_server group NAME" of a
// virtual_server_group among them.
func (s *source) blocks(key string) [][2]int {
	var out [][2]int
	add := func(b [2]int) {
		// A VRRP block names the address too (virtual_ipaddress), but
		// makes no IPVS service.
		if b[0] < 0 || slices.Contains(out, b) {
			return
		}
		if h := s.fields[b[0]]; len(h) > 0 && (h[0] == "virtual_server" || h[0] == "virtual_server_group" || h[0] == "global_defs") {
			out = append(out, b)
		}
	}
	for i, f := range s.fields {
		if names(f, key) {
			add(s.block[i])
		}
	}
	for _, b := range slices.Clone(out) {
		if h := s.fields[b[0]]; len(h) >= 2 && h[0] == "virtual_server_group" {
			for i, f := range s.fields {
				if s.depth[i] == 0 && len(f) >= 3 && f[0] == "virtual_server" && f[1] == "group" && f[2] == h[1] {
					add(s.block[i])
				}
			}
		}
	}
	return out
}

// serviceLines are the 1-based lines of the service's blocks outside its
// real servers' blocks.
func (s *source) serviceLines(key string) []int {
	var out []int
	for _, b := range s.blocks(key) {
		for i := b[0]; i <= b[1]; i++ {
			if s.depth[i] <= 1 && (len(s.fields[i]) == 0 || s.fields[i][0] != "real_server") {
				out = append(out, i+1)
			}
		}
	}
	return out
}

// serverLines are the 1-based lines of the blocks of real servers with
// address addr in the service's blocks.
func (s *source) serverLines(key, addr string) []int {
	var out []int
	for _, b := range s.blocks(key) {
		for i := b[0]; i <= b[1]; i++ {
			f := s.fields[i]
			if s.depth[i] != 1 || len(f) < 2 || f[0] != "real_server" {
				continue
			}
			if a, err := netip.ParseAddr(f[1]); err != nil || a.String() != addr {
				continue
			}
			for j := i; j <= b[1] && (j == i || s.depth[j] > 1); j++ {
				out = append(out, j+1)
			}
		}
	}
	return out
}
