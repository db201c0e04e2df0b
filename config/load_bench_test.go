package config

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// scaleYAML is the reference farm as the keepalived side-by-side benchmark
// writes it (e2e's directorScaleConfig): services of ten real servers in
// flow style, every service with the same check.
func scaleYAML(services int, check string) []byte {
	var b strings.Builder
	b.WriteString("node: bench\nstate_dir: /var/lib/directord\ncontrol:\n  socket: /run/directord.sock\nmetrics:\n  listen: \"\"\nservices:\n")
	for i := 0; i < services; i++ {
		vip := netip.AddrFrom4([4]byte{10, 100, byte(i / 256), byte(i % 256)})
		fmt.Fprintf(&b, "  - name: s%d\n    vip: %s\n    port: 80\n    scheduler: wlc\n    check: %s\n    real_servers:\n", i, vip, check)
		for j := 0; j < 10; j++ {
			fmt.Fprintf(&b, "      - {address: %s, weight: 1}\n", netip.AddrFrom4([4]byte{10, 200, 0, byte(j + 1)}))
		}
	}
	return []byte(b.String())
}

// BenchmarkLoad100k is a start or reload reading 10,000 services of ten
// real servers, the side-by-side benchmark's farm.
func BenchmarkLoad100k(b *testing.B) {
	path := filepath.Join(b.TempDir(), "director.yaml")
	if err := os.WriteFile(path, scaleYAML(MaxServices, "{type: none}"), 0o644); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		c, err := Load(path)
		if err != nil {
			b.Fatal(err)
		}
		if len(c.Services) != MaxServices {
			b.Fatalf("%d services", len(c.Services))
		}
	}
}

// BenchmarkYAML100k is the YAML parse alone of BenchmarkLoad100k's file:
// the floor of what Load can cost.
func BenchmarkYAML100k(b *testing.B) {
	data := scaleYAML(MaxServices, "{type: none}")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseYAML(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkYAMLSplit100k is the same parse as Load does it: the services
// list in pieces, one per core.
func BenchmarkYAMLSplit100k(b *testing.B) {
	data := scaleYAML(MaxServices, "{type: none}")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseDocument(data); err != nil {
			b.Fatal(err)
		}
	}
}
