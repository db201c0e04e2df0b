package manual

import (
	"fmt"
	"strings"
)

// Width is the width help text is wrapped to.
const Width = 78

// overviewCol is where a command's summary starts in the overview.
const overviewCol = 34

// Usage is the program's help: what `PROG -h` prints.
func (p *Page) Usage() string {
	var b strings.Builder
	for i, s := range p.Synopsis {
		lead := "usage: "
		if i > 0 {
			lead = "       "
		}
		b.WriteString(wrapForm(lead+p.Name+" ", s))
	}
	writeText(&b, p.Text, "")
	for _, g := range p.Groups {
		b.WriteString("\n" + g.Title + ":\n")
		for _, c := range g.Commands {
			writeOverview(&b, c)
		}
	}
	writeFlags(&b, p.Flags)
	return b.String()
}

// CommandHelp is what `PROG COMMAND -h` prints: the command's forms,
// what it does and its flags.
func (p *Page) CommandHelp(name string) string {
	c := p.Command(name)
	if c == nil {
		return "usage: " + p.Name + " " + name + "\n"
	}
	var b strings.Builder
	for i, f := range c.Forms {
		lead := "usage: "
		if i > 0 {
			lead = "       "
		}
		b.WriteString(wrapForm(lead+p.Name+" "+c.Name+" ", strings.TrimPrefix(f, c.Name+" ")))
	}
	writeText(&b, c.Summary+"\n\n"+c.Text, "")
	writeFlags(&b, c.Flags)
	return b.String()
}

// writeOverview writes a command's forms, and its summary from
// overviewCol on (below the forms when the last is too wide).
func writeOverview(b *strings.Builder, c Command) {
	for i, f := range c.Forms {
		line := strings.TrimSuffix(wrapForm("  ", f), "\n")
		if i < len(c.Forms)-1 {
			b.WriteString(line + "\n")
			continue
		}
		if strings.Contains(line, "\n") || len(line) >= overviewCol-1 {
			b.WriteString(line + "\n")
			line = ""
		}
		pad := strings.Repeat(" ", overviewCol)
		first := line + pad[len(line):]
		b.WriteString(wrap(c.Summary, first, pad))
	}
}

func writeFlags(b *strings.Builder, flags []Flag) {
	if len(flags) == 0 {
		return
	}
	b.WriteString("\nflags:\n")
	for _, f := range flags {
		b.WriteString(wrap(flagHelp(f), "  "+f.Spelling()+"\n"+strings.Repeat(" ", 8), strings.Repeat(" ", 8)))
	}
}

// flagHelp is a flag's help with its default, as the flag package
// prints it.
func flagHelp(f Flag) string {
	if f.ShowDefault() {
		return fmt.Sprintf("%s (default %s)", f.Help, f.Default)
	}
	return f.Help
}

// writeText writes paragraphs, each after a blank line, wrapped.
func writeText(b *strings.Builder, text, indent string) {
	for _, p := range paragraphs(text) {
		b.WriteString("\n")
		if literal(p) {
			for _, l := range strings.Split(p, "\n") {
				b.WriteString(indent + l + "\n")
			}
			continue
		}
		b.WriteString(wrap(p, indent, indent))
	}
}

// wrap fills text's words into lines of at most Width columns: the
// first starts with first, the others with rest. A word longer than a
// line goes on a line of its own.
func wrap(text, first, rest string) string {
	var b strings.Builder
	line := first
	// The lead's last line is what the first words continue.
	lineLen := len(line) - strings.LastIndex(line, "\n") - 1
	empty := true
	for _, w := range strings.Fields(text) {
		if !empty && lineLen+1+len(w) > Width {
			b.WriteString(line + "\n")
			line, lineLen, empty = rest, len(rest), true
		}
		if !empty {
			line += " "
			lineLen++
		}
		line += w
		lineLen += len(w)
		empty = false
	}
	b.WriteString(line + "\n")
	return b.String()
}

// wrapForm writes a command form after lead, wrapped at Width between
// its words outside brackets ("[--stats | --rate]" stays whole), the
// following lines indented.
func wrapForm(lead, form string) string {
	var words []string
	depth, start := 0, 0
	for i, r := range form {
		switch r {
		case '[', '(':
			depth++
		case ']', ')':
			depth--
		case ' ':
			if depth == 0 {
				if i > start {
					words = append(words, form[start:i])
				}
				start = i + 1
			}
		}
	}
	if start < len(form) {
		words = append(words, form[start:])
	}
	// Under the words after the lead; in the overview, whose lead is
	// only the indent, further in than the command names.
	rest := strings.Repeat(" ", len(lead))
	if strings.TrimSpace(lead) == "" {
		rest += "    "
	}
	// A bracketed group too wide for a line of its own is split after
	// all, at its spaces.
	var fitted []string
	for _, w := range words {
		if len(rest)+len(w) > Width || len(lead)+len(w) > Width {
			fitted = append(fitted, strings.Fields(w)...)
		} else {
			fitted = append(fitted, w)
		}
	}
	var b strings.Builder
	line, empty := lead, true
	for _, w := range fitted {
		if !empty && len(line)+1+len(w) > Width {
			b.WriteString(line + "\n")
			line, empty = rest, true
		}
		if !empty {
			line += " "
		}
		line += w
		empty = false
	}
	b.WriteString(line + "\n")
	return b.String()
}
