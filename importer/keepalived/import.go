// Package keepalived turns a keepalived configuration (keepalived.conf and
// the files it includes) into director YAML and a report of what could not
// be carried over, or only approximately. It reads the file as keepalived
// does (comments, quoting, braces, include, @id conditionals, $VAR
// definitions, ~SEQ/~LST) and maps virtual servers, their checkers, and a
// VRRP instance pair to the director's services and failover block. The
// YAML it returns always passes config.Parse: a service the director would
// refuse is left out, with a report line saying why.
package keepalived

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/directorlb/director/config"
	"github.com/directorlb/director/importer"
)

// Options of an import.
type Options struct {
	// Root resolves the absolute paths of include under this directory (a
	// copied tree); empty: as written.
	Root string
	// ID decides @id and @^id conditional lines; empty: the host name's
	// first label, as keepalived's default.
	ID string
}

// importRun is the state of one import.
type importRun struct {
	find       []importer.Finding
	services   []*service
	node       string
	nodeSrc    *node
	timeouts   []kv
	timeoutSrc *node
	syncIface  string
	syncID     int
	syncSrc    *node
	fo         *failover
	trackFiles map[string]*node
	names      map[string]bool
}

func (im *importRun) report(file string, line int, kw, format string, args ...any) {
	im.find = append(im.find, importer.Finding{File: file, Line: line, Keyword: kw, Msg: fmt.Sprintf(format, args...)})
}

func (im *importRun) reportN(n *node, format string, args ...any) {
	im.report(n.file, n.line, n.kw, format, args...)
}

// topLevel are keepalived's top-level keywords: a file with none of them
// is not a keepalived configuration.
var topLevel = map[string]bool{
	"global_defs": true, "vrrp_instance": true, "vrrp_sync_group": true, "vrrp_script": true,
	"virtual_server": true, "virtual_server_group": true, "static_ipaddress": true, "static_routes": true,
	"static_rules": true, "track_file": true, "vrrp_track_file": true, "net_namespace": true,
	"local_address_group": true, "deny_address_group": true, "linkbeat_use_polling": true,
	"garp_group": true, "bfd_instance": true, "track_process": true,
}

// Import reads the keepalived configuration at path and returns director
// YAML with its report.
func Import(path string, opts Options) importer.Result {
	if opts.ID == "" {
		h, _ := os.Hostname()
		opts.ID, _, _ = strings.Cut(h, ".")
	}
	im := &importRun{trackFiles: map[string]*node{}, names: map[string]bool{}}
	r := &reader{opts: opts, find: &im.find, vars: map[string]string{}, undef: map[string]bool{}}
	if err := r.readFile(path, 0); err != nil {
		im.report(path, 0, "file", "cannot read: %v", err)
		return im.result(nil)
	}
	root := im.parse(r.out)
	known := 0
	for _, n := range root.kids {
		if topLevel[n.kw] {
			known++
		}
	}
	if known == 0 {
		im.report(path, 0, "file", "no keepalived keyword (global_defs, vrrp_instance, virtual_server, ...) found: not a keepalived configuration")
		return im.result(nil)
	}
	im.top(root)
	if len(im.services) == 0 && im.fo == nil {
		im.report(path, 0, "file", "no virtual_server and no vrrp_instance could be carried over: nothing to import")
		return im.result(nil)
	}
	return im.result(im.validated(path))
}

func (im *importRun) result(yaml []byte) importer.Result {
	// a statement read by several real servers (a VS-level default) is
	// told once
	seen := map[importer.Finding]bool{}
	var find []importer.Finding
	for _, f := range im.find {
		if !seen[f] {
			seen[f] = true
			find = append(find, f)
		}
	}
	res := importer.Result{YAML: yaml, Findings: find}
	res.Sort()
	return res
}

