package keepalived

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

var checkers = map[string]bool{"TCP_CHECK": true, "HTTP_GET": true, "SSL_GET": true, "MISC_CHECK": true,
	"DNS_CHECK": true, "SMTP_CHECK": true, "UDP_CHECK": true, "PING_CHECK": true, "ICMP_CHECK": true,
	"FILE_CHECK": true, "BFD_CHECK": true}

func hasChecker(n *node) bool {
	for _, k := range n.kids {
		if checkers[k.kw] {
			return true
		}
	}
	return false
}

// realServer maps a real_server block; the check is its first checker's.
func (im *importRun) realServer(rn *node, c *vsCtx) (*realSrv, []kv) {
	addr := rn.arg(0)
	if a, err := netip.ParseAddr(addr); err == nil {
		addr = a.String()
	}
	port := 0
	if rn.arg(1) != "" {
		p, err := strconv.Atoi(rn.arg(1))
		if err != nil || p < 0 || p > 65535 {
			im.reportN(rn, "%q is not a port; the service's is used", rn.arg(1))
		} else {
			port = p
		}
	}
	im.extraArgs(rn, 2)
	rs := &realSrv{src: rn, weight: 1, host: addr}
	forward := ""
	inherit := map[string]*node{}
	for k, v := range c.inherit {
		inherit[k] = v
	}
	var checkNodes []*node
	for _, k := range rn.kids {
		switch {
		case checkers[k.kw]:
			checkNodes = append(checkNodes, k)
		case k.kw == "weight":
			w, err := strconv.Atoi(k.arg(0))
			if err != nil || w < 0 || w > 65535 {
				im.reportN(k, "%q is not a weight 0-65535; 1 used", k.arg(0))
			} else {
				rs.weight = w
			}
		case k.kw == "lvs_method" || k.kw == "lb_kind":
			f, t := im.method(k)
			if f != c.forward {
				forward = f
				rs.kvs = append(rs.kvs, kv{"forward", f})
				if len(t) > 0 {
					rs.kvs = append(rs.kvs, kv{"tunnel", flow(t)})
				}
			}
		case k.kw == "uthreshold":
			rs.kvs = append(rs.kvs, kv{"upper_threshold", num(k.arg(0))})
		case k.kw == "lthreshold":
			rs.kvs = append(rs.kvs, kv{"lower_threshold", num(k.arg(0))})
		case k.kw == "inhibit_on_failure":
			if c.onFailure != "quiesce" {
				im.reportN(k, "director's on_failure is per service: the whole service quiesces failed real servers")
			}
			c.onFailure = "quiesce"
		case k.kw == "notify_up" || k.kw == "notify_down":
			im.reportN(k, "no equivalent: director runs no program on a real server's change; watch director_real_server_* metrics or the log")
		case k.kw == "connect_timeout" || k.kw == "retry" || k.kw == "nb_get_retry" || k.kw == "delay_before_retry" ||
			k.kw == "warmup" || k.kw == "connect_port" || k.kw == "bindto" || k.kw == "bind_port" || k.kw == "connect_ip":
			inherit[canon(k.kw)] = k
		case k.kw == "alpha":
			c.alpha = true
		case k.kw == "smtp_alert":
			im.reportN(k, "no equivalent: director sends no e-mail alerts")
		default:
			im.reportN(k, "unknown keyword in real_server; ignored (a typo?)")
		}
	}
	if forward == "" {
		forward = c.forward
	}
	switch {
	case port == 0:
	case (c.fwmark || c.port == 0) && forward != "nat":
		im.reportN(rn, "port %d left out: a %s real server of a fwmark or every-port service takes the client's port", port, forward)
		port = 0
	case port == c.port && !c.fwmark:
		port = 0
	}
	rs.addr = hostPort(addr, port)
	if len(checkNodes) == 0 {
		return rs, nil
	}
	for _, extra := range checkNodes[1:] {
		im.reportN(extra, "a second checker on one real server: director has one check per service; only the first (line %d) is carried over", checkNodes[0].line)
	}
	return rs, im.checker(checkNodes[0], c, inherit, addr, rn.arg(1))
}

func num(s string) string {
	if _, err := strconv.ParseUint(s, 10, 32); err != nil {
		return q(s)
	}
	return s
}

