package statuspage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloudflare/ipvs"
	"github.com/directorlb/director/config"
	"github.com/directorlb/director/control"
	"github.com/directorlb/director/director"
	"github.com/directorlb/director/failover"
	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

var t0 = time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)

const hostile = `<script>alert("x")</script>`

// richStatus has every part the page shows: a pair, a bgp group (a node
// is one or the other, but the page must render both), a down, an up,
// a drained, an unchecked and a sorry server.
func richStatus(name string) *control.Status {
	h := func(ok bool, err string) *director.Health {
		return &director.Health{Check: "http", Healthy: ok, Since: t0, Checked: t0, LatencyMS: 1.5, Error: err}
	}
	return &control.Status{
		Status: director.Status{Config: "/etc/director/director.yaml", Node: "lb1", Reconciles: 7, LastReconcile: t0, KernelRead: t0,
			Services: []director.ServiceStatus{{
				Name: name, Key: "192.0.2.10:80/tcp", InKernel: true, Scheduler: "wlc",
				RealServers: []director.ServerStatus{
					{Address: "10.0.0.1:80", Forward: "masq", ConfiguredWeight: 100, KernelWeight: 100, Health: h(true, "")},
					{Address: "10.0.0.2:80", Forward: "masq", ConfiguredWeight: 100, KernelWeight: 0, Health: h(false, "connection refused")},
					{Address: "10.0.0.3:80", Forward: "masq", Drained: true, ConfiguredWeight: 50, KernelWeight: 0, Health: h(true, "")},
					{Address: "10.0.0.4:80", Forward: "route", ConfiguredWeight: 1, KernelWeight: -1},
					{Address: "10.0.0.9:80", Forward: "masq", Sorry: true, ConfiguredWeight: 1, KernelWeight: 0},
				},
			}},
			Foreign: []string{"198.51.100.1:443/tcp"},
		},
		Role: "active",
		Failover: &failover.Status{Node: "lb1", Role: "active", Priority: 100, SinceMS: 65000,
			Peer:  &failover.PeerStatus{Node: "lb2", Role: "standby", Priority: 50, Alive: true, LastHeardMS: 300, ConfigMatch: true},
			Links: []failover.LinkStatus{{Name: "eth1", Up: true, LastHeardMS: 300, Received: 10, Sent: 11}, {Name: "ttyS0", LastHeardMS: -1, LastError: "no carrier"}},
			VIPs:  []failover.VIPStatus{{Address: "192.0.2.10/24", Interface: "eth0", Held: true}},
			Sync:  []failover.SyncStatus{{State: "master", Interface: "eth1", SyncID: 1}},
		},
		BGP: &control.BGPStatus{
			Peers: []control.BGPPeer{{Address: "192.0.2.1", ASN: 64512, State: "established", Since: t0, PrefixesSent: 1, BFD: "up"}},
			VIPs:  []control.BGPVIP{{Service: name, VIP: "192.0.2.10/32", Announced: true, Healthy: 1, Servers: 2}},
			Group: &control.GroupStatus{Digest: "ab", Members: []control.GroupMember{
				{Node: "lb1", Self: true, Alive: true, Announced: []string{"192.0.2.10/32"}, DigestMatch: true},
				{Node: "lb3", Alive: false, LastSeen: t0, Drained: true, DigestMatch: false},
			}, Mismatched: 1},
		},
	}
}

// fakeKernel holds one service with two real servers.
type fakeKernel struct{ err error }

func (k fakeKernel) Services() ([]ipvs.ServiceExtended, error) {
	if k.err != nil {
		return nil, k.err
	}
	return []ipvs.ServiceExtended{
		{Service: ipvs.Service{Address: netip.MustParseAddr("192.0.2.10"), Port: 80, Protocol: ipvs.TCP, Family: ipvs.INET},
			Stats64: ipvs.Stats{Connections: 1234, ConnectionRate: 12}},
		{Service: ipvs.Service{Address: netip.MustParseAddr("198.51.100.1"), Port: 443, Protocol: ipvs.TCP, Family: ipvs.INET}},
	}, nil
}

