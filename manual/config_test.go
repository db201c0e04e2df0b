package manual

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/directorlb/director/config"
)

// blockVars names, for each block of director.yaml(5) and of
// realserver(8)'s file, config's list of the keys that mapping accepts.
var blockVars = map[string]string{
	"":                          "topKeys",
	"control":                   "controlKeys",
	"metrics":                   "metricsKeys",
	"ipvs":                      "ipvsKeys",
	"ipvs.timeouts":             "timeoutKeys",
	"defaults":                  "defaultKeys",
	"included files":            "includedKeys",
	"services[]":                "serviceKeys",
	"services[].tunnel":         "tunnelKeys",
	"services[].announce":       "announceKeys",
	"services[].real_servers[]": "realServerKeys",
	"check":                     "checkKeys",
	"failover":                  "failoverKeys",
	"failover.links[]":          "linkKeys",
	"failover.vips[]":           "vipKeys",
	"failover.sync, bgp.sync":   "syncKeys",
	"bgp":                       "bgpKeys",
	"bgp.peers[]":               "bgpPeerKeys",
	"bgp.peers[].bfd":           "bfdKeys",
	"bgp.group":                 "bgpGroupKeys",
	"realserver.yaml":           "helperKeys",
}

// configKeyLists reads config's key lists from its source: every
// package-level `xxxKeys = []string{...}`. It also fails the test if a
// mapping is decoded with keys that are not in such a list, so that
// every key config accepts is in one.
func configKeyLists(t *testing.T, dir string) (lists map[string][]string, problems []string) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("config's source: %v", err)
	}
	lists = map[string][]string{}
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range file.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.VAR {
				continue
			}
			for _, s := range g.Specs {
				vs := s.(*ast.ValueSpec)
				for i, name := range vs.Names {
					if !strings.HasSuffix(name.Name, "Keys") || i >= len(vs.Values) {
						continue
					}
					lit, ok := vs.Values[i].(*ast.CompositeLit)
					if !ok {
						problems = append(problems, fmt.Sprintf("%s: %s is not a []string literal", fset.Position(name.Pos()), name.Name))
						continue
					}
					for _, e := range lit.Elts {
						b, ok := e.(*ast.BasicLit)
						if !ok {
							problems = append(problems, fmt.Sprintf("%s: an element of %s is not a string", fset.Position(e.Pos()), name.Name))
							continue
						}
						k, _ := strconv.Unquote(b.Value)
						lists[name.Name] = append(lists[name.Name], k)
					}
				}
			}
		}
		// The keys of every mapping decoded are a list's (d.mapping's
		// last argument), not written in place.
		ast.Inspect(file, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || sel.Sel.Name != "mapping" || len(call.Args) == 0 {
				return true
			}
			ast.Inspect(call.Args[len(call.Args)-1], func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.CompositeLit:
					problems = append(problems, fmt.Sprintf("%s: a mapping's keys written in place; put them in a xxxKeys list that package manual documents", fset.Position(n.Pos())))
					return false
				case *ast.Ident:
					if n.Name != "append" && !strings.HasSuffix(n.Name, "Keys") {
						problems = append(problems, fmt.Sprintf("%s: a mapping's keys from %s, not a xxxKeys list", fset.Position(n.Pos()), n.Name))
					}
				}
				return true
			})
			return true
		})
	}
	return lists, problems
}

// TestKeysAreConfigs: director.yaml(5) and realserver(8) document every
// key config accepts, in every mapping, and no key it does not.
func TestKeysAreConfigs(t *testing.T) {
	lists, problems := configKeyLists(t, "../config")
	for _, p := range problems {
		t.Error(p)
	}
	documented := map[string]bool{}
	for _, p := range []*Page{DirectorYAML(), Realserver()} {
		for _, b := range p.Keys {
			v, ok := blockVars[b.Path]
			if !ok {
				t.Errorf("%s: block %q: which of config's key lists is it? (blockVars)", p.Name, b.Path)
				continue
			}
			documented[v] = true
			var doc []string
			for _, k := range b.Keys {
				doc = append(doc, k.Name)
			}
			want := slices.Clone(lists[v])
			slices.Sort(doc)
			slices.Sort(want)
			if !slices.Equal(doc, want) {
				t.Errorf("%s: block %q documents %q; config's %s accepts %q", p.Name, b.Path, doc, v, want)
			}
		}
	}
	for v := range lists {
		if !documented[v] {
			t.Errorf("config's %s (%q) is in no block of director.yaml(5) or realserver(8)", v, lists[v])
		}
	}
}

