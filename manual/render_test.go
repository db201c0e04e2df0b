package manual

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"unicode"
)

// TestPagesRenderWithoutWarnings renders every page as `man -l` shows it
// and wants nothing on stderr from `man --warnings`, and every command,
// flag and key in the text.
func TestPagesRenderWithoutWarnings(t *testing.T) {
	man, err := exec.LookPath("man")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("man is not installed: scripts/deps installs man-db and groff-base")
		}
		t.Skip("man is not installed (make deps installs man-db)")
	}
	dir := t.TempDir()
	for _, p := range Pages() {
		roff := p.Roff(RoffOptions{Version: "1.0", Date: "2026-12-04"})
		for i, r := range roff {
			if r > unicode.MaxASCII {
				t.Errorf("%s: a non-ASCII character %q at byte %d: write it in ASCII", p.FileName(), r, i)
			}
		}
		path := filepath.Join(dir, p.FileName())
		if err := os.WriteFile(path, []byte(roff), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(man, "--warnings", "-l", path)
		cmd.Env = append(os.Environ(), "MANWIDTH=80", "MANPAGER=cat", "PAGER=cat", "LC_ALL=C.UTF-8", "MAN_KEEP_FORMATTING=")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil || stderr.Len() > 0 {
			t.Errorf("man --warnings -l %s: %v\n%s", p.FileName(), err, stderr.String())
			continue
		}
		text := " " + strings.Join(strings.Fields(string(out)), " ") + " "
		var want []string
		for _, f := range p.Flags {
			want = append(want, dashes(f)+f.Name)
		}
		for _, c := range p.Commands() {
			want = append(want, p.Name+" "+c.Name)
			for _, f := range c.Flags {
				want = append(want, dashes(f)+f.Name)
			}
		}
		for _, b := range p.Keys {
			for _, k := range b.Keys {
				want = append(want, " "+k.Name+" (")
			}
		}
		for _, s := range p.Sections {
			want = append(want, strings.ToUpper(s.Title))
		}
		for _, w := range want {
			if !strings.Contains(text, w) {
				t.Errorf("%s: %q is not in the rendered page", p.FileName(), w)
			}
		}
	}
}

func dashes(f Flag) string {
	if f.GNU || f.Short != 0 {
		return "--"
	}
	return "-"
}

// TestRoffEscapes: text that would be a roff request or escape is shown
// as written.
func TestRoffEscapes(t *testing.T) {
	for in, want := range map[string]string{
		`.TH x`:       `\&.TH x`,
		`'quote`:      `\&'quote`,
		`a\b`:         `a\eb`,
		`-socket`:     `\-socket`,
		`mid. dot`:    `mid. dot`,
		`"\n" escape`: `"\en" escape`,
	} {
		if got := esc(in); got != want {
			t.Errorf("esc(%q) = %q, want %q", in, got, want)
		}
	}
	p := &Page{Name: "x", Section: 8, Summary: "s", Text: "first\n.br\nsecond\n\n  .literal\n  two"}
	roff := p.Roff(RoffOptions{})
	if strings.Contains(roff, "\n.br\n") || !strings.Contains(roff, `first .br second`) || !strings.Contains(roff, "\n\\&.literal\n") {
		t.Errorf("a request in the text was not escaped:\n%s", roff)
	}
}

// TestHelpWraps: help text stays within Width, and a literal paragraph
// is kept line for line.
func TestHelpWraps(t *testing.T) {
	for _, p := range Pages() {
		if p.Section != 8 {
			continue
		}
		texts := []string{p.Usage()}
		for _, c := range p.Commands() {
			texts = append(texts, p.CommandHelp(c.Name))
		}
		for _, text := range texts {
			for _, l := range strings.Split(text, "\n") {
				// A single word longer than a line is the one exception.
				if len(l) > Width && strings.Contains(strings.TrimSpace(l), " ") {
					t.Errorf("%s: a help line of %d columns:\n%s", p.Name, len(l), l)
				}
			}
		}
	}
	got := wrap("aaa bbb ccc", "> ", "  ")
	if got != "> aaa bbb ccc\n" {
		t.Errorf("wrap: %q", got)
	}
	var b strings.Builder
	writeText(&b, "  keep   this\n  as is", "")
	if b.String() != "\n  keep   this\n  as is\n" {
		t.Errorf("literal paragraph: %q", b.String())
	}
}
