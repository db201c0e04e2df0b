package ldirectord

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/directorlb/director/config"
)

// FuzzImport feeds arbitrary files to Import: it must not panic, and
// whatever YAML it prints must pass director's parser.
func FuzzImport(f *testing.F) {
	f.Add([]byte("virtual=192.0.2.10:80\n\treal=10.0.0.1:80 masq 2\n\tservice=http\n\trequest=\"/x\"\n\treceive=\"ok\"\n"))
	f.Add([]byte("quiescent=yes\nvirtual=42\n    real=10.0.0.1 gate\n    checktype=external\n    checkcommand=\"/bin/c a\"\n"))
	f.Add([]byte("virtual6=[2001:db8::1]:53\n  real6=[2001:db8::2]:53 ipip\n\n    real=10.0.0.1->10.0.0.3 gate\n"))
	f.Add([]byte("[vip]\nx=1\n"))
	// Values YAML would misread if they were not quoted.
	f.Add([]byte("virtual=192.0.2.10:80\n\treal=10.0.0.1 gate\n\trequest=\"a: b\"\n\treceive=\"{x}: [y] 'z' \\\\ \xff\"\n\tvirtualhost=\"- *a &b !c |\"\n"))
	files, _ := filepath.Glob(filepath.Join(corpusDir, "0[1-6]*.cf"))
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, "ldirectord.cf")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		r := Import(p)
		if r.YAML == nil {
			return
		}
		if _, err := config.Parse(p, r.YAML); err != nil {
			t.Fatalf("printed YAML does not parse: %v\n%s", err, r.YAML)
		}
	})
}
