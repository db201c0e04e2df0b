package ctl

import (
	"context"
	"fmt"

	"github.com/directorlb/director/importer"
	"github.com/directorlb/director/importer/keepalived"
	"github.com/directorlb/director/importer/ldirectord"
)

// runImport is `directorctl import keepalived|ldirectord FILE`: director
// YAML on stdout, the report on stderr (FILE:LINE: keyword: what
// happened), and the exit status the result means: 0 all carried over,
// 1 printed but read the report, 2 nothing usable.
func runImport(_ context.Context, env *Env, args []string) error {
	if len(args) == 0 {
		return usagef("which format? import keepalived FILE [-root DIR] [-id NAME] | import ldirectord FILE")
	}
	format, rest := args[0], args[1:]
	fs := newFlags(env, "import "+format)
	var root, id string
	if format == "keepalived" {
		fs.StringVar(&root, "root", "", "resolve the absolute paths of include under this directory (a copied /etc/keepalived tree)")
		fs.StringVar(&id, "id", "", "the name @id conditional lines are decided by (default: this host name's first label, as keepalived)")
	}
	files, err := parseInterleaved(fs, rest)
	if err != nil {
		return err
	}
	if len(files) != 1 {
		return usagef("import %s takes one FILE, got %d", format, len(files))
	}
	var r importer.Result
	switch format {
	case "keepalived":
		r = keepalived.Import(files[0], keepalived.Options{Root: root, ID: id})
	case "ldirectord":
		r = ldirectord.Import(files[0])
	default:
		return usagef("unknown format %q: keepalived or ldirectord", format)
	}
	if r.YAML != nil {
		if _, err := env.Stdout.Write(r.YAML); err != nil {
			return err
		}
	}
	for _, f := range r.Findings {
		fmt.Fprintln(env.Stderr, f)
	}
	if code := r.Exit(); code != importer.ExitComplete {
		return exitError(code)
	}
	return nil
}
