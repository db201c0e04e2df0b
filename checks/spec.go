package checks

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"reflect"
	"slices"
	"time"

	"github.com/directorlb/director/config"
)

// ProbeSpec is everything that defines one probe stream. FromConfig fills
// it from a config.Check; fields a type does not use stay zero, so that
// checks differing only in what their type ignores share one probe.
type ProbeSpec struct {
	Type   config.CheckType
	Target netip.AddrPort // where probes go: the real server, or a probe address/port override

	Interval time.Duration
	// FastInterval, if set, replaces Interval while the state is changing:
	// unhealthy with at least one success, or healthy with at least one
	// failure.
	FastInterval time.Duration
	Timeout      time.Duration
	Rise, Fall   int  // < 1 means 1
	StartHealthy bool // start healthy instead of needing Rise successes

	// tcp
	Send, Expect string

	// http, https
	HTTP HTTPOptions

	// exec
	Command       []string
	DynamicWeight bool

	// mysql, postgres
	SQL SQLOptions

	// dns
	DNS DNS

	// ldap, radius: ldap.go, radius.go
	LDAP   LDAPOptions
	RADIUS RADIUSOptions

	// smtp, banner, file, and exec's weight_from_exit: native.go (the
	// http digest is in HTTP)
	SMTP           SMTP          `json:",omitzero"`
	Banner         BannerOptions `json:",omitzero"`
	File           FileCheck     `json:",omitzero"`
	WeightFromExit bool          `json:",omitempty"`
}

// Key identifies a probe stream: specs with equal keys share one
// goroutine and one state machine. Every field takes part, since two
// subscribers with different rise or interval cannot share a state: the
// target as written, the rest as a hash (see keyMemo).
func (p ProbeSpec) Key() string {
	var m keyMemo
	return m.key(p)
}

// keyMemo computes Keys over a run of specs that differ only in their
// targets, as the real servers of one service do: the rest is encoded and
// hashed once per run instead of once per server, which on a reload of
// 100,000 real servers was most of the checks' share of it.
type keyMemo struct {
	rest ProbeSpec // the last spec's fields but its target
	cur  ProbeSpec // the spec at hand, held here so comparing allocates nothing
	hash string    // hashOf(rest)
	ok   bool
}

func (m *keyMemo) key(p ProbeSpec) string {
	target := p.Target
	m.cur = p
	m.cur.Target = netip.AddrPort{}
	// DeepEqual compares every field, as the encoding in hashOf covers
	// every field: a spec is plain data (CA's PEM is compared by content).
	if !m.ok || !reflect.DeepEqual(&m.rest, &m.cur) {
		m.rest, m.hash, m.ok = m.cur, hashOf(m.cur), true
	}
	return m.hash + "@" + target.String()
}

// identity is the key without the scheduling and state-machine settings:
// a reload that only retunes those keeps the probe's health (see Set).
func (p ProbeSpec) identity() string {
	p.Interval, p.FastInterval, p.Timeout, p.Rise, p.Fall, p.StartHealthy = 0, 0, 0, 0, 0, false
	return hashOf(p)
}

func hashOf(p ProbeSpec) string {
	// ProbeSpec is plain data, so JSON is a stable, complete encoding.
	b, err := json.Marshal(p)
	if err != nil {
		panic(fmt.Sprintf("checks: encoding a ProbeSpec cannot fail: %v", err))
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:12])
}

// FromConfig builds the probe spec of one real server from its service's
// resolved check. The check's address and port, where set, replace the
// real server's in the target, each on its own. Only the fields of the
// check's type are mapped: a check inherits the others (a tcp check under
// an http defaults.check keeps its path) but they mean nothing to it.
func FromConfig(c config.Check, rs *config.RealServer) ProbeSpec {
	addr, port := rs.Address, rs.Port
	if c.Address.IsValid() {
		addr = c.Address
	}
	if c.Port != 0 {
		port = c.Port
	}
	p := ProbeSpec{
		Type:         c.Type,
		Target:       netip.AddrPortFrom(addr, port),
		Interval:     c.Interval,
		FastInterval: c.FastInterval,
		Timeout:      c.Timeout,
		Rise:         c.Rise,
		Fall:         c.Fall,
		// The daemon also sets it for servers it adopts already serving.
		StartHealthy: c.StartHealthy,
	}
	switch c.Type {
	case config.CheckTCP:
		p.Send, p.Expect = c.Send, c.Expect
	case config.CheckHTTP, config.CheckHTTPS:
		method := c.Method
		if method == "" {
			method = http.MethodGet
		}
		p.HTTP = HTTPOptions{
			TLS:          c.Type == config.CheckHTTPS,
			Method:       method,
			Path:         c.Path,
			Host:         c.Host,
			ExpectStatus: slices.Clone(c.ExpectStatus),
			BodyRegexp:   c.Body,
		}
		if c.Type == config.CheckHTTPS {
			p.HTTP.ServerName = c.ServerName
			p.HTTP.CAFile = c.CAFile
			p.HTTP.InsecureSkipVerify = c.InsecureSkipVerify
		}
	case config.CheckExec:
		p.Command = slices.Clone(c.Command)
		p.DynamicWeight = c.DynamicWeight
	case config.CheckMySQL, config.CheckPostgres:
		p.SQL = SQLOptions{User: c.User, PasswordFile: c.PasswordFile, PasswordEnv: c.PasswordEnv,
			Database: c.Database, Query: c.Query, Expect: c.Expect}
	case config.CheckDNS:
		p.DNS = DNS{Name: c.QueryName, Type: c.QueryType, Rcode: c.Rcode, Answer: c.Answer}
	case config.CheckUDP, config.CheckICMP, config.CheckSIP: // udp, icmp, sip: udp.go
		udpICMPSIPSpec(&p, c)
	case config.CheckLDAP, config.CheckRADIUS: // ldap, radius: ldapradius.go
		ldapRADIUSSpec(&p, c)
	}
	nativeSpec(&p, c) // smtp, banner, file, http digest, exec weight_from_exit: native.go
	return p
}

