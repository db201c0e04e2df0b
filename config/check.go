package config

import (
	"errors"
	"fmt"
	"regexp"
	"regexp/syntax"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

var (
	checkKeys = []string{"type", "interval", "fast_interval", "timeout", "rise", "fall", "start_healthy",
		"address", "port", "send", "expect", "path", "expect_status", "method", "host", "body",
		"server_name", "ca_file", "insecure_skip_verify", "command", "dynamic_weight",
		"user", "password_file", "password_env", "database", "query", "query_name", "query_type", "rcode", "answer",
		"bind_dn", "base_dn", "tls", "secret_file", // ldap, radius
		"helo_name", "protocol", "file", "digest", "weight_from_exit"} // smtp, banner, file, http digest, exec: check_native.go
	checkTypes = []string{string(CheckTCP), string(CheckHTTP), string(CheckHTTPS), string(CheckMySQL), string(CheckPostgres),
		string(CheckDNS), string(CheckExec),
		string(CheckUDP), string(CheckICMP), string(CheckSIP), // udp, icmp, sip
		string(CheckLDAP), string(CheckRADIUS), // ldap, radius
		string(CheckSMTP), string(CheckBanner), string(CheckFile), // smtp, banner, file
		string(CheckNone)}
	dnsTypes  = []string{"A", "AAAA", "CNAME", "MX", "NS", "PTR", "SOA", "SRV", "TXT"}
	dnsRcodes = []string{"NOERROR", "NXDOMAIN", "SERVFAIL", "REFUSED"}
)

// maxRiseFall keeps rise and fall to counts a human would mean; beyond it a
// server would take hours to change state at any sensible interval.
const maxRiseFall = 1000

func cloneCheck(c Check) Check {
	c.ExpectStatus = slices.Clone(c.ExpectStatus)
	c.Command = slices.Clone(c.Command)
	return c
}

// check decodes a check and merges it over base field by field, so that a
// service may change only its interval and keep the rest of defaults.check.
// Each field is validated where it is written; base is already valid.
// What depends on two fields (fast_interval and interval, exec and
// command) is checked on the merged result, and reported only where this
// mapping wrote one of them.
func (d *decoder) check(n *yaml.Node, path string, base Check) Check {
	c := cloneCheck(base)
	f := d.mapping(n, path, "a check", checkKeys)
	if f == nil {
		return c
	}
	typeOK := true
	if v := f.value("type"); v != nil {
		var t string
		if t, typeOK = d.enum(v, f.sub("type"), checkTypes); typeOK {
			c.Type = CheckType(t)
		}
	}
	intervalOK, fastOK := true, true
	if v := f.value("interval"); v != nil {
		var iv time.Duration
		if iv, intervalOK = d.interval(v, f.sub("interval")); intervalOK {
			c.Interval = iv
		}
	}
	if v := f.value("fast_interval"); v != nil {
		var fi time.Duration
		if fi, fastOK = d.interval(v, f.sub("fast_interval")); fastOK {
			c.FastInterval = fi
		}
	}
	if c.FastInterval > c.Interval && intervalOK && fastOK {
		if v := f.value("fast_interval"); v != nil {
			d.errorf(v, f.sub("fast_interval"), "must not be longer than interval (%s), got %s", c.Interval, describe(v))
		} else if v := f.value("interval"); v != nil {
			d.errorf(v, f.sub("interval"), "must not be shorter than the inherited fast_interval (%s), got %s", c.FastInterval, describe(v))
		}
	}
	if c.FastInterval > c.Interval {
		// Keep what is passed on valid: the mistake is reported once.
		c.FastInterval = 0
	}
	if v := f.value("timeout"); v != nil {
		if t, ok := d.interval(v, f.sub("timeout")); ok {
			c.Timeout = t
		}
	}
	if v := f.value("rise"); v != nil {
		if r, ok := d.integer(v, f.sub("rise"), 1, maxRiseFall); ok {
			c.Rise = int(r)
		}
	}
	if v := f.value("fall"); v != nil {
		if r, ok := d.integer(v, f.sub("fall"), 1, maxRiseFall); ok {
			c.Fall = int(r)
		}
	}
	if v := f.value("start_healthy"); v != nil {
		if b, ok := d.boolean(v, f.sub("start_healthy")); ok {
			c.StartHealthy = b
		}
	}
	if v := f.value("address"); v != nil {
		if a, ok := d.addr(v, f.sub("address")); ok {
			c.Address = a
		}
	}
	if v := f.value("port"); v != nil {
		if p, ok := d.integer(v, f.sub("port"), 1, 65535); ok {
			c.Port = uint16(p)
		}
	}

	// only reports a key written on a check of a type it means nothing to.
	only := func(name string, types ...CheckType) bool {
		if f.value(name) == nil {
			return false
		}
		if typeOK && !slices.Contains(types, c.Type) {
			d.errorf(f.key(name), f.sub(name), "only for %s checks; this check is %s", andList(types), c.Type)
			return false
		}
		return true
	}
	tcpText := func(name, want string, dst *string) {
		if only(name, CheckTCP, CheckUDP) { // udp: send, as tcp
			if s, ok := d.text(f.value(name), f.sub(name), want); ok {
				*dst = s
			}
		}
	}
	tcpText("send", "the text to send after connecting", &c.Send)
	if only("expect", CheckTCP, CheckUDP, CheckMySQL, CheckPostgres) { // udp: expect, as tcp
		if s, ok := d.text(f.value("expect"), f.sub("expect"), "the text the reply must contain (tcp, udp) or the first value must equal (mysql, postgres)"); ok {
			c.Expect = s
		}
	}
	textKey := func(name, want string, dst *string, types ...CheckType) {
		if only(name, types...) {
			if s, ok := d.text(f.value(name), f.sub(name), want); ok {
				*dst = s
			}
		}
	}
	// radius: user; ldap and radius: password_file; banner (its login): user, password_file, password_env
	textKey("user", "the user the check logs in as", &c.User, CheckMySQL, CheckPostgres, CheckRADIUS, CheckBanner)
	textKey("password_file", "the path of a file holding the password (mode 0600)", &c.PasswordFile, CheckMySQL, CheckPostgres, CheckLDAP, CheckRADIUS, CheckBanner)
	if v := f.value("password_file"); v != nil {
		d.mark(f.sub("password_file"), v)
	}
	textKey("password_env", "the name of an environment variable holding the password", &c.PasswordEnv, CheckMySQL, CheckPostgres, CheckBanner)
	textKey("database", "a database name", &c.Database, CheckMySQL, CheckPostgres)
	textKey("query", "an SQL query, such as SELECT 1", &c.Query, CheckMySQL, CheckPostgres)
	if f.value("password_file") != nil && f.value("password_env") != nil {
		d.errorf(f.key("password_env"), f.sub("password_env"), "give the password in password_file or password_env, not both")
	}
	if typeOK && (c.Type == CheckMySQL || c.Type == CheckPostgres) && c.User == "" && f.value("type") != nil {
		d.errorf(n, f.sub("user"), "missing; a %s check logs in as a user (password in password_file or password_env)", c.Type)
	}
	textKey("query_name", "a DNS name, such as www.example.com", &c.QueryName, CheckDNS)
	if only("query_type", CheckDNS) {
		if s, ok := d.enum(f.value("query_type"), f.sub("query_type"), dnsTypes); ok {
			c.QueryType = s
		}
	}
	if only("rcode", CheckDNS) {
		if s, ok := d.enum(f.value("rcode"), f.sub("rcode"), dnsRcodes); ok {
			c.Rcode = s
		}
	}
	textKey("answer", "text an answer record must contain, such as 192.0.2.53", &c.Answer, CheckDNS)
	if typeOK && c.Type == CheckDNS && c.QueryName == "" && f.value("type") != nil {
		d.errorf(n, f.sub("query_name"), "missing; a dns check asks for a name, such as query_name: www.example.com")
	}

	if only("path", CheckHTTP, CheckHTTPS) {
		v := f.value("path")
		if p, ok := d.text(v, f.sub("path"), `an HTTP path starting with "/"`); ok {
			if strings.HasPrefix(p, "/") {
				c.Path = p
			} else {
				d.errorf(v, f.sub("path"), `must be an HTTP path starting with "/", got %s`, describe(v))
			}
		}
	}
	if only("expect_status", CheckHTTP, CheckHTTPS) {
		c.ExpectStatus = d.expectStatus(f.value("expect_status"), f.sub("expect_status"))
	}
	if only("method", CheckHTTP, CheckHTTPS) {
		if m, ok := d.method(f.value("method"), f.sub("method")); ok {
			c.Method = m
		}
	}
	if only("host", CheckHTTP, CheckHTTPS) {
		const want = "a host name, optionally with a port, such as www.example.com or www.example.com:8080"
		if h, ok := d.hostHeader(f.value("host"), f.sub("host"), want, hostChars); ok {
			c.Host = h
		}
	}
	if only("body", CheckHTTP, CheckHTTPS) {
		if b, ok := d.regexp(f.value("body"), f.sub("body")); ok {
			c.Body = b
		}
	}
	if only("server_name", CheckHTTPS, CheckLDAP) { // ldap: with tls
		if s, ok := d.hostHeader(f.value("server_name"), f.sub("server_name"), "a TLS server name such as www.example.com", serverNameChars); ok {
			c.ServerName = s
		}
	}
	if only("ca_file", CheckHTTPS, CheckLDAP) { // ldap: with tls
		if s, ok := d.text(f.value("ca_file"), f.sub("ca_file"), "the path of a PEM file of CA certificates"); ok {
			c.CAFile = s
			d.mark(f.sub("ca_file"), f.value("ca_file"))
		}
	}
	if only("insecure_skip_verify", CheckHTTPS, CheckLDAP) { // ldap: with tls
		if b, ok := d.boolean(f.value("insecure_skip_verify"), f.sub("insecure_skip_verify")); ok {
			c.InsecureSkipVerify = b
		}
	}

	if only("command", CheckExec) {
		if argv, ok := d.command(f.value("command"), f.sub("command")); ok {
			c.Command = argv
			d.mark(f.sub("command"), f.value("command"))
		}
	} else if typeOK && c.Type == CheckExec && len(c.Command) == 0 && f.value("type") != nil && f.value("command") == nil {
		// When the type is inherited, so is the command (or the
		// inherited check was reported already).
		d.errorf(n, f.sub("command"), "missing; an exec check needs the program to run and its arguments, such as %s", commandExample)
	}
	if only("dynamic_weight", CheckExec) {
		if b, ok := d.boolean(f.value("dynamic_weight"), f.sub("dynamic_weight")); ok {
			c.DynamicWeight = b
			if b && d.bgpMode {
				d.warnf(f.value("dynamic_weight"), f.sub("dynamic_weight"), "has no effect in bgp mode: a real server's weight in the kernel is 0 or its configured weight, so that every director's mh table stays the same")
			}
		}
	}
	d.checkUDPICMPSIP(f, c, typeOK) // udp, icmp, sip: check_udp.go
	// ldap, radius: check_ldap.go
	d.checkLDAPRADIUS(n, f, &c, typeOK, only)
	// smtp, banner, file, http digest, exec weight_from_exit: check_native.go
	d.checkNative(n, f, &c, typeOK, only)
	if typeOK {
		d.timeoutWarning(f, c, base)
	}
	return c
}

// andList renders the types a key is for: "tcp", "http and https".
func andList(choices []CheckType) string {
	s := make([]string, len(choices))
	for i, c := range choices {
		s[i] = string(c)
	}
	if len(s) < 2 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " and " + s[len(s)-1]
}

// isTchar reports an HTTP token character (RFC 9110 section 5.6.2).
func isTchar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// method reads an HTTP method: a token, upper case as every server expects
// (methods are case-sensitive, and "get" is not GET).
func (d *decoder) method(n *yaml.Node, key string) (string, bool) {
	const want = "an HTTP method in upper case, such as GET, HEAD or POST"
	s, ok := d.text(n, key, want)
	if !ok {
		return "", false
	}
	valid := func(s string) bool {
		for i := 0; i < len(s); i++ {
			if !isTchar(s[i]) || s[i] >= 'a' && s[i] <= 'z' {
				return false
			}
		}
		return true
	}
	if !valid(s) {
		msg := fmt.Sprintf("must be %s, got %s", want, describe(n))
		if up := strings.ToUpper(s); valid(up) {
			msg += fmt.Sprintf(" (did you mean %q?)", up)
		}
		d.errorf(n, key, "%s", msg)
		return "", false
	}
	return s, true
}

// The characters of a Host header (a reg-name or IP literal and a port)
// and of a TLS server name (a DNS name or an IP address).
const (
	hostChars       = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:[]%"
	serverNameChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._:"
)

// hostHeader reads a name made of the characters in allowed.
func (d *decoder) hostHeader(n *yaml.Node, key, want, allowed string) (string, bool) {
	s, ok := d.text(n, key, want)
	if !ok {
		return "", false
	}
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(allowed, s[i]) < 0 {
			d.errorf(n, key, "must be %s, got %s", want, describe(n))
			return "", false
		}
	}
	return s, true
}

