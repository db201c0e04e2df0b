package ctl

import (
	"errors"
	"flag"
	"strings"

	"github.com/directorlb/director/manual"
)

// helpError is -h or --help given to a command: Main prints the
// command's help (package manual's) on stdout and exits 0, as `ipvsadm -h`
// does. fs is the command's flag set, for the test that holds the manual
// to the flags the command really has (nil for list, whose options are
// listFlags).
type helpError struct {
	fs *flag.FlagSet
}

func (helpError) Error() string { return "help requested" }

// flagError turns an error of fs.Parse into the error Main reports:
// help for -h, a usage error otherwise.
func flagError(fs *flag.FlagSet, err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return helpError{fs: fs}
	}
	return usagef("%v", err)
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

// usage is directorctl's help: `directorctl help`.
func usage() string { return manual.Directorctl().Usage() }

// commandUsage is `directorctl CMD -h`: the command's part of the same
// manual that directorctl(8) is rendered from, so that the two cannot
// disagree.
func commandUsage(name string) string { return manual.Directorctl().CommandHelp(name) }

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