func (k fakeKernel) Destinations(s ipvs.Service) ([]ipvs.DestinationExtended, error) {
	if s.Port != 80 {
		return nil, errors.New("the page must not read services it does not show")
	}
	return []ipvs.DestinationExtended{
		{Destination: ipvs.Destination{Address: netip.MustParseAddr("10.0.0.1"), Port: 80, Weight: 100}, ActiveConnections: 41, InactiveConnections: 3,
			Stats64: ipvs.Stats{Connections: 1000, ConnectionRate: 9, IncomingByteRate: 123456}},
		{Destination: ipvs.Destination{Address: netip.MustParseAddr("10.0.0.2"), Port: 80}, ActiveConnections: 1,
			Stats: ipvs.Stats{Connections: 234, ConnectionRate: 3}},
	}, os.ErrNotExist // as cloudflare/ipvs says of an empty answer; ignored with data too
}

func render(t *testing.T, src Source) string {
	t.Helper()
	if src.Now == nil {
		src.Now = func() time.Time { return t0 }
	}
	var b bytes.Buffer
	if err := Render(&b, Build(context.Background(), src)); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func fixed(st *control.Status) func(context.Context) (*control.Status, error) {
	return func(context.Context) (*control.Status, error) { return st, nil }
}

func events() *Events {
	ev := NewEvents(4)
	ev.Add(Event{Time: t0, Kind: "check", Subject: "web 10.0.0.2:80", What: "down: connection refused"})
	ev.Add(Event{Time: t0.Add(time.Second), Kind: "role", Subject: "lb1", What: "active"})
	return ev
}

// voids are HTML's void elements: they have no end tag.
var voids = map[string]bool{"area": true, "base": true, "br": true, "col": true, "embed": true, "hr": true, "img": true,
	"input": true, "link": true, "meta": true, "source": true, "track": true, "wbr": true}

// parents are the elements whose parent HTML's content model fixes;
// a parser that finds one elsewhere silently moves it (foster parenting)
// instead of failing, so the check is made here.
var parents = map[string][]string{"tr": {"thead", "tbody", "tfoot"}, "td": {"tr"}, "th": {"tr"},
	"thead": {"table"}, "tbody": {"table"}, "tfoot": {"table"}, "li": {"ul", "ol"}}

// checkHTML is a strict check of the page, stricter than browsers (which
// repair anything): one doctype first; every element but a void one
// closed, in order, by its own end tag; table parts where HTML allows
// them; no attribute twice on an element; no id twice in the page; and
// golang.org/x/net/html, an HTML5 parser, must build the same elements
// from it (the tokenizer and the tree builder agree, so nothing was
// reparented or dropped).
func checkHTML(t *testing.T, doc string) *html.Node {
	t.Helper()
	z := html.NewTokenizer(strings.NewReader(doc))
	var stack, opened []string
	ids := map[string]bool{}
	first := true
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			if z.Err() != io.EOF {
				t.Fatalf("tokenizer: %v", z.Err())
			}
			break
		}
		tok := z.Token()
		switch tt {
		case html.DoctypeToken:
			if !first || tok.Data != "html" {
				t.Errorf("doctype %q not first", tok.Data)
			}
		case html.StartTagToken, html.SelfClosingTagToken:
			if first {
				t.Errorf("no doctype before <%s>", tok.Data)
			}
			seen := map[string]bool{}
			for _, a := range tok.Attr {
				if seen[a.Key] {
					t.Errorf("<%s> has %s twice", tok.Data, a.Key)
				}
				seen[a.Key] = true
				if a.Key == "id" {
					if ids[a.Val] {
						t.Errorf("id %q twice", a.Val)
					}
					ids[a.Val] = true
				}
			}
			if ps, ok := parents[tok.Data]; ok && (len(stack) == 0 || !slices.Contains(ps, stack[len(stack)-1])) {
				t.Errorf("<%s> inside %v", tok.Data, stack)
			}
			opened = append(opened, tok.Data)
			if tt == html.SelfClosingTagToken && !voids[tok.Data] {
				t.Errorf("<%s/> is not a void element", tok.Data)
			}
			if !voids[tok.Data] && tt == html.StartTagToken {
				stack = append(stack, tok.Data)
			}
		case html.EndTagToken:
			if len(stack) == 0 || stack[len(stack)-1] != tok.Data {
				t.Fatalf("</%s> closes %v", tok.Data, stack)
			}
			stack = stack[:len(stack)-1]
		case html.TextToken:
			if first && strings.TrimSpace(tok.Data) != "" {
				t.Errorf("text before the doctype")
			}
		}
		if tt != html.TextToken {
			first = false
		}
	}
	if len(stack) > 0 {
		t.Errorf("not closed: %v", stack)
	}
	root, err := html.Parse(strings.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	var built []string
	for n := range root.Descendants() {
		if n.Type == html.ElementNode {
			built = append(built, n.Data)
		}
	}
	if !slices.Equal(built, opened) {
		t.Errorf("the HTML5 parser built other elements than the page has:\n page: %v\nparsed: %v", opened, built)
	}
	return root
}

