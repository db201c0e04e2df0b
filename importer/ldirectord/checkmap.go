package ldirectord

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// kv is one key of the YAML output with its value already written as YAML.
type kv struct{ k, v string }

// checkOf maps a virtual's checktype and service to a director check:
// connect is tcp, negotiate the service's own check, external an exec
// check with ldirectord's arguments, ping icmp, on and off none.
func (im *conv) checkOf(vs *vsrv, reals []real, g globals) []kv {
	ct, nt := timeouts(vs, g)
	timeout := nt // the negotiate checks use negotiatetimeout (check_http, check_smtp, ...)
	var typ []kv
	switch vs.checktype {
	case "on":
		return []kv{{"type", "none"}}
	case "off":
		im.report(vs.set["checktype"], "checktype", "off: ldirectord never puts these real servers in service (with quiescent=yes it leaves them at weight 0); director's none check keeps them in, always healthy: remove the service or its real servers if it is meant to be off")
		return []kv{{"type", "none"}}
	case "ping":
		typ, timeout = []kv{{"type", "icmp"}}, ct
	case "connect":
		typ, timeout = im.connectCheck(vs), ct
	case "external", "external-perl":
		typ, timeout = im.execCheck(vs, reals), ct
	default: // negotiate, combined
		if vs.checktype == "combined" {
			im.report(vs.set["checktype"], "checktype", strconv.Itoa(vs.every)+": ldirectord negotiated every "+strconv.Itoa(vs.every)+"th check and only connected in between; director runs the "+vs.service+" check every time")
		}
		if vs.service == "none" {
			return []kv{{"type", "none"}}
		}
		typ = im.nativeCheck(vs, reals)
	}
	interval := g.checkInterval
	if vs.checkinterval > 0 {
		if g.fork {
			interval = vs.checkinterval
		} else {
			im.report(vs.set["checkinterval"], "checkinterval", "ldirectord ignores a virtual's checkinterval unless fork = yes: kept the global "+strconv.Itoa(interval)+"s (write interval: "+strconv.Itoa(vs.checkinterval)+"s if you meant it)")
		}
	}
	written := vs.checktimeout > 0 || vs.negotiatetimeout > 0 || g.checkTimeout > 0 || g.negotiateTimeout > 0
	if written && timeout >= interval && typ[0].v != "none" {
		im.timeoutOverInterval(vs, g, timeout, interval)
	}
	fall := g.failureCount
	if vs.failurecount > 0 {
		fall = vs.failurecount
	}
	out := []kv{typ[0], {"interval", secs(interval)}, {"timeout", secs(timeout)}, {"rise", "1"}, {"fall", strconv.Itoa(min(fall, 1000))}}
	if t := typ[0].v; t != "icmp" && t != "exec" && t != "none" {
		if p := im.checkPort(vs, reals); p > 0 {
			out = append(out, kv{"port", strconv.Itoa(p)})
		}
	}
	return append(out, typ[1:]...)
}

// timeoutOverInterval reports a check whose timeout is not shorter than
// its interval: ldirectord checked one server after another and slept
// checkinterval after each round, so a slow answer only put the next
// round off; director starts a probe every interval, and its check-config
// warns that one that times out is followed at once by the next.
func (im *conv) timeoutOverInterval(vs *vsrv, g globals, timeout, interval int) {
	// Named after the directive the timeout came from: each is the
	// other's default (ld_setup).
	key, other := "checktimeout", "negotiatetimeout"
	own, otherSet := vs.checktimeout > 0 || g.checkTimeout > 0, vs.negotiatetimeout > 0 || g.negotiateTimeout > 0
	if vs.checktype == "negotiate" || vs.checktype == "combined" {
		key, other, own, otherSet = other, key, otherSet, own
	}
	if !own && otherSet {
		key = other
	}
	line := vs.set[key]
	if line == 0 {
		line = vs.line // the global's, or the default
	}
	im.report(line, key, fmt.Sprintf("the check's timeout %ds is not shorter than checkinterval %ds: ldirectord slept checkinterval after each round of checks, however long they took; director starts a probe every interval: kept both (director warns); raise interval above the timeout, or lower the timeout", timeout, interval))
}

