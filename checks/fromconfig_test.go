package checks

import (
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/directorlb/director/config"
)

// TestFromConfig: every field of a check reaches the probe spec, the
// probe address and port replace the real server's each on its own, and
// fields of another type are left out.
func TestFromConfig(t *testing.T) {
	rs := &config.RealServer{Address: netip.MustParseAddr("10.1.0.11"), Port: 80, Weight: 1}
	common := config.Check{Interval: 5 * time.Second, FastInterval: time.Second, Timeout: 2 * time.Second, Rise: 3, Fall: 4, StartHealthy: true}
	// other holds a value in every type-specific field, as a check that
	// inherits from a defaults.check of another type does.
	other := func(c config.Check) config.Check {
		c.Send, c.Expect = "PING\r\n", "+PONG"
		c.Path, c.ExpectStatus = "/healthz", []config.StatusRange{{Min: 200, Max: 204}}
		c.Method, c.Host, c.Body = "HEAD", "www.example.com", "^ok$"
		c.ServerName, c.CAFile, c.InsecureSkipVerify = "tls.example.com", "/etc/director/ca.pem", true
		c.Command, c.DynamicWeight = []string{"/usr/local/bin/check", "{address}", "{port}"}, true
		c.User, c.PasswordFile, c.PasswordEnv, c.Database, c.Query = "checker", "/etc/director/db.pw", "DB_PW", "app", "SELECT role FROM status"
		c.QueryName, c.QueryType, c.Rcode, c.Answer = "www.example.com", "AAAA", "NOERROR", "2001:db8::53"
		c.BindDN, c.BaseDN, c.TLS, c.SecretFile = "cn=monitor,dc=example,dc=com", "dc=example,dc=com", "starttls", "/etc/director/radius.secret" // ldap, radius
		// smtp, banner, file, http digest
		c.HeloName, c.BannerProtocol, c.File, c.Digest = "lb1.example.com", "imap", "/run/weight", "md5:9e107d9d372bb6826bd81d3542a419d6"
		return c
	}
	withType := func(c config.Check, typ config.CheckType) config.Check { c.Type = typ; return c }
	spec := func(typ config.CheckType, target string) ProbeSpec {
		return ProbeSpec{Type: typ, Target: netip.MustParseAddrPort(target), Interval: 5 * time.Second, FastInterval: time.Second,
			Timeout: 2 * time.Second, Rise: 3, Fall: 4, StartHealthy: true}
	}
	tests := []struct {
		name string
		in   config.Check
		want ProbeSpec
	}{
		{"mysql", other(withType(common, "mysql")), func() ProbeSpec {
			p := spec("mysql", "10.1.0.11:80")
			p.SQL = SQLOptions{User: "checker", PasswordFile: "/etc/director/db.pw", PasswordEnv: "DB_PW", Database: "app", Query: "SELECT role FROM status", Expect: "+PONG"}
			return p
		}()},
		{"postgres", other(withType(common, "postgres")), func() ProbeSpec {
			p := spec("postgres", "10.1.0.11:80")
			p.SQL = SQLOptions{User: "checker", PasswordFile: "/etc/director/db.pw", PasswordEnv: "DB_PW", Database: "app", Query: "SELECT role FROM status", Expect: "+PONG"}
			return p
		}()},
		{"dns", other(withType(common, "dns")), func() ProbeSpec {
			p := spec("dns", "10.1.0.11:80")
			p.DNS = DNS{Name: "www.example.com", Type: "AAAA", Rcode: "NOERROR", Answer: "2001:db8::53"}
			return p
		}()},
		{"exec, address and port", func() config.Check {
			c := other(withType(common, "exec"))
			c.Address, c.Port = netip.MustParseAddr("192.0.2.99"), 9000
			return c
		}(), func() ProbeSpec {
			p := spec("exec", "192.0.2.99:9000")
			p.Command, p.DynamicWeight = []string{"/usr/local/bin/check", "{address}", "{port}"}, true
			return p
		}()},
		{"tcp, port only", func() config.Check {
			c := other(withType(common, "tcp"))
			c.Port = 6380
			return c
		}(), func() ProbeSpec {
			p := spec("tcp", "10.1.0.11:6380")
			p.Send, p.Expect = "PING\r\n", "+PONG"
			return p
		}()},
		{"http, address only, no TLS", func() config.Check {
			c := other(withType(common, "http"))
			c.Address = netip.MustParseAddr("2001:db8::99")
			return c
		}(), func() ProbeSpec {
			p := spec("http", "[2001:db8::99]:80")
			p.HTTP = HTTPOptions{Method: "HEAD", Path: "/healthz", Host: "www.example.com", BodyRegexp: "^ok$",
				ExpectStatus: []config.StatusRange{{Min: 200, Max: 204}}}
			p.HTTP.Digest = "md5:9e107d9d372bb6826bd81d3542a419d6" // http digest
			return p
		}()},
		{"https, everything", other(withType(common, "https")), func() ProbeSpec {
			p := spec("https", "10.1.0.11:80")
			p.HTTP = HTTPOptions{TLS: true, Method: "HEAD", Path: "/healthz", Host: "www.example.com", BodyRegexp: "^ok$",
				ExpectStatus: []config.StatusRange{{Min: 200, Max: 204}},
				ServerName:   "tls.example.com", CAFile: "/etc/director/ca.pem", InsecureSkipVerify: true}
			p.HTTP.Digest = "md5:9e107d9d372bb6826bd81d3542a419d6" // http digest
			return p
		}()},
		{"http defaults", config.Check{Type: "http", Interval: time.Second, Timeout: time.Second, Rise: 1, Fall: 1},
			ProbeSpec{Type: "http", Target: rs.AddrPort(), Interval: time.Second, Timeout: time.Second, Rise: 1, Fall: 1,
				HTTP: HTTPOptions{Method: "GET"}}},
		{"ldap", other(withType(common, "ldap")), func() ProbeSpec {
			p := spec("ldap", "10.1.0.11:80")
			p.LDAP = LDAPOptions{TLS: "starttls", ServerName: "tls.example.com", CAFile: "/etc/director/ca.pem", InsecureSkipVerify: true,
				BindDN: "cn=monitor,dc=example,dc=com", PasswordFile: "/etc/director/db.pw", BaseDN: "dc=example,dc=com"}
			return p
		}()},
		{"radius", other(withType(common, "radius")), func() ProbeSpec {
			p := spec("radius", "10.1.0.11:80")
			p.RADIUS = RADIUSOptions{User: "checker", PasswordFile: "/etc/director/db.pw", SecretFile: "/etc/director/radius.secret"}
			return p
		}()},
		// smtp, banner, file, exec weight_from_exit: native.go
		{"smtp", other(withType(common, "smtp")), func() ProbeSpec {
			p := spec("smtp", "10.1.0.11:80")
			p.SMTP = SMTP{HeloName: "lb1.example.com"}
			return p
		}()},
		{"banner", other(withType(common, "banner")), func() ProbeSpec {
			p := spec("banner", "10.1.0.11:80")
			p.Banner = BannerOptions{Protocol: "imap", Login: SQLOptions{User: "checker", PasswordFile: "/etc/director/db.pw", PasswordEnv: "DB_PW"}}
			return p
		}()},
		{"file", other(withType(common, "file")), func() ProbeSpec {
			p := spec("file", "10.1.0.11:80")
			p.File = FileCheck{Path: "/run/weight"}
			return p
		}()},
		{"exec, weight_from_exit", func() config.Check {
			c := withType(common, "exec")
			c.Command, c.WeightFromExit = []string{"/usr/local/bin/check"}, true
			return c
		}(), func() ProbeSpec {
			p := spec("exec", "10.1.0.11:80")
			p.Command, p.WeightFromExit = []string{"/usr/local/bin/check"}, true
			return p
		}()},
		// udp, icmp, sip: udp.go
		{"udp", other(withType(common, "udp")), func() ProbeSpec {
			p := spec("udp", "10.1.0.11:80")
			p.Send, p.Expect = "PING\r\n", "+PONG"
			return p
		}()},
		{"icmp", other(withType(common, "icmp")), spec("icmp", "10.1.0.11:0")},
		{"sip", other(withType(common, "sip")), spec("sip", "10.1.0.11:80")},
		{"none", other(withType(config.DefaultCheck, "none")),
			ProbeSpec{Type: "none", Target: rs.AddrPort(), Interval: 2 * time.Second, Timeout: time.Second, Rise: 2, Fall: 3}},
	}
	covered := reflect.New(reflect.TypeFor[ProbeSpec]()).Elem()
	input := reflect.New(reflect.TypeFor[config.Check]()).Elem()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := FromConfig(tt.in, rs)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("FromConfig =\n%+v\nwant\n%+v", got, tt.want)
			}
			// The spec must not share the config's slices.
			if len(got.Command) > 0 {
				tt.in.Command[0] = "/bin/false"
				if got.Command[0] == "/bin/false" {
					t.Error("Command shares the config's slice")
				}
			}
			if len(got.HTTP.ExpectStatus) > 0 {
				tt.in.ExpectStatus[0].Min = 100
				if got.HTTP.ExpectStatus[0].Min == 100 {
					t.Error("ExpectStatus shares the config's slice")
				}
			}
		})
		markSet(covered, reflect.ValueOf(tt.want))
		markSet(input, reflect.ValueOf(tt.in))
	}
	// A field added to config.Check or ProbeSpec (or HTTPOptions) must be
	// mapped and asserted here.
	for _, name := range unset(input, "") {
		t.Errorf("no case sets config.Check.%s", name)
	}
	for _, name := range unset(covered, "") {
		if name == "HTTP.CA" { // read by LoadSpecs, not mapped: see files_test.go
			continue
		}
		t.Errorf("no case sets ProbeSpec.%s", name)
	}
}

