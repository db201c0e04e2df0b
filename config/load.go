package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Limits on what one file may hold. Real files are kilobytes: a megabyte
// holds some 1,800 services of ten real servers each, with a check, and
// the reference farm of 10,000 services of ten (the benchmarks') is
// 5.4 MB. The limits keep a wrong path (a log, a disk image) or a hostile
// file from costing gigabytes before it is refused: the YAML tree costs
// about 40 bytes of memory per byte of a list of empty services and 120
// per byte of the densest input ("[0,0,0...]"), so MaxSize bounds a parse
// to about 1 GB and a few seconds at worst; a decoded service costs
// kilobytes, so MaxServices is checked before any is decoded.
const (
	MaxSize        = 8 << 20 // bytes
	MaxServices    = 10000
	MaxRealServers = 100000 // in all services together
)

var (
	topKeys     = []string{"node", "control", "metrics", "ipvs", "defaults", "services", "failover", "bgp", "state_dir", "allow_no_services", "include"}
	controlKeys = []string{"socket"}
	metricsKeys = []string{"listen"}
	ipvsKeys    = []string{"timeouts", "cleanup_on_exit", "reconcile_interval"}
	timeoutKeys = []string{"tcp", "tcp_fin", "udp"}
	defaultKeys = []string{"check"}
)

const nodeWant = "this director's name: 1 to 64 bytes of printable characters, no spaces"

// nodeProblem reports a node name the pair cannot use: the heartbeat
// carries at most MaxNodeName bytes, the VIP guard's
// farewell separates fields by spaces, and the name is printed in logs,
// metrics labels and status, where a control character would be forged
// output.
func nodeProblem(s string) bool {
	if len(s) == 0 || len(s) > MaxNodeName || !utf8.ValidString(s) {
		return true
	}
	for _, r := range s {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return true
		}
	}
	return false
}

// MaxNodeName is the longest node name: heartbeat.MaxNodeName, which the
// heartbeat carries (config does not import heartbeat; a test ties them).
const MaxNodeName = 64

// maxSocketPath is the longest unix socket path: sun_path is 108 bytes
// with the terminating NUL.
const maxSocketPath = 107

// Load reads, defaults and validates the configuration at path. An invalid
// file yields Errors; a file that cannot be read, the os error.
func Load(path string) (*Config, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	return parse(path, data, true)
}

// readFile reads a configuration file, but no more than one byte past
// MaxSize: enough for the parser to refuse it. Only a regular file is
// read: a FIFO or a device at the path would block the read (check-config
// as ExecStartPre, a reload) until someone writes, and is never a
// configuration. O_NONBLOCK keeps the open itself from waiting for a
// FIFO's writer; it does nothing to a regular file.
func readFile(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("reading config: %s: not a regular file (mode %s)", path, fi.Mode())
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return data, nil
}

// Parse is Load for a file already read; path is used only in messages.
// It reads nothing from disk, so a file with include is refused: only
// Load reads included files. It returns a Config and no error, or nil
// and Errors.
func Parse(path string, data []byte) (*Config, error) {
	return parse(path, data, false)
}

// parse is Parse, reading the files include names if includes is set.
func parse(path string, data []byte, includes bool) (*Config, error) {
	d := &decoder{file: path, size: len(data), readIncludes: includes}
	root, ok := d.document(data, "a director configuration")
	if !ok {
		return nil, d.result()
	}
	c := d.config(root)
	if err := d.result(); err != nil {
		return nil, err
	}
	d.vipCoverage(c)
	c.where = d.where
	c.Warnings = d.warns.sorted()
	return c, nil
}

// document is data's YAML tree (nil for an empty file), or false after
// reporting why there is none; what names the kind of file expected.
func (d *decoder) document(data []byte, what string) (*yaml.Node, bool) {
	if len(data) > MaxSize {
		d.errorf(nil, "document", "the file is larger than %d MiB; this is not %s", MaxSize>>20, what)
		return nil, false
	}
	root, err := parseDocument(data)
	if err != nil {
		d.syntaxError(err, data)
		return nil, false
	}
	return root, true
}