// regexp reads a regular expression in Go's syntax, compiled now so that a
// typo is a load error and not a server that can never pass its check.
func (d *decoder) regexp(n *yaml.Node, key string) (string, bool) {
	const want = "a regular expression (Go syntax)"
	s, ok := d.text(n, key, want)
	if !ok {
		return "", false
	}
	if _, err := regexp.Compile(s); err != nil {
		why := err.Error()
		var se *syntax.Error
		if errors.As(err, &se) {
			why = se.Code.String()
			if se.Expr != "" && se.Expr != s {
				why += fmt.Sprintf(" in %q", clip(se.Expr))
			}
		}
		d.errorf(n, key, "must be %s, got %s: %s", want, describe(n), why)
		return "", false
	}
	return s, true
}

// maxCommandArgs bounds an exec check's argv: each is copied into every
// probe's command line, and a check needs a handful.
const maxCommandArgs = 256

const commandExample = `[/usr/local/lib/director/check-app, "{address}", "{port}"]`

// placeholder finds what looks like a placeholder in a command argument.
var placeholder = regexp.MustCompile(`\{[A-Za-z_]+\}`)

// command reads an exec check's argv. There is no shell, so the program is
// an absolute path (there is no $PATH to search either), and each argument
// is passed as written but for the {address} and {port} placeholders.
func (d *decoder) command(n *yaml.Node, key string) ([]string, bool) {
	entries, ok := d.list(n, key, "the program and its arguments (no shell), such as "+commandExample)
	if !ok {
		return nil, false
	}
	if len(entries) == 0 {
		d.errorf(n, key, "must list at least the program to run, such as %s", commandExample)
		return nil, false
	}
	if len(entries) > maxCommandArgs {
		d.limitf(n, key, "lists %d arguments, more than the %d an exec check may have", len(entries), maxCommandArgs)
		return nil, false
	}
	argv := make([]string, 0, len(entries))
	for i, e := range entries {
		k := index(key, i)
		want := "a string (one argument)"
		if i == 0 {
			want = "the absolute path of the program"
		}
		s, ok := d.scalar(e, k, want)
		switch {
		case !ok:
		case strings.IndexByte(s, 0) >= 0:
			d.errorf(e, k, "must not contain a NUL character, got %s", describe(e))
			ok = false
		case i == 0 && !strings.HasPrefix(s, "/"):
			d.errorf(e, k, "must be the absolute path of the program (there is no shell and no $PATH search), got %s", describe(e))
			ok = false
		}
		if !ok {
			continue
		}
		for _, p := range placeholder.FindAllString(s, -1) {
			if p != "{address}" && p != "{port}" {
				d.warnf(e, k, "%s is not a placeholder and is passed as written (the placeholders are {address} and {port})", clip(p))
			}
		}
		argv = append(argv, s)
	}
	if len(argv) != len(entries) {
		return nil, false
	}
	return argv, true
}