// checkPort is the check's port when ldirectord's ld_checkport would
// probe another one than director does (a real server's port, else the
// service's): checkport, else the real server's written port, else the
// standard port of the service (a real written without a port is checked
// there, not on the virtual's port). 0: none needed.
func (im *conv) checkPort(vs *vsrv, reals []real) int {
	if vs.checkport > 0 {
		return vs.checkport
	}
	std := 0
	if p, ok := servicePorts[vs.service]; ok && portService(p) == vs.service {
		std = p
	}
	want, differs := -1, false
	for _, r := range reals {
		ld := r.port
		if ld == 0 {
			ld = std
		}
		dir := vs.port // director: the real's port as written out, else the service's
		if r.fwd == "nat" && vs.fwmark == 0 && r.port != 0 {
			dir = r.port
		}
		if ld != dir {
			differs = true
		}
		if want == -1 {
			want = ld
		} else if want != ld {
			want = -2
		}
	}
	switch {
	case !differs || want == 0:
		return 0
	case want < 0:
		im.report(reals[0].line, "real", "ldirectord checked these real servers on different ports than director will (a real's own port, else the service's standard one): add checkport or write each real's port")
		return 0
	}
	return want
}

// timeouts are ldirectord's ld_setup: checktimeout and negotiatetimeout
// are each other's defaults, then the globals', then 5s and 30s.
func timeouts(vs *vsrv, g globals) (check, negotiate int) {
	check = firstSet(vs.checktimeout, vs.negotiatetimeout, g.checkTimeout, g.negotiateTimeout, defaultCheckTimeout)
	negotiate = firstSet(vs.negotiatetimeout, vs.checktimeout, g.negotiateTimeout, g.checkTimeout, defaultNegotiateTimeout)
	return min(check, 86400), min(negotiate, 86400)
}

func firstSet(vals ...int) int {
	for _, v := range vals {
		if v > 0 {
			return v
		}
	}
	return 0
}

func secs(n int) string { return strconv.Itoa(n) + "s" }

// connectCheck is ldirectord's connect: tcp, and for a UDP service a
// ping (_check_real calls check_ping for connect on udp).
func (im *conv) connectCheck(vs *vsrv) []kv {
	if vs.protocol == "udp" {
		return []kv{{"type", "icmp"}}
	}
	return []kv{{"type", "tcp"}}
}

// execCheck runs checkcommand with ldirectord's arguments: the virtual's
// address (or firewall mark) and port, then the real server's.
func (im *conv) execCheck(vs *vsrv, reals []real) []kv {
	line := vs.set["checkcommand"]
	if line == 0 {
		line = vs.set["checktype"]
	}
	cmd := vs.checkcommand
	if cmd == "" {
		im.report(line, "checkcommand", "missing: ldirectord runs /bin/true, which always passes; carried over as a none check")
		return []kv{{"type", "none"}}
	}
	fields := strings.Fields(cmd)
	if len(fields) > 1 {
		im.report(line, "checkcommand", "has spaces: ldirectord runs it as one program name; split into program and arguments")
	}
	if vs.checktype == "external-perl" {
		im.report(vs.set["checktype"], "checktype", "external-perl: ldirectord ran the file as Perl inside itself; director executes it: give it a #!/usr/bin/perl line and make it executable")
	}
	vip, vport := vs.addr.String(), strconv.Itoa(vs.port)
	if vs.fwmark != 0 {
		vip, vport = strconv.FormatInt(vs.fwmark, 10), "0"
	}
	rport := "{port}"
	if !slices.ContainsFunc(reals, func(r real) bool { return r.port != 0 }) {
		rport = "0" // check_external passes the real's port as written: none is 0
	}
	args := append(fields, vip, vport, "{address}", rport)
	if !strings.HasPrefix(fields[0], "/") {
		im.report(line, "checkcommand", quoteMsg(fields[0])+" is not an absolute path: director searches no $PATH; write the full path")
	}
	return []kv{{"type", "exec"}, {"command", flowList(args)}}
}

