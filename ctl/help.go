package ctl

import (
	"errors"
	"flag"
	"strings"
)

// helpError is -h or --help given to a command: Main prints the
// command's usage and flags on stdout and exits 0, as `ipvsadm -h` does.
type helpError struct {
	flags string
	text  string // the whole help, for a command that writes its own
}

func (helpError) Error() string { return "help requested" }

// flagError turns an error of fs.Parse into the error Main reports:
// help for -h, a usage error otherwise.
func flagError(fs *flag.FlagSet, err error) error {
	if !errors.Is(err, flag.ErrHelp) {
		return usagef("%v", err)
	}
	var b strings.Builder
	fs.SetOutput(&b)
	fs.PrintDefaults()
	fs.SetOutput(nil)
	if b.Len() == 0 {
		return helpError{}
	}
	return helpError{flags: "flags:\n" + b.String()}
}

// wantsHelp tells whether args ask for help before any "--".
func wantsHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--help":
			return true
		}
	}
	return false
}

// commandUsage is the command's part of directorctl's usage: its
// lines, so that `directorctl CMD -h` and `directorctl help` cannot
// disagree.
func commandUsage(name string) string {
	var b strings.Builder
	in := false
	for _, line := range strings.Split(usage, "\n") {
		switch {
		case strings.HasPrefix(line, "  "+name+" ") || line == "  "+name:
			in = true
			line = "usage: directorctl " + strings.TrimPrefix(line, "  ")
		case in && strings.HasPrefix(line, "    "):
		default:
			in = false
		}
		if in {
			b.WriteString(line + "\n")
		}
	}
	if b.Len() == 0 {
		return "usage: directorctl " + name + "\n"
	}
	return b.String()
}

// parseConfigPath parses check-config's arguments: the config file may
// be given as -config PATH or as the one positional argument, as
// `keepalived -t -f PATH` and `ldirectord FILE` users type it.
func parseConfigPath(fs *flag.FlagSet, args []string, path *string) error {
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return nil
	}
	if len(pos) > 1 {
		return usagef("one config file, not %d: %s", len(pos), strings.Join(pos, " "))
	}
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == "config" })
	if set {
		return usagef("the config file twice: -config %s and %s", *path, pos[0])
	}
	*path = pos[0]
	return nil
}
