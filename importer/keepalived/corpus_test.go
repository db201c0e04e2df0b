package keepalived

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

var update = flag.Bool("update", false, "rewrite testdata/golden from the importer's output")

// corpusDir holds real keepalived files written by other people; CI has it
// beside the clone. It is read in place, never copied here.
const corpusDir = "../../../shared/import-corpus/keepalived"

// corpusEntries is every corpus entry: a file, or an include tree's main
// file with the tree as root.
func corpusEntries(t *testing.T) map[string][2]string {
	ents, err := os.ReadDir(corpusDir)
	if err != nil {
		t.Skipf("import corpus not found at %s (it sits beside the clone in CI): %v", corpusDir, err)
	}
	out := map[string][2]string{}
	for _, e := range ents {
		p := filepath.Join(corpusDir, e.Name())
		if e.IsDir() {
			out[e.Name()] = [2]string{filepath.Join(p, "keepalived.conf"), p}
		} else {
			out[strings.TrimSuffix(e.Name(), ".conf")] = [2]string{p, ""}
		}
	}
	if len(out) == 0 {
		t.Skipf("import corpus at %s is empty", corpusDir)
	}
	return out
}

// reportText is the report as directorctl prints it, with the corpus
// directory cut so that the goldens do not depend on where it is.
func reportText(res importer.Result) string {
	var b strings.Builder
	for _, f := range res.Findings {
		b.WriteString(f.String())
		b.WriteByte('\n')
	}
	return strings.ReplaceAll(b.String(), corpusDir+"/", "")
}

// TestCorpus imports every corpus file: no panic, YAML that config.Parse
// takes, and the report and YAML as in testdata/golden (the spec: review
// them by reading).
func TestCorpus(t *testing.T) {
	exits := map[int]int{}
	findings := 0
	for name, ent := range corpusEntries(t) {
		t.Run(name, func(t *testing.T) {
			res := Import(ent[0], Options{Root: ent[1], ID: "low"})
			exits[res.Exit()]++
			findings += len(res.Findings)
			if res.YAML != nil {
				if _, err := config.Parse(name+".yaml", res.YAML); err != nil {
					t.Fatalf("the YAML made does not parse: %v\n%s", err, res.YAML)
				}
			}
			yaml := strings.ReplaceAll(string(res.YAML), corpusDir+"/", "")
			golden(t, filepath.Join("testdata", "golden", name+".report"), reportText(res))
			golden(t, filepath.Join("testdata", "golden", name+".yaml"), yaml)
		})
	}
	t.Logf("corpus: exit 0: %d files, exit 1: %d, exit 2: %d; %d findings", exits[0], exits[1], exits[2], findings)
}

func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if !bytes.Equal(want, []byte(got)) {
		t.Errorf("%s differs (go test -update rewrites it; review the diff):\n--- want\n%s\n--- got\n%s", path, want, got)
	}
}
