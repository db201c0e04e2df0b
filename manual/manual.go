// Package manual is the one source of director's help texts and manual
// pages: each program's synopsis, description, commands, flags, files,
// signals and exit status, and director.yaml's keys with their defaults.
//
// The binaries print their -help from it (Page.Usage, Page.CommandHelp)
// and `make man` renders the same values as roff (Page.Roff, through
// ./manual/gen), so a page and -help cannot say different things. The
// tests of ctl, realserver and cmd/directord compare each program's real
// flag sets with the flags listed here, and this package's tests compare
// the configuration keys with the ones config/ accepts: a flag or key
// added without documentation fails a test.
package manual

import "strings"

// Page is one manual page, and the help of its program.
type Page struct {
	Name    string
	Section int    // 8: a program; 5: a file format
	Summary string // the NAME line, after "name \- "
	// Synopsis is the invocation forms, each without the program name.
	Synopsis []string
	// Text is the DESCRIPTION: paragraphs separated by a blank line; a
	// paragraph whose every line starts with two spaces is shown as is.
	Text   string
	Flags  []Flag  // OPTIONS: flags before any command
	Groups []Group // COMMANDS
	// Keys is a configuration file's reference, one block a mapping,
	// under the heading KeysTitle ("KEYS" if empty).
	Keys      []KeyBlock
	KeysTitle string
	Sections  []Section // after the above, in this order
	SeeAlso   []string  // "ipvsadm(8)"
}

// Group is a heading over some commands.
type Group struct {
	Title    string
	Commands []Command
}

// Command is one command of a program with commands.
type Command struct {
	Name string
	// Forms are its invocations after the program's name; the first
	// starts with Name.
	Forms   []string
	Summary string // one sentence, shown in the overview
	Text    string // more, shown by COMMAND -h and in the page
	Flags   []Flag
}

// Flag is one flag as the program defines it.
type Flag struct {
	Name  string // without dashes
	Short byte   // a one-letter form, ipvsadm's way (0: none)
	// GNU spells it --name (the Go flag package accepts both); set where
	// the program's users expect that spelling.
	GNU bool
	Arg string // the value's name: "PATH"; "" for a boolean
	// Default is the default as flag.Flag.DefValue has it.
	Default string
	// Help is the flag's usage text, exactly as given to the flag package.
	Help string
}

// Section is a page section of free text (FILES, EXIT STATUS, ...).
type Section struct {
	Title string
	Text  string
}

// Spelling is how the flag is written in help: "-socket PATH",
// "-c, --connection", "--mode MODE".
func (f Flag) Spelling() string {
	s := "-" + f.Name
	if f.GNU || f.Short != 0 {
		s = "--" + f.Name
	}
	if f.Short != 0 {
		s = "-" + string(f.Short) + ", " + s
	}
	if f.Arg != "" {
		s += " " + f.Arg
	}
	return s
}

// ShowDefault tells whether the default is worth printing: the flag
// package's rule (a zero value is not).
func (f Flag) ShowDefault() bool {
	switch f.Default {
	case "", "false", "0", "0s":
		return false
	}
	return true
}

// Command is the command called name, or nil.
func (p *Page) Command(name string) *Command {
	for _, g := range p.Groups {
		for i := range g.Commands {
			if g.Commands[i].Name == name {
				return &g.Commands[i]
			}
		}
	}
	return nil
}

// Commands lists every command, in the page's order.
func (p *Page) Commands() []Command {
	var out []Command
	for _, g := range p.Groups {
		out = append(out, g.Commands...)
	}
	return out
}

// FileName is the page's file: "directord.8".
func (p *Page) FileName() string {
	return p.Name + "." + string(rune('0'+p.Section))
}

// Pages is every page `make man` writes.
func Pages() []*Page {
	return []*Page{Directord(), Directorctl(), Realserver(), DirectorYAML()}
}

// paragraphs splits a Text into its paragraphs.
func paragraphs(text string) []string {
	var out []string
	for _, p := range strings.Split(strings.Trim(text, "\n"), "\n\n") {
		if strings.TrimSpace(p) != "" {
			out = append(out, p)
		}
	}
	return out
}

// literal tells whether a paragraph is shown as is.
func literal(p string) bool {
	for _, l := range strings.Split(p, "\n") {
		if !strings.HasPrefix(l, "  ") {
			return false
		}
	}
	return true
}
