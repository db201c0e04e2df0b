package config

import (
	"fmt"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// sameTree reports where two node trees differ in anything the decoder
// reads: kind, style, tag, value, position and children.
func sameTree(a, b *yaml.Node, at string) error {
	if (a == nil) != (b == nil) {
		return fmt.Errorf("%s: one is nil", at)
	}
	if a == nil {
		return nil
	}
	if a.Kind != b.Kind || a.Style != b.Style || a.Tag != b.Tag || a.Value != b.Value ||
		a.Anchor != b.Anchor || a.Line != b.Line || a.Column != b.Column || len(a.Content) != len(b.Content) {
		return fmt.Errorf("%s: %d:%d %v %q %q (%d children) against %d:%d %v %q %q (%d children)", at,
			a.Line, a.Column, a.Kind, a.Tag, a.Value, len(a.Content), b.Line, b.Column, b.Kind, b.Tag, b.Value, len(b.Content))
	}
	for i := range a.Content {
		if err := sameTree(a.Content[i], b.Content[i], fmt.Sprintf("%s/%d", at, i)); err != nil {
			return err
		}
	}
	return nil
}

// bigList is a services list long enough to be split, with the entry
// extra written into every seventh service, so that some piece boundary
// falls at or next to one.
func bigList(head, extra, tail string, indent string) []byte {
	var b strings.Builder
	b.WriteString(head)
	b.WriteString("services:\n")
	for i := 0; i < 3000; i++ {
		fmt.Fprintf(&b, "%s- name: s%d\n%s  vip: 10.100.%d.%d\n%s  port: 80\n%s  real_servers:\n",
			indent, i, indent, i/256, i%256, indent, indent)
		for j := 1; j <= 10; j++ {
			fmt.Fprintf(&b, "%s    - {address: 10.200.0.%d, weight: 1}\n", indent, j)
		}
		if i%7 == 3 {
			b.WriteString(strings.ReplaceAll(extra, "@", indent))
		}
	}
	b.WriteString(tail)
	return []byte(b.String())
}

// TestParseSplitSameTree: where the services list is split, the tree is
// the one a whole parse makes, up to the line and column of every node.
func TestParseSplitSameTree(t *testing.T) {
	for name, data := range map[string][]byte{
		"farm":     scaleYAML(2000, "{type: none}"),
		"indented": bigList("node: a\n", "", "", "  "),
		// Entries at the key's own indentation, comments and blank
		// lines between entries, keys after the list.
		"indentless": bigList("# farm\nnode: a\n", "\n# a comment\n\n  # another\n", "failover:\n  peer: 10.0.0.2\nstate_dir: /var/lib/x\n", ""),
		// A block scalar whose text looks like entries.
		"block scalar": bigList("node: a\n", "@  check: {type: tcp}\n@  sorry_server: 10.1.1.1\n@  x: |\n@    - name: fake\n@      - name: fake\n", "", "  "),
	} {
		whole, err := parseYAML(data)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, parts := range []int{2, 3, 8} {
			split := parseSplit(data, parts)
			if split == nil {
				t.Fatalf("%s, %d parts: not split", name, parts)
			}
			if err := sameTree(whole, split, "doc"); err != nil {
				t.Errorf("%s, %d parts: %v", name, parts, err)
			}
		}
	}
}

// TestParseSplitRefused: text that only looks like a list's entries, or
// that a piece cannot be parsed alone, is not split, and parseDocument's
// tree or error is then a whole parse's.
func TestParseSplitRefused(t *testing.T) {
	for name, data := range map[string][]byte{
		// Quoted scalars may hold lines that look like entries.
		"double-quoted": bigList("node: a\n", "@  x: \"text\n@- name: fake\n@- name: fake2\"\n", "", "  "),
		"single-quoted": bigList("node: a\n", "@  x: 'text\n@- name: fake'\n", "", ""),
		"anchors":       bigList("node: &n a\n", "", "", "  "),
		"alias":         bigList("node: a\n", "@  x: &a 1\n@  y: *a\n", "", "  "),
		"cr":            bigList("node: a\r\n", "", "", "  "),
		"directive":     bigList("%YAML 1.1\n---\nnode: a\n", "", "", "  "),
		"tab":           bigList("node: a\n", "\t\n", "", "  "),
		"odd entry":     bigList("node: a\n", "@-  name: odd\n@   vip: 10.0.0.1\n", "", "  "),
		"second doc":    bigList("node: a\n", "", "---\nnode: b\n", ""),
		"syntax error":  bigList("node: a\n", "@  x: [1,\n", "", "  "),
		"flow key":      []byte(strings.Replace(string(bigList("node: a\n", "", "", "  ")), "services:", "{services:", 1)),
	} {
		if parseSplit(data, 4) != nil {
			t.Errorf("%s: split", name)
		}
		whole, werr := parseYAML(data)
		doc, err := parseDocument(data)
		if fmt.Sprint(err) != fmt.Sprint(werr) {
			t.Errorf("%s: error %v, a whole parse's is %v", name, err, werr)
		}
		if err := sameTree(whole, doc, "doc"); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}