// parseYAML reads the one document of data into a node tree; nil for an
// empty file. yaml.v3 has panics of its own on some inputs (its "internal
// error" paths), so they are caught here: a reload must fail, not crash.
func parseYAML(data []byte) (doc *yaml.Node, err error) {
	defer func() {
		if r := recover(); r != nil {
			doc, err = nil, fmt.Errorf("yaml: the YAML parser failed on this file (%v)", r)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var first yaml.Node
	switch err := dec.Decode(&first); {
	case errors.Is(err, io.EOF):
		return nil, nil
	case err != nil:
		return nil, err
	}
	for {
		var next yaml.Node
		switch err := dec.Decode(&next); {
		case errors.Is(err, io.EOF):
			return &first, nil
		case err != nil:
			return nil, err
		}
		// A trailing "---" with nothing after it is harmless.
		if len(next.Content) > 0 && !isNull(next.Content[0]) {
			return nil, &extraDocument{line: next.Line}
		}
	}
}

// extraDocument is a second YAML document: directord reads one, and
// ignoring the rest would silently drop configuration.
type extraDocument struct{ line int }

func (e *extraDocument) Error() string {
	return fmt.Sprintf("yaml: line %d: a second document", e.line)
}

// config decodes the top level, in the order the parts depend on each other.
func (d *decoder) config(root *yaml.Node) *Config {
	c := &Config{
		Path:     d.file,
		Control:  Control{Socket: DefaultSocket},
		Metrics:  Metrics{Listen: DefaultMetricsListen},
		IPVS:     IPVS{ReconcileInterval: DefaultReconcileInterval},
		Defaults: Defaults{Check: cloneCheck(DefaultCheck)},
		StateDir: DefaultStateDir,
	}
	n := root
	if n != nil && n.Kind == yaml.DocumentNode {
		n = nil
		if len(root.Content) > 0 {
			n = root.Content[0]
		}
	}
	var f *fields
	if isNull(n) {
		// An empty file is a director with no services: valid, if useless.
		f = &fields{}
	} else if f = d.mapping(n, "", "keys such as node, services and failover", topKeys); f == nil {
		return nil
	}

	if v := f.value("node"); v != nil {
		if s, ok := d.text(v, "node", nodeWant); ok {
			if nodeProblem(s) {
				d.errorf(v, "node", "must be %s, got %s", nodeWant, describe(v))
			} else {
				c.Node = s
			}
		}
	} else if host, err := os.Hostname(); err == nil && host != "" && !nodeProblem(host) {
		c.Node = host
	} else if err == nil && host != "" {
		d.errorf(n, "node", "missing, and the host name %s cannot be one (%s); set node", strconv.Quote(clip(host)), nodeWant)
	} else {
		d.errorf(n, "node", "missing, and the host name is unknown (%v); set node", err)
	}
	if v := f.value("control"); v != nil {
		d.control(v, &c.Control)
	}
	if v := f.value("metrics"); v != nil {
		if m := d.mapping(v, "metrics", "the metrics endpoint: listen", metricsKeys); m != nil {
			if e, ok := m.get("listen"); ok {
				l := e.val
				// Only here is an empty value meaningful: "" or nothing disables.
				c.Metrics.Listen = ""
				if !isNull(l) {
					c.Metrics.Listen, _ = d.listen(l, "metrics.listen")
				}
			}
		}
	}
	if v := f.value("ipvs"); v != nil {
		d.ipvs(v, &c.IPVS)
	}
	if v := f.value("defaults"); v != nil {
		if m := d.mapping(v, "defaults", "what every service inherits: check", defaultKeys); m != nil {
			if cv := m.value("check"); cv != nil {
				c.Defaults.Check = d.check(cv, "defaults.check", DefaultCheck)
			}
		}
	}
	if v := f.value("bgp"); v != nil {
		// Before the services: bgp mode changes their defaults and rules.
		c.BGP, d.bgpMode = d.bgp(v), true
		d.mark("bgp", f.key("bgp"))
	}
	if v := f.value("services"); v != nil {
		c.Services = d.services(v, c.Defaults.Check)
	}
	if v := f.value("include"); v != nil {
		// After the main file's own: included services join in order.
		c.Services = append(c.Services, d.includes(v, c.Defaults.Check)...)
	}
	if v := f.value("allow_no_services"); v != nil {
		c.AllowNoServices, _ = d.boolean(v, "allow_no_services")
	}
	if v := f.value("state_dir"); v != nil {
		if s, ok := d.text(v, "state_dir", "the directory for state kept across reboots"); ok {
			if !filepath.IsAbs(s) {
				d.errorf(v, "state_dir", "must be an absolute path, got %q", s)
			} else {
				c.StateDir = filepath.Clean(s)
			}
		}
	}
	if v := f.value("failover"); v != nil {
		c.Failover = d.failover(v)
	}
	d.bgpConflicts(f, c)
	if len(c.Services) == 0 && !c.AllowNoServices && len(d.errs) == 0 {
		// Said only of a file otherwise valid. A truncated copy or an
		// emptied list would make directord remove every service it
		// owns: an outage from one bad file.
		at := n
		if k := f.key("services"); k != nil {
			at = k
		}
		d.errorf(at, "services", "no service configured: directord would remove every service it owns from the kernel; "+
			"if that is what you want, set `allow_no_services: true`")
	}
	return c
}

func (d *decoder) control(n *yaml.Node, c *Control) {
	f := d.mapping(n, "control", "the control socket: socket", controlKeys)
	if f == nil {
		return
	}
	if v := f.value("socket"); v != nil {
		s, ok := d.text(v, "control.socket", "the path of a unix socket")
		if ok && len(s) > maxSocketPath {
			d.errorf(v, "control.socket", "must be at most %d bytes (a unix socket path), got %d", maxSocketPath, len(s))
			return
		}
		c.Socket = s
		d.mark("control.socket", v)
	}
}

func (d *decoder) ipvs(n *yaml.Node, c *IPVS) {
	f := d.mapping(n, "ipvs", "kernel table settings", ipvsKeys)
	if f == nil {
		return
	}
	if v := f.value("timeouts"); v != nil {
		c.Timeouts = &Timeouts{}
		if t := d.mapping(v, "ipvs.timeouts", "tcp, tcp_fin and udp", timeoutKeys); t != nil {
			for _, to := range []struct {
				name string
				dst  *time.Duration
			}{{"tcp", &c.Timeouts.TCP}, {"tcp_fin", &c.Timeouts.TCPFin}, {"udp", &c.Timeouts.UDP}} {
				if tv := t.value(to.name); tv != nil {
					*to.dst, _ = d.seconds(tv, t.sub(to.name))
				}
			}
		}
	}
	if v := f.value("cleanup_on_exit"); v != nil {
		c.CleanupOnExit, _ = d.boolean(v, "ipvs.cleanup_on_exit")
	}
	if v := f.value("reconcile_interval"); v != nil {
		if iv, ok := d.interval(v, "ipvs.reconcile_interval"); ok {
			c.ReconcileInterval = iv
		}
	}
}

// Service is the service called name, or nil.
func (c *Config) Service(name string) *Service {
	for i := range c.Services {
		if c.Services[i].Name == name {
			return &c.Services[i]
		}
	}
	return nil
}
