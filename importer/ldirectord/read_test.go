package ldirectord

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestReader: ldirectord's section rules (read_config): 4 columns of
// indent (a tab is 4), comments anywhere, column 0 ends a section.
func TestReader(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		reals      int
		opts       []string
		report     []string
	}{
		{"tabs and spaces", "virtual=192.0.2.1:80\n\treal=10.0.0.1 gate\n    real=10.0.0.2 gate\n", 2, nil, nil},
		{"comment lines inside", "virtual=192.0.2.1:80\n\treal=10.0.0.1 gate\n#####\n  # x\n\treal=10.0.0.2 gate\n", 2, nil, nil},
		{"trailing comment", "virtual=192.0.2.1:80\n\tscheduler=rr # fast\n", 0, []string{"scheduler=rr"}, nil},
		{"quoted", "virtual=192.0.2.1:80\n\trequest=\"a b\"\n", 0, []string{"request=a b"}, nil},
		{"column 0 ends", "virtual=192.0.2.1:80\n\treal=10.0.0.1 gate\nchecktimeout=3\n", 1, nil, nil},
		{"blank line", "virtual=192.0.2.1:80\n\treal=10.0.0.1 gate\n\n\treal=10.0.0.2 gate\n", 2, nil, []string{":4: real: after a blank line"}},
		{"shallow indent", "virtual=192.0.2.1:80\n  real=10.0.0.1 gate\n", 1, nil, []string{":2: real: indented by fewer than 4"}},
		{"nbsp", "virtual=192.0.2.1:80\n\u00a0\u00a0\u00a0\u00a0real=10.0.0.1 gate\n", 1, nil, []string{"non-breaking"}},
		{"indented global", "  checktimeout=3\n", 0, nil, []string{":1: checktimeout: indented line outside"}},
		{"crlf", "virtual=192.0.2.1:80\r\n\treal=10.0.0.1 gate\r\n", 1, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, finds := read("x.cf", []byte(tc.file))
			n := 0
			var opts []string
			for _, v := range f.Virtuals {
				n += len(v.Reals)
				for _, o := range v.Opts {
					opts = append(opts, o.Key+"="+o.Val)
				}
			}
			if n != tc.reals {
				t.Errorf("%d real lines, want %d", n, tc.reals)
			}
			for _, o := range tc.opts {
				if !strings.Contains(strings.Join(opts, "\n"), o) {
					t.Errorf("options %q lack %q", opts, o)
				}
			}
			var rep strings.Builder
			for _, fd := range finds {
				rep.WriteString(fd.String() + "\n")
			}
			for _, w := range tc.report {
				if !strings.Contains(rep.String(), w) {
					t.Errorf("report lacks %q:\n%s", w, rep.String())
				}
			}
			if len(tc.report) == 0 && rep.Len() > 0 {
				t.Errorf("unexpected report:\n%s", rep.String())
			}
		})
	}
}

func TestNothingUsable(t *testing.T) {
	for name, text := range map[string]string{
		"ini":        "[vip]\neth0:1=192.0.2.1\n[x]\nvirtual=192.0.2.1:80\n\treal=10.0.0.1 gate\n",
		"no virtual": "checktimeout=3\n",
		"binary":     "virtual=192.0.2.1:80\x00\n",
		"empty":      "",
	} {
		t.Run(name, func(t *testing.T) {
			r := importText(t, text)
			if r.Exit() != 2 || r.YAML != nil || len(r.Findings) == 0 {
				t.Errorf("exit %d, YAML %q, report %v; want 2, none, a reason", r.Exit(), r.YAML, r.Findings)
			}
		})
	}
	r := Import(filepath.Join(t.TempDir(), "missing.cf"))
	if r.Exit() != 2 || !strings.Contains(reportText(r), "cannot read it") {
		t.Errorf("missing file: exit %d, report %v", r.Exit(), r.Findings)
	}
}