// nativeCheck is negotiate: the check of the virtual's service.
func (im *conv) nativeCheck(vs *vsrv, reals []real) []kv {
	req, rec := im.requestReceive(vs, reals)
	svcLine := vs.set["service"]
	if svcLine == 0 {
		svcLine = vs.line
	}
	switch vs.service {
	case "http", "https", "http_proxy":
		t := vs.service
		if t == "http_proxy" {
			t = "http"
			im.report(svcLine, "service", "http_proxy: director asks each proxy for the path itself, not for a URL through it")
		}
		out := []kv{{"type", t}, {"path", yamlStr(urlPath(req))}}
		if vs.httpmethod != "GET" {
			out = append(out, kv{"method", yamlStr(vs.httpmethod)})
		}
		if vs.virtualhost != "" {
			out = append(out, kv{"host", yamlStr(vs.virtualhost)})
		}
		if rec != "" {
			if _, err := regexp.Compile(rec); err != nil {
				im.report(vs.set["receive"], "receive", "not a regular expression director reads ("+err.Error()+"): body not checked; write it in Go's syntax")
			} else {
				out = append(out, kv{"body", yamlStr(rec)})
			}
		}
		if t == "https" {
			// LWP's verify_hostname => 0 leaves IO::Socket::SSL verifying
			// the chain (seen in the lab: a self-signed certificate fails
			// ldirectord's check); director verifies both or neither.
			out = append(out, kv{"insecure_skip_verify", "true"})
			im.report(svcLine, "service", "https: ldirectord verified the real server's certificate chain against the system's CAs, but not its name; director's check verifies both or neither: carried over with insecure_skip_verify: true, so a certificate ldirectord rejected (self-signed, expired) passes here (to verify, remove it and set server_name to the certificate's name)")
		}
		if vs.service != "http_proxy" && (vs.httpmethod == "GET" || vs.httpmethod == "HEAD") {
			// LWP::UserAgent follows redirects of GET and HEAD (7 at
			// most) and check_http judges the last answer.
			im.report(svcLine, "service", vs.service+": ldirectord followed redirects (up to 7) and judged the page they end on; director's check does not follow them, so a 3xx fails it: if "+quoteMsg(urlPath(req))+" redirects, write the final path (or expect_status: [200-399] to pass on the redirect itself)")
		}
		return out
	case "smtp", "submission":
		return []kv{{"type", "smtp"}}
	case "ftp", "pop", "imap", "nntp":
		proto := map[string]string{"ftp": "ftp", "pop": "pop3", "imap": "imap", "nntp": "nntp"}[vs.service]
		out := []kv{{"type", "banner"}, {"protocol", proto}}
		login := vs.login
		if vs.service == "ftp" && login == "" {
			login = "anonymous" // read_config's default for service=ftp
		}
		if login != "" && vs.service != "nntp" {
			out = append(out, kv{"user", yamlStr(login)}, kv{"password_file", im.secretFile(vs, vs.service, "password", "passwd", "the password of "+quoteMsg(login))})
		}
		if vs.service == "ftp" && vs.set["request"] != 0 {
			im.report(vs.set["request"], "request", "ldirectord fetched this file over FTP and matched receive; director logs in and stops there")
		}
		return out
	case "pops", "imaps":
		im.report(svcLine, "service", vs.service+": director's banner check speaks no TLS; carried over as a tcp connect")
		return []kv{{"type", "tcp"}}
	case "oracle":
		im.report(svcLine, "service", "oracle: director has no Oracle check; carried over as a tcp connect (or write an exec check)")
		return []kv{{"type", "tcp"}}
	case "ldap":
		out := []kv{{"type", "ldap"}}
		if vs.login != "" && vs.passwd != "" {
			out = append(out, kv{"bind_dn", yamlStr(vs.login)}, kv{"password_file", im.secretFile(vs, "ldap", "password", "passwd", "the password of "+quoteMsg(vs.login))})
		}
		if base := strings.TrimPrefix(req, "/"); base != "" {
			out = append(out, kv{"base_dn", yamlStr(base)})
		}
		if rec != "" {
			im.report(vs.set["receive"], "receive", "director's ldap check does not match the entry's DN against a pattern; not carried over")
		}
		return out
	case "mysql", "pgsql":
		t := map[string]string{"mysql": "mysql", "pgsql": "postgres"}[vs.service]
		if vs.login == "" {
			im.report(svcLine, "service", vs.service+" without login: ldirectord marks every server down; carried over as a tcp connect (write login, passwd and request)")
			return []kv{{"type", "tcp"}}
		}
		out := []kv{{"type", t}, {"user", yamlStr(vs.login)}}
		if vs.passwd != "" {
			out = append(out, kv{"password_file", im.secretFile(vs, vs.service, "password", "passwd", "the password of "+quoteMsg(vs.login))})
		}
		if vs.database != "" {
			out = append(out, kv{"database", yamlStr(vs.database)})
		}
		if q := strings.TrimPrefix(req, "/"); q != "" {
			out = append(out, kv{"query", yamlStr(q)})
			im.report(vs.set["request"], "request", "ldirectord needs the query to return a row; director needs it to succeed (write expect: to compare the first value)")
		} else {
			im.report(svcLine, "service", vs.service+" without request: ldirectord marks every server down; director runs SELECT 1")
		}
		return out
	case "dns":
		name := strings.TrimPrefix(req, "/")
		if name == "" {
			im.report(svcLine, "service", "dns without request: director's dns check needs the name to ask; carried over as a connect, a ping for UDP (write query_name)")
			return im.connectCheck(vs)
		}
		out := []kv{{"type", "dns"}, {"query_name", yamlStr(name)}}
		if rec != "" {
			out = append(out, kv{"answer", yamlStr(rec)})
		}
		return out
	case "radius":
		user := vs.login
		if user == "" {
			user = "director-probe"
			im.report(svcLine, "service", "radius without login: director sends an Access-Request for user director-probe (a reject is an answer)")
		}
		return []kv{{"type", "radius"}, {"user", yamlStr(user)},
			{"password_file", im.secretFile(vs, "radius", "password", "passwd", "the password of "+quoteMsg(user)+" (any: a reject is an answer)")},
			{"secret_file", im.secretFile(vs, "radius", "secret", "secret", "the shared secret")}}
	case "sip":
		if vs.set["login"] != 0 {
			im.report(vs.set["login"], "login", "director's sip OPTIONS request names no user; not carried over")
		}
		return []kv{{"type", "sip"}}
	case "simpletcp":
		out := []kv{{"type", "tcp"}}
		if send := strings.ReplaceAll(strings.TrimPrefix(req, "/"), `\n`, "\n"); send != "" {
			out = append(out, kv{"send", yamlStr(send)})
		}
		if rec != "" {
			if regexp.QuoteMeta(rec) != rec {
				im.report(vs.set["receive"], "receive", "ldirectord matched it as a regular expression; director's tcp expect is plain text: check it")
			}
			out = append(out, kv{"expect", yamlStr(rec)})
		}
		return out
	}
	im.report(svcLine, "service", quoteMsg(vs.service)+" is not a service ldirectord knows: ldirectord 4.12 refuses the file here (service must be dns, ftp, http, ...; a patched ldirectord?); carried over as a connect (a ping for UDP): write the check it ran as an exec check")
	return im.connectCheck(vs)
}

