package ldirectord

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/directorlb/director/config"
	"github.com/directorlb/director/importer"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from the corpus")

// corpusDir holds real ldirectord files written by other people; it lives
// beside the clone and is never copied into the repository.
const corpusDir = "../../../shared/import-corpus/ldirectord"

func corpus(t *testing.T) []string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(corpusDir, "*.cf"))
	if len(files) == 0 {
		t.Skipf("no ldirectord corpus at %s (it sits beside the clone: ../shared/import-corpus)", corpusDir)
	}
	return files
}

// report is the report as directorctl prints it, with the corpus path
// made relative so the goldens do not depend on where the tree is.
func report(r importer.Result, path string) string {
	var b strings.Builder
	for _, f := range r.Findings {
		b.WriteString(strings.ReplaceAll(f.String(), path, filepath.Base(path)) + "\n")
	}
	return b.String()
}

func TestCorpusGolden(t *testing.T) {
	for _, path := range corpus(t) {
		name := strings.TrimSuffix(filepath.Base(path), ".cf")
		t.Run(name, func(t *testing.T) {
			r := Import(path)
			if r.YAML != nil {
				if _, err := config.Parse(path, r.YAML); err != nil {
					t.Fatalf("the imported YAML does not parse:\n%v\n%s", err, r.YAML)
				}
			}
			yml := strings.ReplaceAll(string(r.YAML), path, filepath.Base(path))
			rep := report(r, path)
			for _, g := range []struct{ ext, got string }{{".report", rep}, {".yaml", yml}} {
				gp := filepath.Join("testdata", "golden", name+g.ext)
				if *update {
					if err := os.WriteFile(gp, []byte(g.got), 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				want, err := os.ReadFile(gp)
				if err != nil {
					t.Fatalf("%v (run go test -update)", err)
				}
				if !bytes.Equal(want, []byte(g.got)) {
					t.Errorf("%s differs from the golden (go test -update, then read the diff):\n%s", gp, g.got)
				}
			}
		})
	}
}
