// Command gen writes director's manual pages (package manual) as roff
// files: `make man` runs it as `go run ./manual/gen -out build/man`; and
// directorctl's bash completion: `make completion` runs it with -out ""
// -bash deploy/completion/directorctl.bash.
// It is a build tool, not part of any installed binary.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/directorlb/director/manual"
)

func main() {
	out := flag.String("out", "build/man", "directory the pages are written to")
	version := flag.String("version", "devel", "the version in the pages' footer")
	date := flag.String("date", "", "the date in the pages' footer, YYYY-MM-DD (the source's, for a reproducible build)")
	bash := flag.String("bash", "", "also write directorctl's bash completion to this file")
	tree := flag.Bool("tree", false, "write the pages as a man tree (OUT/man5, OUT/man8), for MANPATH")
	flag.Parse()
	err := write(*out, *tree, manual.RoffOptions{Version: *version, Date: *date})
	if err == nil && *bash != "" {
		err = os.WriteFile(*bash, []byte(manual.BashCompletion(manual.Directorctl())), 0o644)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "manual/gen: %v\n", err)
		os.Exit(1)
	}
}

func write(out string, tree bool, o manual.RoffOptions) error {
	if out == "" {
		return nil
	}
	for _, p := range manual.Pages() {
		dir := out
		if tree {
			dir = filepath.Join(out, fmt.Sprintf("man%d", p.Section))
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, p.FileName()), []byte(p.Roff(o)), 0o644); err != nil {
			return err
		}
	}
	return nil
}