func find(root *html.Node, match func(*html.Node) bool) []*html.Node {
	var out []*html.Node
	for n := range root.Descendants() {
		if n.Type == html.ElementNode && match(n) {
			out = append(out, n)
		}
	}
	return out
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

// text is n's text as a reader sees it: cells and blocks apart, inline
// elements run in.
func text(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := range n.ChildNodes() {
			walk(c)
		}
		switch n.DataAtom {
		case atom.Td, atom.Th, atom.Tr, atom.P, atom.H1, atom.H2, atom.H3, atom.Li:
			b.WriteByte(' ')
		}
	}
	walk(n)
	return strings.Join(strings.Fields(b.String()), " ")
}

// rows are the real servers' rows, by address.
func rows(root *html.Node) map[string]*html.Node {
	out := map[string]*html.Node{}
	for _, n := range find(root, func(n *html.Node) bool { return n.DataAtom == atom.Tr && attr(n, "data-rs") != "" }) {
		out[attr(n, "data-rs")] = n
	}
	return out
}

func TestPageIsValidHTML(t *testing.T) {
	for name, src := range map[string]Source{
		"everything":   {Status: fixed(richStatus("web")), Kernel: fakeKernel{}, Events: events(), Refresh: 3 * time.Second},
		"single":       {Status: fixed(&control.Status{Status: director.Status{Node: "lb1"}, Role: "active"})},
		"no events":    {Status: fixed(richStatus("web")), Events: NewEvents(0)},
		"status error": {Status: func(context.Context) (*control.Status, error) { return nil, errors.New("busy") }, Events: events()},
		"kernel error": {Status: fixed(richStatus("web")), Kernel: fakeKernel{err: errors.New("netlink: EPERM")}},
	} {
		t.Run(name, func(t *testing.T) {
			root := checkHTML(t, render(t, src))
			metas := find(root, func(n *html.Node) bool { return n.DataAtom == atom.Meta && attr(n, "http-equiv") == "refresh" })
			if want := fmt.Sprint(int(max(src.Refresh, DefaultRefresh) / time.Second)); len(metas) != 1 || attr(metas[0], "content") != want && src.Refresh == 0 {
				t.Errorf("refresh: %d metas, want one with %s", len(metas), want)
			}
			// No script and nothing loaded from elsewhere: only relative
			// links to the listener's own endpoints.
			for _, n := range find(root, func(*html.Node) bool { return true }) {
				switch n.DataAtom {
				case atom.Script, atom.Link, atom.Img, atom.Iframe, atom.Object, atom.Embed:
					t.Errorf("<%s> on the page", n.Data)
				}
				for _, a := range n.Attr {
					if a.Key == "src" || strings.HasPrefix(a.Key, "on") || a.Key == "href" && strings.Contains(a.Val, ":") {
						t.Errorf("<%s %s=%q>", n.Data, a.Key, a.Val)
					}
				}
			}
		})
	}
}