// checker maps one checker block to a director check.
func (im *importRun) checker(ck *node, c *vsCtx, inherit map[string]*node, addr, port string) []kv {
	for _, k := range ck.kids {
		switch k.kw {
		case "connect_timeout", "retry", "nb_get_retry", "delay_before_retry", "warmup", "connect_port",
			"bindto", "bind_port", "connect_ip", "bind_if", "fwmark":
			inherit[canon(k.kw)] = k
		}
	}
	var out []kv
	timeout := 5.0
	retry := 1
	switch ck.kw {
	case "TCP_CHECK":
		out = append(out, kv{"type", "tcp"})
	case "HTTP_GET", "SSL_GET":
		out = im.httpCheck(ck, c)
	case "MISC_CHECK":
		retry = 0
		timeout = c.delayLoop
		out = im.miscCheck(ck, c, addr, port, &timeout)
	case "DNS_CHECK":
		out = im.dnsCheck(ck)
	case "SMTP_CHECK":
		out = append(out, kv{"type", "smtp"})
		for _, k := range ck.kids {
			switch k.kw {
			case "helo_name":
				out = append(out, kv{"helo_name", q(k.arg(0))})
			case "host":
				im.reportN(k, "SMTP_CHECK host blocks (several targets) have no equivalent: the real server (or connect_ip/connect_port) is checked")
			}
		}
	case "UDP_CHECK":
		out = im.udpCheck(ck)
	case "PING_CHECK", "ICMP_CHECK":
		out = append(out, kv{"type", "icmp"})
		delete(inherit, "connect_port")
	case "FILE_CHECK":
		out = im.fileCheck(ck)
	default:
		im.reportN(ck, "no equivalent check (BFD is not spoken); this real server gets the service's check, or none")
		return nil
	}
	for _, key := range []string{"connect_port", "connect_ip", "bindto", "bind_port", "bind_if", "fwmark", "warmup"} {
		k := inherit[key]
		if k == nil {
			continue
		}
		switch key {
		case "connect_port":
			out = append(out, kv{"port", num(k.arg(0))})
		case "connect_ip":
			if k.arg(0) != addr {
				out = append(out, kv{"address", q(k.arg(0))})
			}
		case "warmup":
			im.reportN(k, "no equivalent: director probes a new server at once, not after a random delay; left out")
		default:
			im.reportN(k, "no equivalent: director probes from the kernel's choice of source address; left out")
		}
	}
	if k := inherit["connect_timeout"]; k != nil {
		if v, err := strconv.ParseFloat(k.arg(0), 64); err == nil && v > 0 {
			timeout = v
		}
	}
	if k := inherit["retry"]; k != nil {
		if v, err := strconv.Atoi(k.arg(0)); err == nil && v >= 0 && v < 1000 {
			retry = v
		}
	}
	delay := 1.0
	if k := inherit["delay_before_retry"]; k != nil {
		if v, err := strconv.ParseFloat(k.arg(0), 64); err == nil && v > 0 {
			delay = v
		}
	}
	// keepalived probes every delay_loop; after a failure it retries retry
	// times delay_before_retry apart before the server is down, and one
	// success brings it back: fast_interval, fall and rise say the same.
	out = append(out, kv{"interval", dur(c.delayLoop)})
	if retry > 0 && delay < c.delayLoop {
		out = append(out, kv{"fast_interval", dur(delay)})
	}
	out = append(out, kv{"timeout", dur(timeout)}, kv{"rise", "1"}, kv{"fall", strconv.Itoa(retry + 1)})
	if !c.alpha {
		// without alpha keepalived counts every server up at start
		out = append(out, kv{"start_healthy", "true"})
	}
	return out
}

// dur writes seconds as a director duration.
func dur(secs float64) string {
	if secs == float64(int64(secs)) {
		return fmt.Sprintf("%ds", int64(secs))
	}
	ms := int64(secs * 1000)
	if ms < 1 {
		ms = 1
	}
	return fmt.Sprintf("%dms", ms)
}