// markSet sets in dst (to any non-zero value) each field non-zero in v.
func markSet(dst, v reflect.Value) {
	for i := range v.NumField() {
		f := v.Field(i)
		switch {
		case f.Type() == reflect.TypeFor[HTTPOptions]():
			markSet(dst.Field(i), f)
		case !f.IsZero():
			dst.Field(i).Set(f)
		}
	}
}

// unset lists the fields of v still zero.
func unset(v reflect.Value, prefix string) []string {
	var out []string
	for i := range v.NumField() {
		f, name := v.Field(i), prefix+v.Type().Field(i).Name
		switch {
		case f.Type() == reflect.TypeFor[HTTPOptions]():
			out = append(out, unset(f, name+".")...)
		case f.IsZero():
			out = append(out, name)
		}
	}
	return out
}

// TestSpecsForCheckKeys: from the YAML through defaults.check to the probe
// specs, with a service that changes only the interval keeping the rest.
func TestSpecsForCheckKeys(t *testing.T) {
	const yaml = `
defaults:
  check:
    type: exec
    command: [/usr/local/bin/check, "{address}"]
    dynamic_weight: true
    fast_interval: 500ms
    start_healthy: true
    port: 9000
services:
  - name: inherits
    vip: 192.0.2.10
    port: 80
    real_servers: [{address: 10.1.0.11}]
  - name: interval-only
    vip: 192.0.2.10
    port: 81
    check: {interval: 1s}
    real_servers: [{address: 10.1.0.12}]
  - name: web
    vip: 192.0.2.10
    port: 82
    check: {type: https, address: 10.1.0.99, server_name: www.example.com, body: ok}
    real_servers: [{address: 10.1.0.13}]
`
	cfg, err := config.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	exec := func(target string, interval time.Duration) ProbeSpec {
		return ProbeSpec{Type: "exec", Target: netip.MustParseAddrPort(target), Interval: interval, FastInterval: 500 * time.Millisecond,
			Timeout: time.Second, Rise: 2, Fall: 3, StartHealthy: true,
			Command: []string{"/usr/local/bin/check", "{address}"}, DynamicWeight: true}
	}
	want := []Spec{
		{Service: "inherits", RealServer: netip.MustParseAddrPort("10.1.0.11:80"), Probe: exec("10.1.0.11:9000", 2*time.Second)},
		{Service: "interval-only", RealServer: netip.MustParseAddrPort("10.1.0.12:81"), Probe: exec("10.1.0.12:9000", time.Second)},
		{Service: "web", RealServer: netip.MustParseAddrPort("10.1.0.13:82"), Probe: ProbeSpec{Type: "https",
			Target: netip.MustParseAddrPort("10.1.0.99:9000"), Interval: 2 * time.Second, FastInterval: 500 * time.Millisecond,
			Timeout: time.Second, Rise: 2, Fall: 3, StartHealthy: true,
			HTTP: HTTPOptions{TLS: true, Method: "GET", ServerName: "www.example.com", BodyRegexp: "ok"}}},
	}
	if got := SpecsFor(cfg); !reflect.DeepEqual(got, want) {
		t.Errorf("SpecsFor =\n%+v\nwant\n%+v", got, want)
	}
}
