// Package ldirectord imports an ldirectord configuration (ldirectord.cf)
// into director's YAML, reading it as ldirectord's own read_config does
// (ClusterLabs/resource-agents, ldirectord/ldirectord.in) and reporting
// every construct it does not carry over, or carries over approximately.
// directorctl import ldirectord drives it.
package ldirectord

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/directorlb/director/config"
	"github.com/directorlb/director/importer"
)

// maxSize bounds the file read: the largest real ldirectord.cf seen is
// about 120 KiB.
const maxSize = 16 << 20

// conv carries one import's state.
type conv struct {
	file          string
	finds         []importer.Finding
	secrets       map[string]int // password and secret files named so far, per service kind
	names         map[string]bool
	fallbackCache map[*directive]*fallback
}

func (im *conv) report(line int, key, msg string) {
	im.finds = append(im.finds, importer.Finding{File: im.file, Line: line, Keyword: key, Msg: msg})
}

// Import reads the ldirectord configuration at path and returns director
// YAML and the report. The YAML is nil (exit 2) when the file cannot be
// read or is not ldirectord's; each service that director's own parser
// would refuse is left out with a report line instead.
func Import(path string) importer.Result {
	im := &conv{file: path, secrets: map[string]int{}, names: map[string]bool{},
		fallbackCache: map[*directive]*fallback{}}
	data, err := readFile(path)
	if err != nil {
		im.report(0, "file", err.Error())
		return im.result(nil)
	}
	if bytes.IndexByte(data, 0) >= 0 {
		im.report(0, "file", "has NUL bytes: not a text file, not an ldirectord configuration")
		return im.result(nil)
	}
	f, finds := read(path, data)
	im.finds = append(im.finds, finds...)
	if f.NotLd != "" {
		im.finds = []importer.Finding{{File: path, Keyword: "file", Msg: f.NotLd + "; nothing imported"}}
		return im.result(nil)
	}
	if len(f.Virtuals) == 0 {
		im.report(0, "file", "no virtual= line: not an ldirectord configuration, or one with no service; nothing imported")
		return im.result(nil)
	}
	g := im.readGlobals(f.Globals)
	var head strings.Builder
	fmt.Fprintf(&head, "# imported from %s by directorctl import ldirectord: read the report\n", yamlComment(path))
	if g.cleanStop == "yes" {
		head.WriteString("ipvs:\n  cleanup_on_exit: true  # cleanstop = yes\n")
	}
	head.WriteString("services:\n")
	type id struct {
		addr   string
		port   int
		proto  string
		fwmark int64
		v6     bool
	}
	seen := map[id]int{}
	shared := map[string][]quiescentReal{}
	var out []string
	for _, v := range f.Virtuals {
		vs := im.readVirtual(v)
		if vs == nil {
			continue
		}
		k := id{vs.addr.String(), vs.port, vs.protocol, vs.fwmark, vs.v6}
		if l, dup := seen[k]; dup {
			im.report(v.Line, "virtual", fmt.Sprintf("the same virtual service as line %d (ldirectord refuses the file here); not carried over", l))
			continue
		}
		seen[k] = v.Line
		reals := im.readReals(vs, v.Reals)
		im.noteQuiescent(vs, reals, g, shared)
		s := im.buildService(vs, reals, g)
		if text, ok := im.validate(head.String(), s, vs); ok {
			out = append(out, text)
		}
	}
	im.reportShared(shared)
	if len(out) == 0 {
		im.report(0, "file", "no service could be carried over; nothing imported")
		return im.result(nil)
	}
	doc := head.String() + strings.Join(out, "")
	if _, err := config.Parse(path, []byte(doc)); err != nil {
		// Each service passed alone; together they may not (two
		// servicenames made the same): keep those that still pass.
		doc = head.String()
		for _, text := range out {
			if _, err := config.Parse(path, []byte(doc+text)); err != nil {
				im.report(0, "file", "a service refused next to the others ("+firstLine(err)+"); not carried over")
				continue
			}
			doc += text
		}
	}
	return im.result([]byte(doc))
}

// validate renders s and runs director's parser on it alone; a service it
// refuses is tried again without its sorry server, else left out.
func (im *conv) validate(head string, s *service, vs *vsrv) (string, bool) {
	text := s.render(im.file)
	_, err := config.Parse(im.file, []byte(head+text))
	if err == nil {
		return text, true
	}
	if s.sorry != "" {
		s.sorry = ""
		alt := s.render(im.file)
		if _, err2 := config.Parse(im.file, []byte(head+alt)); err2 == nil {
			line := vs.line
			if l := vs.set["fallback"] + vs.set["fallback6"]; l != 0 {
				line = l
			}
			im.report(line, "fallback", "director refuses it as a sorry_server ("+firstLine(err)+"); not carried over")
			return alt, true
		}
	}
	key := "virtual"
	if vs.v6 {
		key = "virtual6"
	}
	im.report(vs.line, key, "director refuses the service made of it ("+firstLine(err)+"); not carried over: fix the line named and import again")
	return "", false
}

// posRe is the position director's parser puts first in its errors; in
// an import it points into YAML the reader has not seen yet.
var posRe = regexp.MustCompile(`^.*?:\d+:\d+: | \(at \d+:\d+\)`)

// firstLine is an error's first line without that position.
func firstLine(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(posRe.ReplaceAllString(s, ""))
}

func readFile(path string) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read it: %w", err)
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, fmt.Errorf("cannot read it: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file")
	}
	if st.Size() > maxSize {
		return nil, fmt.Errorf("larger than %d MiB: not an ldirectord configuration", maxSize>>20)
	}
	data := make([]byte, st.Size())
	if _, err := fh.ReadAt(data, 0); err != nil && st.Size() > 0 {
		return nil, fmt.Errorf("cannot read it: %w", err)
	}
	return data, nil
}

func (im *conv) result(yaml []byte) importer.Result {
	r := importer.Result{YAML: yaml, Findings: im.finds}
	r.Sort()
	return r
}