func TestPageShowsTheFarm(t *testing.T) {
	doc := render(t, Source{Status: fixed(richStatus("web")), Kernel: fakeKernel{}, Events: events()})
	root := checkHTML(t, doc)
	rs := rows(root)
	for addr, want := range map[string]string{"10.0.0.1:80": "up", "10.0.0.2:80": "down", "10.0.0.3:80": "drained", "10.0.0.4:80": "unchecked", "10.0.0.9:80": "sorry"} {
		row := rs[addr]
		if row == nil {
			t.Fatalf("no row for %s", addr)
		}
		cells := find(row, func(n *html.Node) bool { return n.DataAtom == atom.Td })
		// The state is in the text, not only in a colour: a terminal
		// browser shows it.
		if attr(row, "data-state") != want || text(cells[1]) != want {
			t.Errorf("%s: state %q (cell %q), want %q", addr, attr(row, "data-state"), text(cells[1]), want)
		}
	}
	for addr, want := range map[string][]string{
		// address, state, check, since, weights, forward, active, inactive, total, cps, in, out
		"10.0.0.1:80": {"10.0.0.1:80", "up", "http (1.5 ms)", "2026-12-04 10:00:00Z", "100", "100", "masq", "41", "3", "1000", "9", "123.5K", "0"},
		"10.0.0.2:80": {"10.0.0.2:80", "down", "http: connection refused (1.5 ms)", "2026-12-04 10:00:00Z", "100", "0", "masq", "1", "0", "234", "3", "0", "0"},
		"10.0.0.4:80": {"10.0.0.4:80", "unchecked", "none", "-", "1", "not in kernel", "route", "-", "-", "-", "-", "-", "-"},
	} {
		var got []string
		for _, c := range find(rs[addr], func(n *html.Node) bool { return n.DataAtom == atom.Td }) {
			got = append(got, text(c))
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s:\n got %q\nwant %q", addr, got, want)
		}
	}
	total := find(root, func(n *html.Node) bool { return n.DataAtom == atom.Tfoot })
	if len(total) != 1 || text(total[0]) != "Service total 42 3 1234 12 0 0" {
		t.Errorf("service total: %v", total)
	}
	for _, want := range []string{"failover pair", "lb2, priority 50, standby, alive", "ttyS0 down never", "192.0.2.1 64512 established",
		"lb3 dead 2026-12-04 10:00:00Z yes differs", "1 live member(s) run a different config", "role lb1 active",
		"check web 10.0.0.2:80 down: connection refused", "198.51.100.1:443/tcp", "1 of 4 real servers up"} {
		if !strings.Contains(text(root), want) {
			t.Errorf("the page does not say %q", want)
		}
	}
	// Newest event first.
	ev := find(root, func(n *html.Node) bool { return n.DataAtom == atom.Tr && strings.HasPrefix(attr(n, "class"), "event ") })
	if len(ev) != 2 || !strings.Contains(text(ev[0]), "role") {
		t.Errorf("events: %d, first %q", len(ev), text(ev[0]))
	}
}

func TestPageEscapesHostileNames(t *testing.T) {
	st := richStatus(hostile)
	st.Node = `lb1"><b onmouseover=x>`
	st.Services[0].RealServers[1].Health.Error = `"><img src=x onerror=alert(1)>`
	st.Failover.Links[0].Name = "</table><script>x</script>"
	ev := NewEvents(2)
	ev.Add(Event{Time: t0, Kind: "check", Subject: hostile + " 10.0.0.2:80", What: "down: </td></tr></table>"})
	root := checkHTML(t, render(t, Source{Status: fixed(st), Events: ev}))
	for _, n := range find(root, func(*html.Node) bool { return true }) {
		switch n.DataAtom {
		case atom.Script, atom.Img, atom.B:
			t.Errorf("a name made a <%s> element", n.Data)
		}
		for _, a := range n.Attr {
			if strings.HasPrefix(a.Key, "on") || a.Key == "src" {
				t.Errorf("a name made an attribute %s on <%s>", a.Key, n.Data)
			}
		}
	}
	// And they are shown as they are, to be read.
	all := text(root)
	for _, s := range []string{hostile, `"><img src=x onerror=alert(1)>`, "</table><script>x</script>", "down: </td></tr></table>"} {
		if !strings.Contains(all, s) {
			t.Errorf("the page does not show %q as text", s)
		}
	}
	tables := find(root, func(n *html.Node) bool { return n.DataAtom == atom.Table && attr(n, "data-service") == hostile })
	if len(tables) != 1 {
		t.Errorf("the service's table is not labelled with its name")
	}
}

