package keepalived

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/directorlb/director/importer"
)

// preprocess runs keepalived's preprocessing on files written to a temp
// directory (the first is the main file) and returns the lines' text and
// the findings' keywords.
func preprocess(t *testing.T, opts Options, files map[string]string, main string) ([]string, []importer.Finding) {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if opts.Root == "root" {
		opts.Root = dir
	}
	var find []importer.Finding
	r := &reader{opts: opts, find: &find, vars: map[string]string{}, undef: map[string]bool{}}
	if err := r.readFile(filepath.Join(dir, main), 0); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range r.out {
		out = append(out, l.text)
	}
	return out, find
}

func TestLexer(t *testing.T) {
	for _, tc := range []struct {
		name  string
		opts  Options
		files map[string]string
		want  []string
		finds []string // keywords of the findings, in order
	}{
		{name: "comments", files: map[string]string{"k.conf": "a b # c\n! all\n  x \"q # not\" y !z\nw{#c\n"},
			want: []string{"a b", `x "q # not" y`, "w{"}},
		{name: "nbsp indentation", files: map[string]string{"k.conf": "\u00a0\u00a0weight\u00a03\n"},
			want: []string{"weight 3"}, finds: []string{"encoding"}},
		{name: "conditionals", opts: Options{ID: "low"}, files: map[string]string{"k.conf": "@low a\n@high b\n@^low c\n@^high d\n"},
			want: []string{"a", "d"}},
		{name: "variables", files: map[string]string{"k.conf": "$X=1.2.3.4\nvip $X ${X}:0\n"},
			want: []string{"vip 1.2.3.4 1.2.3.4:0"}},
		{name: "multi-line definition", files: map[string]string{"k.conf": "$M=\\\n a { \\\n b }\n$M\n"},
			want: []string{"a {", "b }"}},
		{name: "conditional definition", opts: Options{ID: "h1"}, files: map[string]string{"k.conf": "@h1 $IP=1\n@h2 $IP=2\nx $IP\n"},
			want: []string{"x 1"}},
		{name: "undefined variable", files: map[string]string{"k.conf": "x $NOPE\n"},
			want: []string{"x $NOPE"}, finds: []string{"$NOPE"}},
		{name: "seq", files: map[string]string{"k.conf": "~SEQ(N,1,3) r $N\n~SEQ(N,1,2,5) s $N\n~SEQ(N,2) t $N\n"},
			want: []string{"r 1", "r 2", "r 3", "s 1", "s 3", "s 5", "t 1", "t 2"}},
		{name: "lst", files: map[string]string{"k.conf": "~LST(N,a,b) x ${N}y\n"},
			want: []string{"x ay", "x by"}},
		{name: "seq of a multi-line macro", files: map[string]string{"k.conf": "$R=\\\nreal $H {\\\n}\n$S=1\n~SEQ(H,$S,2) $R\n"},
			want: []string{"real 1 {", "}", "real 2 {", "}"}},
		{name: "unknown sequence", files: map[string]string{"k.conf": "~SEQx(N,1,2) a\n"},
			finds: []string{"~SEQx"}},
		{name: "include glob, relative", files: map[string]string{"k.conf": "a\ninclude sub/*.conf\nz\n", "sub/1.conf": "b\n", "sub/2.conf": "c\n"},
			want: []string{"a", "b", "c", "z"}},
		{name: "include absolute, under root", opts: Options{Root: "root"}, files: map[string]string{"k.conf": "include /etc/keepalived/x.conf\n", "etc/keepalived/x.conf": "x\n"},
			want: []string{"x"}},
		{name: "include _PWD", files: map[string]string{"k.conf": "include ${_PWD}/p.conf\n", "p.conf": "p\n"},
			want: []string{"p"}},
		{name: "include missing", files: map[string]string{"k.conf": "include /nope/*.conf\n"},
			finds: []string{"include"}},
		{name: "include loop", files: map[string]string{"k.conf": "a\ninclude k.conf\n"},
			want: []string{"a"}, finds: []string{"include"}},
		{name: "not UTF-8", files: map[string]string{"k.conf": "a\n# \x82\xa0\xff\nb\n"},
			want: []string{"a", "b"}, finds: []string{"encoding"}},
		{name: "self-expanding variable", files: map[string]string{"k.conf": "$A=x $A\n$A\n"},
			finds: []string{"$"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, find := preprocess(t, tc.opts, tc.files, "k.conf")
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("lines = %q, want %q", got, tc.want)
			}
			var kws []string
			for _, f := range find {
				kws = append(kws, f.Keyword)
			}
			if !reflect.DeepEqual(kws, tc.finds) {
				t.Errorf("findings = %v, want keywords %q", find, tc.finds)
			}
		})
	}
}

// shape writes a statement tree as kw(args){kids}.
func shape(n *node) string {
	var b strings.Builder
	for i, k := range n.kids {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(k.kw)
		if len(k.args) > 0 {
			b.WriteString("(" + strings.Join(k.args, ",") + ")")
		}
		if k.block {
			b.WriteString("{" + shape(k) + "}")
		}
	}
	return b.String()
}

func TestParse(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"a 1 {\n b 2\n}\n", "a(1){b(2)}"},
		{"a 1\n{\n b\n}\n", "a(1){b}"},
		{"vrrp_script chk{\n s \"/x y\"\n}\n", "vrrp_script(chk){s(/x y)}"},
		{"v 1 2{ x }\ny\n", "v(1,2){x} y"},
		{"a {\n b {\n c\n}}\nd\n", "a{b{c}} d"},
		{"a {\n b\n", "a{b}"},
		{"}\na\n", "a"},
		{"e \"\"\n", "e()"},
	} {
		im := &importRun{}
		var lines []srcLine
		for i, l := range strings.Split(strings.TrimSuffix(tc.in, "\n"), "\n") {
			lines = append(lines, srcLine{file: "t", line: i + 1, text: strings.TrimSpace(l)})
		}
		if got := shape(im.parse(lines)); got != tc.want {
			t.Errorf("%q: got %s, want %s", tc.in, got, tc.want)
		}
	}
}