// SpecsFor lists the checks a configuration asks for, one per real server
// of every service. Sorry servers are not checked: they stand in only
// while nothing else is available. It reads no file: LoadSpecs does.
func SpecsFor(cfg *config.Config) []Spec {
	// Sized first: a Spec is about a kilobyte, and appending to an
	// unsized slice copied the reference farm's 100,000 over and over.
	n := 0
	for i := range cfg.Services {
		n += len(cfg.Services[i].RealServers)
	}
	if n == 0 {
		return nil // as before sizing: no real server, no slice
	}
	out := make([]Spec, 0, n)
	for i := range cfg.Services {
		s := &cfg.Services[i]
		for j := range s.RealServers {
			rs := &s.RealServers[j]
			out = append(out, Spec{Service: s.Name, RealServer: rs.AddrPort(), Probe: FromConfig(s.Check, rs)})
		}
	}
	return out
}

// LoadSpecs is SpecsFor with the files checks name (password_file,
// ca_file) read into the specs, each file once, so probes never touch a
// file. A file that is missing, too big, not a regular file or writable
// by others than root is an error of the configuration (config.Errors),
// refused like any other at start or reload.
func LoadSpecs(cfg *config.Config) ([]Spec, error) {
	out := SpecsFor(cfg)
	var errs config.Errors
	files := fileLoader{passwords: map[string]Secret{}, cas: map[string]*PEM{}, failed: map[string]bool{}}
	k := 0 // out is in SpecsFor's order: services, then their real servers
	for i := range cfg.Services {
		for range cfg.Services[i].RealServers {
			if e := files.load(i, &cfg.Services[i], &out[k].Probe); e != nil {
				errs = append(errs, e)
			}
			k++
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return out, nil
}

// NewProber builds the prober of a spec. A spec that cannot be built
// yields a prober failing with the reason, so one bad check shows up as
// an unhealthy server with an explanation rather than blocking a reload.
func NewProber(p ProbeSpec) Prober {
	switch p.Type {
	case config.CheckNone:
		return None{}
	case config.CheckTCP, "":
		return TCP{Send: p.Send, Expect: p.Expect}
	case config.CheckHTTP, config.CheckHTTPS:
		o := p.HTTP
		o.TLS = p.Type == config.CheckHTTPS
		h, err := NewHTTP(o)
		if err != nil {
			return broken{fmt.Errorf("%s check: %w", p.Type, err)}
		}
		return h
	case config.CheckExec:
		return Exec{Argv: p.Command, DynamicWeight: p.DynamicWeight, WeightFromExit: p.WeightFromExit}
	case config.CheckMySQL, config.CheckPostgres:
		// LoadSpecs has read the password; a spec made otherwise
		// reads it here, once per prober, never per probe.
		o := p.SQL
		if !o.Password.IsSet() {
			if err := o.LoadPassword(); err != nil {
				return broken{fmt.Errorf("%s check: %w", p.Type, err)}
			}
		}
		if p.Type == config.CheckMySQL {
			return MySQL{o}
		}
		return Postgres{o}
	case config.CheckDNS:
		return p.DNS
	case config.CheckUDP, config.CheckICMP, config.CheckSIP: // udp, icmp, sip: udp.go
		return udpICMPSIPProber(p)
	case config.CheckLDAP, config.CheckRADIUS: // ldap, radius: ldapradius.go
		return ldapRADIUSProber(p)
	case config.CheckSMTP, config.CheckBanner, config.CheckFile: // native.go
		return nativeProber(p)
	default:
		return broken{fmt.Errorf("check type %q is not implemented", p.Type)}
	}
}
