package ctl

import (
	"context"
	"errors"
	"flag"
	"io"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/directorlb/director/manual"
)

// directorctl's help and directorctl(8) are both package manual's
// Directorctl page. These tests hold that page to the commands and flags
// directorctl really has, so that a flag added to a command without its
// documentation (or documentation of a flag that is gone) fails here.

// TestManualHasEveryCommand: the page's commands are commands()'s.
func TestManualHasEveryCommand(t *testing.T) {
	var want, got []string
	for _, c := range commands() {
		want = append(want, c.name)
	}
	for _, c := range manual.Directorctl().Commands() {
		got = append(got, c.Name)
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("manual.Directorctl's commands %q, directorctl's %q", got, want)
	}
}

// TestHelpIsTheManual: what `directorctl help` and `directorctl CMD -h`
// print is the page's text, whichever way help was asked for.
func TestHelpIsTheManual(t *testing.T) {
	page := manual.Directorctl()
	if stdout, _, code := runCtl(t, "help"); code != 0 || stdout != page.Usage() {
		t.Errorf("directorctl help: exit %d, not the manual's usage:\n%s", code, stdout)
	}
	for _, c := range commands() {
		args := [][]string{{c.name, "-h"}}
		switch c.name {
		case "import":
			args = [][]string{{"import", "-h"}, {"import", "keepalived", "-h"}, {"import", "ldirectord", "x.cf", "--help"}}
		case "drain", "enable":
			args = append(args, []string{c.name, "web", "-help"})
		}
		for _, a := range args {
			stdout, stderr, code := runCtl(t, a...)
			if want := page.CommandHelp(c.name); code != 0 || stderr != "" || stdout != want {
				t.Errorf("%q: exit %d, stderr %q, stdout\n%s\nwant the manual's\n%s", a, code, stderr, stdout, want)
			}
		}
	}
}

// TestFlagsAreTheManual: each command's flag set has exactly the page's
// flags, with the same defaults and the same help text.
func TestFlagsAreTheManual(t *testing.T) {
	page := manual.Directorctl()
	env := &Env{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: io.Discard}
	for _, c := range commands() {
		if c.name == "list" {
			continue // not the flag package: TestListFlagsAreTheManual
		}
		argsets := [][]string{{"-h"}}
		if c.name == "import" {
			argsets = [][]string{{"keepalived", "-h"}, {"ldirectord", "-h"}}
		}
		got := map[string]manual.Flag{}
		for _, args := range argsets {
			var h helpError
			if err := c.run(context.Background(), env, args); !errors.As(err, &h) || h.fs == nil {
				t.Fatalf("%s %q: %v, want help with its flag set", c.name, args, err)
			}
			h.fs.VisitAll(func(f *flag.Flag) {
				got[f.Name] = manual.Flag{Name: f.Name, Default: f.DefValue, Help: f.Usage}
			})
		}
		want := map[string]manual.Flag{}
		for _, f := range page.Command(c.name).Flags {
			want[f.Name] = manual.Flag{Name: f.Name, Default: f.Default, Help: f.Help}
		}
		if !maps.Equal(got, want) {
			t.Errorf("directorctl %s: the flag set and manual.Directorctl differ:\nflag set %+v\nmanual   %+v", c.name, got, want)
		}
	}
}

// TestListFlagsAreTheManual: list's own options (ipvsadm's short letters
// and long names) are the page's.
func TestListFlagsAreTheManual(t *testing.T) {
	var got, want []manual.Flag
	for _, f := range listFlags() {
		if f.help == "" {
			continue // a second spelling (-l for -L), not an option of its own
		}
		got = append(got, manual.Flag{Name: f.long, Short: f.short, Help: f.help})
	}
	for _, f := range manual.Directorctl().Command("list").Flags {
		want = append(want, manual.Flag{Name: f.Name, Short: f.Short, Help: f.Help})
	}
	if !slices.Equal(got, want) {
		t.Errorf("list's options and manual.Directorctl differ:\nlistFlags %+v\nmanual    %+v", got, want)
	}
}
