package config_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/directorlb/director/config"
)

// Inputs that are valid but unusual, each with the services it should give.
func TestParseEdgeCases(t *testing.T) {
	tests := []struct {
		name, in string
		services int
	}{
		{"explicit document", "---\nservices: []\nallow_no_services: true\n...\n", 0},
		{"trailing empty document", "services: []\nallow_no_services: true\n---\n", 0},
		{"empty values are unset", "control:\nipvs:\nfailover:\nservices:\nallow_no_services: true\n", 0},
		{"byte order mark", "\uFEFFservices: [{name: a, vip: 192.0.2.1, port: 80}]\n", 1},
		{"anchors without aliases", "services:\n  - &web {name: a, vip: 192.0.2.1, port: 80}\n", 1},
		{"hex fwmark", "services: [{name: a, fwmark: 0x2a}]\n", 1},
		{"leading zero is decimal", "services: [{name: a, vip: 192.0.2.1, port: 0080}]\n", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := config.Parse("x.yaml", []byte(tt.in))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if len(c.Services) != tt.services {
				t.Errorf("got %d services, want %d", len(c.Services), tt.services)
			}
		})
	}
	c, _ := config.Parse("x.yaml", []byte("services: [{name: a, vip: 192.0.2.1, port: 0080}]"))
	if c.Services[0].Port != 80 {
		t.Errorf("port 0080 = %d, want 80", c.Services[0].Port)
	}
	c, _ = config.Parse("x.yaml", []byte("metrics: {listen: }\nallow_no_services: true"))
	if c.Metrics.Listen != "" {
		t.Errorf("an empty listen = %q, want disabled", c.Metrics.Listen)
	}
}

// A file with no service would make directord remove every service it
// owns: refused, wherever the emptiness comes from, unless asked for.
func TestNoServicesRefused(t *testing.T) {
	const msg = "services: no service configured: directord would remove every service it owns from the kernel; " +
		"if that is what you want, set `allow_no_services: true`"
	for _, tt := range []struct{ name, in, want string }{
		{"empty", "", "x.yaml:1:1: " + msg},
		{"comments only", "# nothing yet\n", "x.yaml:1:1: " + msg},
		{"null document", "~\n", "x.yaml:1:1: " + msg},
		{"truncated", "node: lb1\nservices:\n", "x.yaml:2:1: " + msg},
		{"empty list", "node: lb1\nservices: []\n", "x.yaml:2:1: " + msg},
		{"no key", "node: lb1\n", "x.yaml:1:1: " + msg},
		{"allowed but false", "services: []\nallow_no_services: false\n", "x.yaml:1:1: " + msg},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Parse("x.yaml", []byte(tt.in))
			if err == nil || err.Error() != tt.want {
				t.Fatalf("Parse: %v\nwant %s", err, tt.want)
			}
		})
	}
	c, err := config.Parse("x.yaml", []byte("services: []\nallow_no_services: true\n"))
	if err != nil || len(c.Services) != 0 || !c.AllowNoServices {
		t.Fatalf("allowed: %v %+v", err, c)
	}
}

func TestParseLimits(t *testing.T) {
	tests := []struct {
		name  string
		in    []byte
		count int    // problems reported
		last  string // the last one
	}{
		{"too large", bytes.Repeat([]byte("#"), config.MaxSize+1), 1,
			"x.yaml:1:1: document: the file is larger than 8 MiB; this is not a director configuration"},
		{"too many problems", []byte(strings.Repeat("x: 1\n", 1500)), 1001,
			"x.yaml:1500:1: document: too many problems; 500 more not shown"},
		{"too deep", []byte("a: " + strings.Repeat("[", 10001)), 1,
			"x.yaml:1:1: yaml: exceeded max depth of 10000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Parse("x.yaml", tt.in)
			var es config.Errors
			if !errors.As(err, &es) {
				t.Fatalf("Parse: %v, want Errors", err)
			}
			if len(es) != tt.count || es[len(es)-1].Error() != tt.last {
				t.Errorf("got %d problems, the last %q; want %d, the last %q", len(es), es[len(es)-1], tt.count, tt.last)
			}
		})
	}
}
