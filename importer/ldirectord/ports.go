package ldirectord

import "strconv"

// servicePorts is the part of /etc/services that ldirectord files use for
// ports (virtual=VIP:www, real=RIP:mysql), plus ldirectord's own service
// names (ld_service_to_port: pop, pgsql, http_proxy, oracle), so that an
// import does not depend on the importing host's /etc/services.
var servicePorts = map[string]int{
	"ftp": 21, "ssh": 22, "telnet": 23, "smtp": 25, "domain": 53, "dns": 53,
	"http": 80, "www": 80, "www-http": 80, "pop": 110, "pop3": 110, "nntp": 119, "ntp": 123,
	"imap": 143, "imap2": 143, "snmp": 161, "ldap": 389, "https": 443, "syslog": 514,
	"submission": 587, "ldaps": 636, "imaps": 993, "pop3s": 995, "pops": 995,
	"ms-sql-s": 1433, "oracle": 1521, "radius": 1812, "radius-acct": 1813,
	"nfs": 2049, "http_proxy": 3128, "squid": 3128, "mysql": 3306, "sip": 5060, "sips": 5061,
	"postgresql": 5432, "pgsql": 5432, "http-alt": 8080, "webcache": 8080,
}

// portOf reads a port as ldirectord's getservbyname does: a number, or a
// name from servicePorts. ok is false for anything else.
func portOf(s string) (int, bool) {
	if n, err := strconv.Atoi(s); err == nil {
		return n, n >= 0 && n <= 65535
	}
	p, ok := servicePorts[s]
	return p, ok
}

// portService is ldirectord's ld_port_to_service: the service (and so the
// negotiate check) a virtual gets from its port when it names none.
func portService(port int) string {
	switch port {
	case 21:
		return "ftp"
	case 25:
		return "smtp"
	case 53:
		return "dns"
	case 80:
		return "http"
	case 110:
		return "pop"
	case 119:
		return "nntp"
	case 143:
		return "imap"
	case 389:
		return "ldap"
	case 443:
		return "https"
	case 587:
		return "submission"
	case 995:
		return "pops"
	case 993:
		return "imaps"
	case 1521:
		return "oracle"
	case 1812:
		return "radius"
	case 3128:
		return "http_proxy"
	case 3306:
		return "mysql"
	case 5060:
		return "sip"
	case 5432:
		return "pgsql"
	}
	return "none"
}