const statusWant = "a status code from 100 to 599 or a range such as 200-299"

// expectStatus reads a list of codes and ranges; an empty result keeps
// nothing from base, on purpose: a written expect_status replaces.
func (d *decoder) expectStatus(n *yaml.Node, key string) []StatusRange {
	items, ok := d.items(n, key, "status codes or ranges")
	if !ok {
		return nil
	}
	if len(items) == 0 {
		d.errorf(n, key, "must list at least one status code or range, such as [200] or [200-299]")
		return nil
	}
	var out []StatusRange
	for _, it := range items {
		s, ok := d.scalar(it.node, it.key, statusWant)
		if !ok {
			continue
		}
		r, ok := parseStatusRange(s)
		switch {
		case !ok:
			d.errorf(it.node, it.key, "must be %s, got %s", statusWant, describe(it.node))
		case r.Min > r.Max:
			d.errorf(it.node, it.key, "range %d-%d is backwards; write %d-%d", r.Min, r.Max, r.Max, r.Min)
		default:
			out = append(out, r)
		}
	}
	return out
}

// parseStatusRange reads "200" or "200-299" with codes from 100 to 599;
// the caller checks the order, to say more than "wrong format".
func parseStatusRange(s string) (StatusRange, bool) {
	lo, hi, isRange := strings.Cut(s, "-")
	var r StatusRange
	var err1, err2 error
	r.Min, err1 = strconv.Atoi(strings.TrimSpace(lo))
	r.Max = r.Min
	if isRange {
		r.Max, err2 = strconv.Atoi(strings.TrimSpace(hi))
	}
	valid := func(code int) bool { return code >= 100 && code <= 599 }
	return r, err1 == nil && err2 == nil && valid(r.Min) && valid(r.Max)
}