// TestConfigKeyListsScanner: the scanner finds a new list, and a
// mapping whose keys are not in one.
func TestConfigKeyListsScanner(t *testing.T) {
	dir := t.TempDir()
	src := `package config

var (
	fooKeys = []string{"a", "b"}
	other   = []string{"x"}
)

func (d *decoder) foo() {
	d.mapping(n, "foo", "foo", fooKeys)
	d.mapping(n, "bar", "bar", []string{"c"})
	d.mapping(n, "baz", "baz", other)
}
`
	if err := os.WriteFile(filepath.Join(dir, "foo.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	lists, problems := configKeyLists(t, dir)
	if len(lists) != 1 || !slices.Equal(lists["fooKeys"], []string{"a", "b"}) {
		t.Errorf("lists %q, want fooKeys [a b] only", lists)
	}
	if len(problems) != 2 || !strings.Contains(problems[0], "written in place") || !strings.Contains(problems[1], "from other") {
		t.Errorf("problems %q, want the in-place list and the one from other", problems)
	}
}

// plainYAML and bgpYAML are the smallest files that reach every block
// with a default: a pair, and a BGP group.
const plainYAML = `node: lb1
services:
  - name: web
    vip: 192.0.2.10
    port: 80
    real_servers: [{address: 10.0.0.1}]
  - name: tunnelled
    vip: 192.0.2.11
    port: 80
    forward: tun
    real_servers: [{address: 10.0.0.2}]
failover:
  auth_key_file: /etc/director/key
  links: [{interface: eth0, peer: 10.0.0.9}]
  sync: {interface: eth0}
`

const bgpYAML = `node: lb1
bgp:
  asn: 65001
  router_id: 192.0.2.1
  peers: [{address: 192.0.2.254, asn: 65000, bfd: {}}]
services:
  - name: web
    vip: 192.0.2.10
    port: 80
    forward: dr
    real_servers: [{address: 10.0.0.1}]
`

// defaultOf is what config made of a key left out, written as the page
// writes defaults.
type defaultOf func(plain, bgp *config.Config) string

func none(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func durNone(d time.Duration) string {
	if d == 0 {
		return "none"
	}
	return d.String()
}

func checkOf(c config.Check) string {
	return fmt.Sprintf("{type: %s, interval: %s, timeout: %s, rise: %d, fall: %d}", c.Type, c.Interval, c.Timeout, c.Rise, c.Fall)
}

var defaults = map[string]defaultOf{
	".state_dir":         func(c, _ *config.Config) string { return c.StateDir },
	".allow_no_services": func(c, _ *config.Config) string { return fmt.Sprint(c.AllowNoServices) },
	"control.socket":     func(c, _ *config.Config) string { return c.Control.Socket },
	"metrics.listen":     func(c, _ *config.Config) string { return c.Metrics.Listen },
	"ipvs.timeouts": func(c, _ *config.Config) string {
		if c.IPVS.Timeouts == nil {
			return "the kernel's"
		}
		return "set"
	},
	"ipvs.cleanup_on_exit":    func(c, _ *config.Config) string { return fmt.Sprint(c.IPVS.CleanupOnExit) },
	"ipvs.reconcile_interval": func(c, _ *config.Config) string { return c.IPVS.ReconcileInterval.String() },
	"defaults.check":          func(c, _ *config.Config) string { return checkOf(c.Defaults.Check) },

	"services[].protocol": func(c, _ *config.Config) string { return string(c.Services[0].Protocol) },
	"services[].family": func(c, _ *config.Config) string {
		if c.Services[0].IPv6 {
			return "ipv6"
		}
		return "ipv4"
	},
	"services[].scheduler":           func(c, _ *config.Config) string { return c.Services[0].Scheduler },
	"services[].scheduler_flags":     func(c, _ *config.Config) string { return none(strings.Join(c.Services[0].SchedulerFlags, ", ")) },
	"services[].one_packet":          func(c, _ *config.Config) string { return fmt.Sprint(c.Services[0].OnePacket) },
	"services[].persistence":         func(c, _ *config.Config) string { return durNone(c.Services[0].Persistence) },
	"services[].persistence_netmask": func(c, _ *config.Config) string { return fmt.Sprint(c.Services[0].PersistenceMask) },
	"services[].forward":             func(c, _ *config.Config) string { return string(c.Services[0].Forward) },
	"services[].tunnel": func(c, _ *config.Config) string {
		t := c.Services[1].Tunnel
		return fmt.Sprintf("{type: %s, checksum: %s}", t.Type, t.Checksum)
	},
	"services[].on_failure": func(c, _ *config.Config) string { return string(c.Services[0].OnFailure) },
	"services[].slow_start": func(c, _ *config.Config) string { return durNone(c.Services[0].SlowStart) },
	"services[].sorry_server": func(c, _ *config.Config) string {
		if c.Services[0].SorryServer != nil {
			return "set"
		}
		return "none"
	},
	"services[].tunnel.type":     func(c, _ *config.Config) string { return string(c.Services[1].Tunnel.Type) },
	"services[].tunnel.checksum": func(c, _ *config.Config) string { return string(c.Services[1].Tunnel.Checksum) },
	"services[].tunnel.port": func(c, _ *config.Config) string {
		if c.Services[1].Tunnel.Port == 0 {
			return "none"
		}
		return "set"
	},
	"services[].announce.min_healthy":           func(_, b *config.Config) string { return fmt.Sprint(b.Services[0].Announce.MinHealthy) },
	"services[].real_servers[].weight":          func(c, _ *config.Config) string { return fmt.Sprint(c.Services[0].RealServers[0].Weight) },
	"services[].real_servers[].upper_threshold": func(c, _ *config.Config) string { return fmt.Sprint(c.Services[0].RealServers[0].UpperThreshold) },
	"services[].real_servers[].lower_threshold": func(c, _ *config.Config) string { return fmt.Sprint(c.Services[0].RealServers[0].LowerThreshold) },

	"check.type":                 func(c, _ *config.Config) string { return string(c.Services[0].Check.Type) },
	"check.interval":             func(c, _ *config.Config) string { return c.Services[0].Check.Interval.String() },
	"check.fast_interval":        func(c, _ *config.Config) string { return durNone(c.Services[0].Check.FastInterval) },
	"check.timeout":              func(c, _ *config.Config) string { return c.Services[0].Check.Timeout.String() },
	"check.rise":                 func(c, _ *config.Config) string { return fmt.Sprint(c.Services[0].Check.Rise) },
	"check.fall":                 func(c, _ *config.Config) string { return fmt.Sprint(c.Services[0].Check.Fall) },
	"check.start_healthy":        func(c, _ *config.Config) string { return fmt.Sprint(c.Services[0].Check.StartHealthy) },
	"check.insecure_skip_verify": func(c, _ *config.Config) string { return fmt.Sprint(c.Services[0].Check.InsecureSkipVerify) },
	"check.dynamic_weight":       func(c, _ *config.Config) string { return fmt.Sprint(c.Services[0].Check.DynamicWeight) },
	"check.weight_from_exit":     func(c, _ *config.Config) string { return fmt.Sprint(c.Services[0].Check.WeightFromExit) },
	"check.send":                 func(c, _ *config.Config) string { return none(c.Services[0].Check.Send) },
	"check.expect":               func(c, _ *config.Config) string { return none(c.Services[0].Check.Expect) },
	"check.body":                 func(c, _ *config.Config) string { return none(c.Services[0].Check.Body) },
	"check.digest":               func(c, _ *config.Config) string { return none(c.Services[0].Check.Digest) },
	"check.answer":               func(c, _ *config.Config) string { return none(c.Services[0].Check.Answer) },
	"check.tls":                  func(c, _ *config.Config) string { return none(c.Services[0].Check.TLS) },
	"check.password_env":         func(c, _ *config.Config) string { return none(c.Services[0].Check.PasswordEnv) },
	"check.base_dn": func(c, _ *config.Config) string {
		if c.Services[0].Check.BaseDN == "" {
			return `""`
		}
		return c.Services[0].Check.BaseDN
	},

	"failover.priority":      func(c, _ *config.Config) string { return fmt.Sprint(c.Failover.Priority) },
	"failover.auto_failback": func(c, _ *config.Config) string { return fmt.Sprint(c.Failover.AutoFailback) },
	"failover.keepalive":     func(c, _ *config.Config) string { return c.Failover.Keepalive.String() },
	"failover.deadtime":      func(c, _ *config.Config) string { return c.Failover.Deadtime.String() },
	"failover.initdead":      func(c, _ *config.Config) string { return c.Failover.Initdead.String() },
	"failover.port":          func(c, _ *config.Config) string { return fmt.Sprint(c.Failover.Port) },
	"failover.hook_timeout":  func(c, _ *config.Config) string { return c.Failover.HookTimeout.String() },
	"failover.notify":        func(c, _ *config.Config) string { return none(c.Failover.Notify) },
	"failover.fence":         func(c, _ *config.Config) string { return none(c.Failover.Fence) },
	"failover.ping_nodes": func(c, _ *config.Config) string {
		if len(c.Failover.PingNodes) == 0 {
			return "none"
		}
		return "set"
	},
	"failover.sync, bgp.sync.sync_id": func(c, _ *config.Config) string { return fmt.Sprint(c.Failover.Sync.SyncID) },

	"bgp.hold_time":     func(_, b *config.Config) string { return b.BGP.HoldTime.String() },
	"bgp.vip_interface": func(_, b *config.Config) string { return b.BGP.VIPInterface },
	"bgp.drain_time":    func(_, b *config.Config) string { return b.BGP.DrainTime.String() },
	"bgp.sync": func(_, b *config.Config) string {
		if b.BGP.Sync == nil {
			return "none"
		}
		return "set"
	},
	"bgp.group": func(_, b *config.Config) string {
		if b.BGP.Group == nil {
			return "none"
		}
		return "set"
	},
	"bgp.peers[].bfd.interval":   func(_, b *config.Config) string { return b.BGP.Peers[0].BFD.Interval.String() },
	"bgp.peers[].bfd.multiplier": func(_, b *config.Config) string { return fmt.Sprint(b.BGP.Peers[0].BFD.Multiplier) },
}

// appliedElsewhere are defaults config leaves unset (the zero value) and
// another package applies; the test checks that config does leave them.
var appliedElsewhere = map[string]string{
	"check.path":            "package checks (http.go) requests / for an empty path",
	"check.expect_status":   "package checks (http.go) takes 200-299 for an empty list",
	"check.method":          "package checks (http.go) sends GET for an empty method",
	"check.query":           "package checks (sql.go) runs SELECT 1 for an empty query",
	"check.query_type":      "package checks (dns.go) asks A for an empty type",
	"check.rcode":           "package checks (dns.go) expects NOERROR for an empty rcode",
	"realserver.yaml.state": "package realserver uses DefaultState (its test ties it to DefaultRealserverState)",
}

// descriptive tells a default that names no value ("required", "the
// service's") from one config must produce.
func descriptive(d string) bool {
	for _, p := range []string{"required", "see ", "the ", "absent", "none", "defaults.check", "directord's", "host without", "{min_healthy: 1} with bgp"} {
		if strings.HasPrefix(d, p) {
			return true
		}
	}
	return false
}

// TestDefaultsAreConfigs: every default director.yaml(5) writes as a
// value is the value config gives a key left out.
func TestDefaultsAreConfigs(t *testing.T) {
	plain, err := config.Parse("plain.yaml", []byte(plainYAML))
	if err != nil {
		t.Fatal(err)
	}
	bgp, err := config.Parse("bgp.yaml", []byte(bgpYAML))
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	for _, p := range []*Page{DirectorYAML(), Realserver()} {
		for _, b := range p.Keys {
			for _, k := range b.Keys {
				id := b.Path + "." + k.Name
				used[id] = true
				want, _, _ := strings.Cut(k.Default, " (")
				if f, ok := defaults[id]; ok {
					if got := f(plain, bgp); got != want {
						t.Errorf("%s: %s: the page says default %q, config gives %q", p.Name, id, k.Default, got)
					}
					continue
				}
				if _, ok := appliedElsewhere[id]; ok || descriptive(k.Default) {
					continue
				}
				t.Errorf("%s: %s: default %q is a value, but the test has no way to read config's (defaults)", p.Name, id, k.Default)
			}
		}
	}
	for id := range defaults {
		if !used[id] {
			t.Errorf("defaults[%q]: no such key on the pages", id)
		}
	}
	// What bgp changes, which the page says in brackets.
	svc := bgp.Services[0]
	keys := DirectorYAML().Keys
	key := func(path, name string) Key {
		for _, b := range keys {
			for _, k := range b.Keys {
				if b.Path == path && k.Name == name {
					return k
				}
			}
		}
		t.Fatalf("no key %s.%s", path, name)
		return Key{}
	}
	if d := key("services[]", "scheduler").Default; !strings.Contains(d, svc.Scheduler+" with bgp") {
		t.Errorf("services[].scheduler: with bgp, config gives %s; the page says %q", svc.Scheduler, d)
	}
	for _, f := range svc.SchedulerFlags {
		if d := key("services[]", "scheduler_flags").Default; !strings.Contains(d, f) {
			t.Errorf("services[].scheduler_flags: with bgp, config gives %q; the page says %q", svc.SchedulerFlags, d)
		}
	}
	if d := key("services[]", "announce").Default; d != fmt.Sprintf("{min_healthy: %d} with bgp", svc.Announce.MinHealthy) || plain.Services[0].Announce.MinHealthy != 0 {
		t.Errorf("services[].announce: config gives %d with bgp, %d without; the page says %q", svc.Announce.MinHealthy, plain.Services[0].Announce.MinHealthy, d)
	}
	// The defaults applied elsewhere are indeed not config's.
	c := plain.Services[0].Check
	if c.Path != "" || len(c.ExpectStatus) != 0 || c.Method != "" || c.Query != "" || c.QueryType != "" || c.Rcode != "" {
		t.Errorf("config now sets a check default itself (%+v): test it in defaults, not appliedElsewhere", c)
	}
}
