package config_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/directorlb/director/config"
)

func TestServicesDigest(t *testing.T) {
	load := func(body string) [16]byte {
		t.Helper()
		p := filepath.Join(t.TempDir(), "director.yaml")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := config.Load(p)
		if err != nil {
			t.Fatal(err)
		}
		return c.ServicesDigest()
	}
	base := load("node: lb1\nservices:\n  - name: web\n    vip: 192.0.2.10\n    port: 80\n    real_servers:\n      - {address: 10.0.1.11, weight: 5}\n")
	// Another node name, comments, layout and key order: the same services.
	same := load("# the pair's other half\nnode: lb2\n\nservices:\n  - port: 80\n    name: web\n    vip: 192.0.2.10\n    real_servers: [{weight: 5, address: 10.0.1.11}]\n")
	other := load("node: lb1\nservices:\n  - name: web\n    vip: 192.0.2.10\n    port: 80\n    real_servers:\n      - {address: 10.0.1.11, weight: 6}\n")
	if base != same {
		t.Error("configs that serve the same differ in digest")
	}
	if base == other {
		t.Error("configs with different weights share a digest")
	}
}
