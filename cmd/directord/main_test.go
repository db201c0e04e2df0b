package main

import (
	"bytes"
	"flag"
	"maps"
	"strings"
	"testing"

	"github.com/directorlb/director/manual"
	"github.com/directorlb/director/version"
)

// TestFlagsAreTheManual: directord's flags are manual.Directord's, with
// the same defaults and help, so that -h and directord(8) tell the truth.
func TestFlagsAreTheManual(t *testing.T) {
	got, want := map[string]manual.Flag{}, map[string]manual.Flag{}
	newFlags(&options{}).VisitAll(func(f *flag.Flag) {
		got[f.Name] = manual.Flag{Name: f.Name, Default: f.DefValue, Help: f.Usage}
	})
	for _, f := range manual.Directord().Flags {
		want[f.Name] = manual.Flag{Name: f.Name, Default: f.Default, Help: f.Help}
	}
	if !maps.Equal(got, want) {
		t.Errorf("directord's flag set and manual.Directord differ:\nflag set %+v\nmanual   %+v", got, want)
	}
	if d := manual.DefaultConfig; got["config"].Default != d {
		t.Errorf("-config defaults to %q, the manual's pages say %q", got["config"].Default, d)
	}
}

func TestParseArgs(t *testing.T) {
	usage := manual.Directord().Usage()
	for _, c := range []struct {
		args           []string
		exit           int
		stdout, stderr string // stderr: a part of it
	}{
		{[]string{"-h"}, 0, usage, ""},
		{[]string{"--help"}, 0, usage, ""},
		{[]string{"-version"}, 0, "directord " + version.String() + "\n", ""},
		{[]string{"-bogus"}, 2, "", "directord: flag provided but not defined: -bogus\n" + usage},
		{[]string{"-config", "/x.yaml", "extra"}, 2, "", `unexpected argument "extra"`},
		{[]string{"-config", "/x.yaml", "-log-level", "debug"}, -1, "", ""},
	} {
		var o, e bytes.Buffer
		_, exit := parseArgs(c.args, &o, &e)
		if exit != c.exit || o.String() != c.stdout || !strings.Contains(e.String(), c.stderr) || (c.stderr == "" && e.Len() > 0) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want %d, %q, %q", c.args, exit, o.String(), e.String(), c.exit, c.stdout, c.stderr)
		}
	}
	o, _ := parseArgs([]string{"-config", "/x.yaml", "-log-format", "json"}, &bytes.Buffer{}, &bytes.Buffer{})
	if o.path != "/x.yaml" || o.format != "json" || o.level != "info" {
		t.Errorf("options %+v", o)
	}
}