// requestReceive is the request and receive the check uses: the
// virtual's, or the real servers' own when they all give the same.
func (im *conv) requestReceive(vs *vsrv, reals []real) (string, string) {
	req, rec := vs.request, vs.receive
	type pair struct{ a, b string }
	seen := map[pair]bool{}
	var first *real
	for i := range reals {
		r := &reals[i]
		p := pair{req, rec}
		if r.own {
			p = pair{r.request, r.receive}
			if first == nil {
				first = r
			}
		}
		seen[p] = true
	}
	if first == nil {
		return req, rec
	}
	if len(seen) > 1 {
		im.report(first.line, "real", "real servers have their own request and receive: director has one check per service; used this line's (split the service to check each its own way)")
	}
	return first.request, first.receive
}

// urlPath is the path of a request that may be a whole URL.
func urlPath(req string) string {
	s := strings.TrimPrefix(req, "/")
	for _, scheme := range []string{"http://", "https://"} {
		if strings.HasPrefix(s, scheme) {
			rest := s[len(scheme):]
			if i := strings.IndexByte(rest, '/'); i >= 0 {
				return rest[i:]
			}
			return "/"
		}
	}
	return req
}

// secretFile names the file a password or secret must go in now that it
// may not be written in the configuration, and says so in the report.
func (im *conv) secretFile(vs *vsrv, service, kind, key, what string) string {
	im.secrets[service+"-"+kind]++
	path := "/etc/director/" + service + "-" + strconv.Itoa(im.secrets[service+"-"+kind]) + "." + kind
	line := vs.set[key]
	if line == 0 {
		line = vs.set["service"]
	}
	if line == 0 {
		line = vs.line
	}
	im.report(line, key, "director reads "+what+" from "+path+", not from its configuration: create it (root, mode 0600) holding it")
	return path
}
