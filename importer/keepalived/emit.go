package keepalived

import (
	"fmt"
	"strconv"
	"strings"
)

// q writes a string as a YAML double-quoted scalar (Go's escapes are
// YAML's for what it writes).
func q(s string) string { return strconv.Quote(s) }

// flow writes a mapping in flow style.
func flow(kvs []kv) string {
	parts := make([]string, len(kvs))
	for i, p := range kvs {
		parts[i] = p.k + ": " + p.v
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// emit writes the director YAML of what the import holds now.
func (im *importRun) emit(path string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# director configuration imported from keepalived's %s\n", oneLine(path))
	b.WriteString("# by directorctl import keepalived: read its report before using it.\n")
	if im.node != "" {
		fmt.Fprintf(&b, "node: %s\n", q(im.node))
	}
	if len(im.services) == 0 {
		b.WriteString("allow_no_services: true\n")
	}
	if len(im.timeouts) > 0 {
		fmt.Fprintf(&b, "ipvs:\n  timeouts: %s\n", flow(im.timeouts))
	}
	if fo := im.fo; fo != nil {
		fmt.Fprintf(&b, "# from %s:%d\nfailover:\n", oneLine(fo.src.file), fo.src.line)
		for _, p := range fo.kvs {
			fmt.Fprintf(&b, "  %s: %s\n", p.k, p.v)
		}
		b.WriteString("  links:\n")
		for _, l := range fo.links {
			fmt.Fprintf(&b, "    - %s\n", l)
		}
		if len(fo.vips) > 0 {
			b.WriteString("  vips:\n")
			for _, v := range fo.vips {
				fmt.Fprintf(&b, "    - %s\n", v)
			}
		}
		if fo.sync != "" {
			fmt.Fprintf(&b, "  sync: %s\n", fo.sync)
		}
	}
	if len(im.services) == 0 {
		b.WriteString("services: []\n")
		return []byte(b.String())
	}
	b.WriteString("services:\n")
	for _, s := range im.services {
		fmt.Fprintf(&b, "  # from %s:%d\n", oneLine(s.src.file), s.src.line)
		for i, p := range s.head {
			lead := "    "
			if i == 0 {
				lead = "  - "
			}
			fmt.Fprintf(&b, "%s%s: %s\n", lead, p.k, p.v)
		}
		b.WriteString("    check:\n")
		for _, p := range s.check {
			fmt.Fprintf(&b, "      %s: %s\n", p.k, p.v)
		}
		if len(s.reals) == 0 {
			b.WriteString("    real_servers: []\n")
			continue
		}
		b.WriteString("    real_servers:\n")
		for _, r := range s.reals {
			kvs := append([]kv{{"address", q(r.addr)}, {"weight", strconv.Itoa(r.weight)}}, r.kvs...)
			fmt.Fprintf(&b, "      - %s  # %s:%d\n", flow(kvs), oneLine(r.src.file), r.src.line)
		}
	}
	return []byte(b.String())
}

// oneLine keeps a path from breaking a YAML comment.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, s)
}