func (im *importRun) httpCheck(ck *node, c *vsCtx) []kv {
	out := []kv{{"type", "http"}}
	if ck.kw == "SSL_GET" {
		out[0].v = "https"
	}
	vhost := c.vhost
	var urls []*node
	for _, k := range ck.kids {
		switch k.kw {
		case "url":
			urls = append(urls, k)
		case "virtualhost":
			vhost = k.arg(0)
		case "enable_sni":
		case "connect_timeout", "retry", "nb_get_retry", "delay_before_retry", "warmup", "connect_port",
			"bindto", "bind_port", "connect_ip", "bind_if", "fwmark":
		default:
			im.reportN(k, "no equivalent in director's http check; ignored")
		}
	}
	if len(urls) > 1 {
		for _, u := range urls[1:] {
			im.reportN(u, "a second url: director's http check asks one path; only the first (line %d) is carried over", urls[0].line)
		}
	}
	if len(urls) > 0 {
		for _, k := range urls[0].kids {
			switch k.kw {
			case "path":
				out = append(out, kv{"path", q(k.arg(0))})
			case "status_code":
				list := make([]string, len(k.args))
				for i, a := range k.args {
					list[i] = q(a)
				}
				out = append(out, kv{"expect_status", "[" + strings.Join(list, ", ") + "]"})
			case "digest":
				out = append(out, kv{"digest", q(strings.ToLower(k.arg(0)))})
			case "regex":
				out = append(out, kv{"body", q(k.arg(0))})
				im.reportN(k, "keepalived's regex is PCRE, director's body is Go syntax (RE2): check the expression means the same")
			case "virtualhost":
				vhost = k.arg(0)
			default:
				im.reportN(k, "no equivalent in director's http check; ignored")
			}
		}
	}
	if vhost != "" {
		out = append(out, kv{"host", q(vhost)})
	}
	if ck.kw == "SSL_GET" {
		// keepalived's SSL_GET does not verify the certificate
		out = append(out, kv{"insecure_skip_verify", "true"})
	}
	return out
}

func (im *importRun) dnsCheck(ck *node) []kv {
	qtype, name := "SOA", "."
	for _, k := range ck.kids {
		switch k.kw {
		case "type":
			qtype = strings.ToUpper(k.arg(0))
		case "name":
			name = k.arg(0)
		}
	}
	switch qtype {
	case "A", "AAAA", "CNAME", "MX", "NS", "PTR", "SOA", "SRV", "TXT":
	default:
		im.reportN(ck, "query type %q is not one director asks; SOA used", qtype)
		qtype = "SOA"
	}
	return []kv{{"type", "dns"}, {"query_name", q(name)}, {"query_type", qtype}}
}

func (im *importRun) udpCheck(ck *node) []kv {
	out := []kv{{"type", "udp"}}
	reply := false
	for _, k := range ck.kids {
		switch k.kw {
		case "payload":
			if b, err := hex.DecodeString(k.arg(0)); err == nil {
				out = append(out, kv{"send", q(string(b))})
			} else {
				im.reportN(k, "payload %q is not hex; an empty datagram is sent", k.arg(0))
			}
		case "require_reply":
			reply = true
			if k.arg(0) != "" {
				if b, err := hex.DecodeString(k.arg(0)); err == nil {
					out = append(out, kv{"expect", q(string(b))})
				}
			}
		case "min_reply_length", "max_reply_length":
			im.reportN(k, "no equivalent: director checks the reply's content, not its length")
		}
	}
	if !reply {
		im.reportN(ck, "without require_reply keepalived counts silence as up; director's udp check needs a reply (an ICMP port unreachable fails it at once): make sure the service answers the payload")
	}
	return out
}

func (im *importRun) fileCheck(ck *node) []kv {
	var tf *node
	for _, k := range ck.kids {
		if k.kw == "track_file" {
			tf = im.trackFiles[k.arg(0)]
		}
	}
	if tf == nil {
		im.reportN(ck, "no track_file named here is defined; no check")
		return nil
	}
	path := ""
	for _, k := range tf.kids {
		if k.kw == "file" {
			path = k.arg(0)
		}
	}
	im.reportN(ck, "director's file check reads the number as a percentage of the weight (0 or less: failed, 100: full weight); keepalived adds it times the track_file weight: make what writes %s write 0 or 100", path)
	return []kv{{"type", "file"}, {"file", q(path)}}
}