// secretField matches the names of fields that hold secrets, or the
// paths of the files that do, in director's types (auth_key_file,
// password_file, the BGP md5 password, RADIUS secrets, TLS keys).
var secretField = regexp.MustCompile(`(?i)key|password|passwd|secret|md5|token|credential|file|path`)

// notSecret are fields whose names match but hold nothing secret.
var notSecret = map[string]bool{
	"director.ServiceStatus.Key": true, // the kernel service: 192.0.2.10:80/tcp
}

// secretFields lists the fields of ty, and of the types it holds, whose
// names say they may hold a secret.
func secretFields(ty reflect.Type) []string {
	var out []string
	seen := map[reflect.Type]bool{}
	var walk func(reflect.Type)
	walk = func(ty reflect.Type) {
		for ty.Kind() == reflect.Pointer || ty.Kind() == reflect.Slice || ty.Kind() == reflect.Map {
			ty = ty.Elem()
		}
		if ty.Kind() != reflect.Struct || seen[ty] || ty.PkgPath() == "time" {
			return
		}
		seen[ty] = true
		for i := range ty.NumField() {
			f := ty.Field(i)
			name := ty.String() + "." + f.Name
			if !f.Anonymous && secretField.MatchString(f.Name) && !notSecret[name] {
				out = append(out, name)
			}
			walk(f.Type)
		}
	}
	walk(ty)
	return out
}

// TestPageShowsNothingSecret: the page is made from a View, which holds a
// control.Status, the kernel's counters and events; none has a field
// that could hold a secret or a key file's path. A field added to them
// that could must be looked at here (and kept off the page).
func TestPageShowsNothingSecret(t *testing.T) {
	if got := secretFields(reflect.TypeFor[View]()); len(got) > 0 {
		t.Errorf("the page's data has fields that may hold secrets: %v", got)
	}
	// The walk finds them where they are: in the config, which the page
	// is not given.
	got := secretFields(reflect.TypeFor[config.Config]())
	for _, want := range []string{"config.Failover.AuthKeyFile", "config.BGPPeer.PasswordFile", "config.Check.PasswordFile"} {
		if !slices.Contains(got, want) {
			t.Errorf("the walk misses %s in the config (found %v)", want, got)
		}
	}
	// The status's config path is not shown either: it is no secret,
	// but nothing on the page needs it.
	if doc := render(t, Source{Status: fixed(richStatus("web"))}); strings.Contains(doc, "/etc/director") {
		t.Error("the page shows the config's path")
	}
}

func TestHandler(t *testing.T) {
	var fail error
	st := richStatus("web")
	srv := httptest.NewServer(Handler(Source{Status: func(context.Context) (*control.Status, error) { return st, fail }, Kernel: fakeKernel{}}))
	defer srv.Close()
	get := func() (*http.Response, string) {
		res, err := http.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res, string(b)
	}
	res, body := get()
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/html; charset=utf-8" ||
		!strings.Contains(res.Header.Get("Content-Security-Policy"), "default-src 'none'") || !strings.Contains(body, "10.0.0.2:80") {
		t.Errorf("%d %v", res.StatusCode, res.Header)
	}
	fail, st = errors.New("context deadline exceeded <b>"), nil
	res, body = get()
	if res.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "context deadline exceeded &lt;b&gt;") {
		t.Errorf("a failed status: %d %s", res.StatusCode, body)
	}
}

func TestEventsKeepTheLastNewestFirst(t *testing.T) {
	ev := NewEvents(3)
	if got := ev.Recent(); len(got) != 0 {
		t.Fatalf("empty ring: %v", got)
	}
	for i := range 5 {
		ev.Add(Event{Time: t0.Add(time.Duration(i) * time.Second), Subject: fmt.Sprint(i)})
	}
	// Seen late: an older transition added after newer ones.
	ev.Add(Event{Time: t0.Add(3500 * time.Millisecond), Subject: "late"})
	var got []string
	for _, e := range ev.Recent() {
		got = append(got, e.Subject)
	}
	if want := []string{"4", "late", "3"}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}