// top walks the top-level statements.
func (im *importRun) top(root *node) {
	var groups []*node
	var vrrps []*node
	var syncGroups []*node
	for _, n := range root.kids {
		switch n.kw {
		case "track_file", "vrrp_track_file":
			im.trackFiles[n.arg(0)] = n
		case "virtual_server_group":
			groups = append(groups, n)
		}
	}
	for _, n := range root.kids {
		switch n.kw {
		case "global_defs":
			im.globalDefs(n)
		case "virtual_server":
			im.virtualServer(n, groups)
		case "virtual_server_group", "track_file", "vrrp_track_file":
			// read above, used by the virtual servers
		case "vrrp_instance":
			vrrps = append(vrrps, n)
		case "vrrp_sync_group":
			syncGroups = append(syncGroups, n)
		case "vrrp_script":
			im.reportN(n, "no equivalent: director does not track scripts; the pair's ping_nodes and health come from its own checks (a track_script using it is reported too)")
		case "static_ipaddress", "static_routes", "static_rules":
			im.reportN(n, "no equivalent: add these addresses or routes with the system's network configuration")
		case "local_address_group", "deny_address_group":
			im.reportN(n, "a DPVS (keepalived fork) keyword: the kernel's IPVS has no local addresses for full NAT; not carried over")
		case "net_namespace":
			im.reportN(n, "no equivalent: run directord in the namespace instead (ip netns exec)")
		default:
			im.reportN(n, "unknown or unsupported top-level keyword; ignored")
		}
	}
	im.vrrp(vrrps, syncGroups)
}

// globalDefs maps what global_defs holds for the director.
func (im *importRun) globalDefs(g *node) {
	for _, n := range g.kids {
		switch n.kw {
		case "router_id", "lvs_id":
			im.node, im.nodeSrc = n.arg(0), n
		case "lvs_timeouts":
			im.lvsTimeouts(n)
		case "lvs_sync_daemon":
			im.lvsSyncDaemon(n)
		case "notification_email", "notification_email_from", "smtp_server", "smtp_connect_timeout",
			"smtp_helo_name", "smtp_alert", "smtp_alert_vrrp", "smtp_alert_checker", "email_faults":
			im.reportN(n, "no equivalent: director sends no e-mail; alert from the metrics (director_* series) or a failover notify program")
		default:
			im.reportN(n, "global setting with no director equivalent; ignored")
		}
	}
}

// lvsTimeouts is `lvs_timeouts tcp N tcpfin N udp N`.
func (im *importRun) lvsTimeouts(n *node) {
	names := map[string]string{"tcp": "tcp", "tcpfin": "tcp_fin", "udp": "udp"}
	for i := 0; i+1 < len(n.args); i += 2 {
		key, ok := names[n.args[i]]
		secs, err := strconv.ParseUint(n.args[i+1], 10, 32)
		if !ok || err != nil {
			im.reportN(n, "%q %q is not tcp, tcpfin or udp with whole seconds; that pair is left out", n.args[i], n.args[i+1])
			continue
		}
		im.timeouts = append(im.timeouts, kv{key, fmt.Sprintf("%ds", secs)})
	}
	im.timeoutSrc = n
	if len(n.args)%2 != 0 {
		im.reportN(n, "odd number of words; the last is ignored")
	}
}

// lvsSyncDaemon is `lvs_sync_daemon IFACE [INSTANCE] [id N] [maxlen N] [port N] [ttl N] [group ADDR]`.
func (im *importRun) lvsSyncDaemon(n *node) {
	if im.syncSrc != nil {
		im.reportN(n, "a second lvs_sync_daemon; keepalived honours only one: the first (line %d) is kept", im.syncSrc.line)
		return
	}
	im.syncIface, im.syncSrc, im.syncID = n.arg(0), n, -1
	for i := 1; i < len(n.args); i++ {
		switch n.args[i] {
		case "id":
			if v, err := strconv.Atoi(n.arg(i + 1)); err == nil {
				im.syncID = v
			}
			i++
		case "maxlen", "port", "ttl", "group":
			im.reportN(n, "sync %s %s: director uses the kernel's default; left out", n.args[i], n.arg(i+1))
			i++
		}
	}
}

