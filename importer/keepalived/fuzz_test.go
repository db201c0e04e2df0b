package keepalived

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/directorlb/director/config"
)

// FuzzImport imports arbitrary bytes as a keepalived file: no panic, no
// hang, and YAML (when there is any) that the director's parser takes.
func FuzzImport(f *testing.F) {
	f.Add([]byte(vsHead + " lb_kind DR\n real_server 10.0.0.1 80 {\n  HTTP_GET {\n   url {\n    path /\n   }\n  }\n }\n}\n"))
	f.Add([]byte("$R=\\\nreal_server 10.0.0.$H 80 {\\\n}\nvirtual_server 192.0.2.1 80 {\n~SEQ(H,1,3) $R\n}\n"))
	f.Add([]byte("vrrp_instance V {\n interface eth0\n virtual_ipaddress {\n 192.0.2.1/24\n }\n}\n@x include k.conf\n"))
	f.Add([]byte("virtual_server_group g {\n 192.0.2.1-9 80\n fwmark 1\n}\nvirtual_server group g {\n}\n"))
	if ents, err := os.ReadDir(corpusDir); err == nil {
		for _, e := range ents {
			if b, err := os.ReadFile(filepath.Join(corpusDir, e.Name())); err == nil {
				f.Add(b)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "k.conf")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		res := Import(p, Options{ID: "x"})
		if res.YAML != nil {
			if _, err := config.Parse("out.yaml", res.YAML); err != nil {
				t.Fatalf("YAML does not parse: %v\n%s", err, res.YAML)
			}
		}
	})
}