// validated emits the YAML and checks it with the director's own parser;
// a service (or the failover block) the parser refuses is left out, with
// the parser's reason in the report, until the file passes.
func (im *importRun) validated(path string) []byte {
	for range 200 {
		data := im.emit(path)
		c, err := config.Parse("import.yaml", data)
		if err == nil && len(im.services) == 0 && im.fo == nil {
			im.report(path, 0, "file", "nothing the director accepts is left: nothing to import")
			return nil
		}
		if err == nil {
			for _, w := range c.Warnings {
				im.warning(w)
			}
			return data
		}
		var errs config.Errors
		if !errors.As(err, &errs) || len(errs) == 0 {
			im.report(path, 0, "file", "the director refuses the YAML made: %v (a bug in the importer; please report it)", err)
			return nil
		}
		if !im.dropAll(errs) {
			im.report(path, 0, "file", "the director refuses the YAML made: %v (a bug in the importer; please report it)", errs[0])
			return nil
		}
	}
	return nil
}

var (
	svcKey  = regexp.MustCompile(`^services\[(\d+)\]`)
	realKey = regexp.MustCompile(`^real_servers\[(\d+)\]`)
	vipKey  = regexp.MustCompile(`^failover\.vips\[(\d+)\]`)
)

// dropAll removes every service the errors are about (each told once,
// with its first error), or else what the first error is about; false if
// nothing.
func (im *importRun) dropAll(errs config.Errors) bool {
	bad := map[int]bool{}
	for _, e := range errs {
		m := svcKey.FindStringSubmatch(e.Key)
		if m == nil {
			continue
		}
		i, _ := strconv.Atoi(m[1])
		if i < len(im.services) && !bad[i] {
			bad[i] = true
			key := strings.TrimPrefix(e.Key, m[0])
			im.reportN(im.services[i].src, "director refuses the mapped service (%s: %s); left out: fix it in the source or write it by hand", strings.TrimPrefix(key, "."), e.Msg)
		}
	}
	if len(bad) > 0 {
		kept := im.services[:0]
		for i, s := range im.services {
			if !bad[i] {
				kept = append(kept, s)
			}
		}
		im.services = kept
		return true
	}
	return im.drop(errs[0])
}

// drop removes what an error of config.Parse outside the services is
// about; false if nothing.
func (im *importRun) drop(e *config.Error) bool {
	switch {
	case strings.HasPrefix(e.Key, "failover") && im.fo != nil:
		im.reportN(im.fo.src, "director refuses the failover block made from it (%s: %s); left out: write failover by hand", e.Key, e.Msg)
		im.fo = nil
		return true
	case strings.HasPrefix(e.Key, "ipvs") && im.timeouts != nil:
		im.reportN(im.timeoutSrc, "director refuses the timeouts (%s: %s); left out", e.Key, e.Msg)
		im.timeouts = nil
		return true
	case strings.HasPrefix(e.Key, "node") && im.node != "":
		im.reportN(im.nodeSrc, "%q is not a director node name (%s); node left out: directord takes the host name", im.node, e.Msg)
		im.node = ""
		return true
	}
	return false
}

// warning is a warning of config.Parse, told at the source line.
func (im *importRun) warning(w *config.Error) {
	if m := svcKey.FindStringSubmatch(w.Key); m != nil {
		if i, _ := strconv.Atoi(m[1]); i < len(im.services) {
			s := im.services[i]
			key := strings.TrimPrefix(strings.TrimPrefix(w.Key, m[0]), ".")
			at := s.src
			if r := realKey.FindStringSubmatch(key); r != nil {
				if j, _ := strconv.Atoi(r[1]); j < len(s.reals) {
					at = s.reals[j].src
				}
			}
			im.reportN(at, "director warns: %s: %s", key, w.Msg)
			return
		}
	}
	if m := vipKey.FindStringSubmatch(w.Key); m != nil && im.fo != nil {
		if i, _ := strconv.Atoi(m[1]); i < len(im.fo.vipSrc) {
			im.reportN(im.fo.vipSrc[i], "director warns: %s", w.Msg)
			return
		}
	}
	if strings.HasPrefix(w.Key, "failover") && im.fo != nil {
		im.reportN(im.fo.src, "director warns: %s: %s", w.Key, w.Msg)
		return
	}
	im.report("import.yaml", w.Pos.Line, w.Key, "director warns: %s", w.Msg)
}
