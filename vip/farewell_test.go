package vip

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/directorlb/director/heartbeat"
)

// testKey is the heartbeat key the guard reads in these tests.
var testKey = []byte("0123456789abcdef-test-key")

// farewellRig records, in one order, what the guard removes, opens and
// sends.
type farewellRig struct {
	events []string
	frames [][]byte
	closed int
	rm     *fakeRemover
}

func (r *farewellRig) env() guardEnv {
	return guardEnv{
		rm: removerFunc(func(v VIP) (bool, error) {
			r.events = append(r.events, "remove "+v.Prefix.String())
			return r.rm.Remove(v)
		}),
		readKey: func(path string) ([]byte, error) {
			if path != "/etc/director/authkey" {
				return nil, fmt.Errorf("no key at %s", path)
			}
			return testKey, nil
		},
		openLink: func(s heartbeat.LinkSpec) (heartbeat.Link, error) {
			line, _ := linkLine(s)
			r.events = append(r.events, "open "+line)
			return &rigLink{r: r, name: line}, nil
		},
	}
}

type removerFunc func(VIP) (bool, error)

func (f removerFunc) Remove(v VIP) (bool, error) { return f(v) }

type rigLink struct {
	r    *farewellRig
	name string
}

func (l *rigLink) Name() string             { return l.name }
func (l *rigLink) Recv([]byte) (int, error) { return 0, io.EOF }
func (l *rigLink) Close() error             { l.r.closed++; return nil }
func (l *rigLink) Send(b []byte) error {
	l.r.events = append(l.r.events, "send "+l.name)
	l.r.frames = append(l.r.frames, slices.Clone(b))
	return nil
}

const farewellLines = `key /etc/director/authkey
node lb1 200 000102030405060708090a0b0c0d0e0f
link udp eth1 192.168.50.2 694
link multicast eth0 239.192.0.18 694
link serial /dev/ttyS1
farewell
`

// A parent that dies without a goodbye: the guard removes its VIPs, then
// tells the peer on every link, with a leaving message the peer accepts
// as the parent's, so the peer takes over at once. The UDP senders are
// opened while the parent lives; the serial device, the parent's until
// it dies, only then.
func TestGuardFarewellAfterRemoval(t *testing.T) {
	r := &farewellRig{rm: &fakeRemover{}}
	log, _ := testLogger()
	in := "hold 192.0.2.10/24 eth0\n" + farewellLines
	before := time.Now()
	if err := serveGuard(strings.NewReader(in), log, r.env()); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"open link udp eth1 192.168.50.2 694",
		"open link multicast eth0 239.192.0.18 694",
		"remove 192.0.2.10/24",
		"open link serial /dev/ttyS1",
		"send link udp eth1 192.168.50.2 694",
		"send link multicast eth0 239.192.0.18 694",
		"send link serial /dev/ttyS1",
	}
	if !slices.Equal(r.events, want) {
		t.Errorf("events:\n got %q\nwant %q", r.events, want)
	}
	if r.closed != 3 {
		t.Errorf("%d links closed, want 3", r.closed)
	}
	var g heartbeat.ReplayGuard
	for i, f := range r.frames {
		m, err := heartbeat.Decode(testKey, f)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		wantDigest := [16]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}
		if m.Kind != heartbeat.KindLeaving || m.Node != "lb1" || m.Priority != 200 || m.Role != heartbeat.RoleStandby || m.ConfigDigest != wantDigest || m.Seq != 1 || m.Time.Before(before) {
			t.Errorf("frame %d: %+v", i, m)
		}
		if i == 0 {
			// Later than anything the parent sent, in a boot of its own.
			g.Check(heartbeat.Message{Node: "lb1", Boot: m.Boot + 1, Seq: 900, Time: before.Add(-time.Millisecond)}, time.Now())
			if err := g.Check(m, time.Now()); err != nil {
				t.Errorf("the peer would refuse the farewell: %v", err)
			}
		}
	}
}

// No farewell after a goodbye (the parent told the peer itself), nor
// while a VIP may still be here (the peer must find it answering, not take
// it over on the guard's word), nor from a set the parent did not finish,
// nor without its key.
func TestGuardFarewellWithheld(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		fail     bool
	}{
		{"bye", "hold 192.0.2.10/24 eth0\n" + farewellLines + "bye\n", false},
		{"removal failed", "hold 192.0.2.10/24 eth0\n" + farewellLines, true},
		{"unfinished set", "hold 192.0.2.10/24 eth0\n" + strings.TrimSuffix(farewellLines, "farewell\n"), false},
		{"no key", "hold 192.0.2.10/24 eth0\n" + strings.Replace(farewellLines, "/etc/director/authkey", "/nowhere", 1), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &farewellRig{rm: &fakeRemover{}}
			if tc.fail {
				r.rm.fail = map[VIP]bool{{Prefix: netip.MustParsePrefix("192.0.2.10/24"), Interface: "eth0"}: true}
			}
			log, _ := testLogger()
			err := serveGuard(strings.NewReader(tc.in), log, r.env())
			if tc.fail != errors.Is(err, syscall.EPERM) {
				t.Errorf("serveGuard = %v", err)
			}
			if len(r.frames) != 0 {
				t.Errorf("sent %d farewells, want none: %q", len(r.frames), r.events)
			}
		})
	}
}

// A second set replaces the first, whose senders close; a bad line
// spoils nothing but itself.
func TestGuardFarewellReplaced(t *testing.T) {
	r := &farewellRig{rm: &fakeRemover{}}
	log, _ := testLogger()
	second := strings.NewReplacer("lb1 200", "lb1 150", "link multicast eth0 239.192.0.18 694\n", "link bogus\n", "link serial /dev/ttyS1\n", "").Replace(farewellLines)
	if err := serveGuard(strings.NewReader(farewellLines+second), log, r.env()); err != nil {
		t.Fatal(err)
	}
	if len(r.frames) != 1 {
		t.Fatalf("%d farewells sent, want 1 (the second set's one link): %q", len(r.frames), r.events)
	}
	if m, err := heartbeat.Decode(testKey, r.frames[0]); err != nil || m.Priority != 150 {
		t.Errorf("farewell %+v, %v; want the second set's", m, err)
	}
	if r.closed != 3 {
		t.Errorf("%d links closed, want the first set's 2 and the second's 1", r.closed)
	}
}

// What Guard.Farewell writes is what the guard reads.
func TestGuardFarewellProtocol(t *testing.T) {
	pr, pw := io.Pipe()
	g := &Guard{stdin: pw}
	r := &farewellRig{rm: &fakeRemover{}}
	log, _ := testLogger()
	done := make(chan error, 1)
	go func() { done <- serveGuard(pr, log, r.env()) }()
	err := g.Farewell(Farewell{
		KeyFile: "/etc/director/authkey", Node: "lb1", Priority: 200, Digest: [16]byte{15: 1},
		Links: []heartbeat.LinkSpec{
			{Interface: "eth1", Peer: netip.MustParseAddr("fe80::2"), Port: 694},
			{Interface: "eth0", Multicast: netip.MustParseAddr("239.192.0.18"), Port: 694},
			{Serial: "/dev/ttyS1"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	pw.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(r.frames) != 3 {
		t.Fatalf("%d farewells, want 3: %q", len(r.frames), r.events)
	}
	if m, err := heartbeat.Decode(testKey, r.frames[0]); err != nil || m.Node != "lb1" || m.ConfigDigest != [16]byte{15: 1} {
		t.Errorf("farewell %+v, %v", m, err)
	}
	if err := g.Farewell(Farewell{KeyFile: "/k", Node: "lb1", Links: []heartbeat.LinkSpec{{Serial: "/dev/tty S1"}}}); err == nil {
		t.Error("a serial path with a space was sent")
	}
}

// A link's line in the guard's protocol reads back as the same link.
// (Split from heartbeat.TestLinkSenderBesideItsLink, which opens the
// sender beside the link.)
func TestLinkLineRoundTrip(t *testing.T) {
	spec := heartbeat.LinkSpec{Interface: "lo", Peer: netip.MustParseAddr("127.0.0.1"), Port: 694}
	line, err := linkLine(spec)
	if err != nil {
		t.Fatal(err)
	}
	back, err := parseLinkLine(strings.Fields(line)[1:])
	if err != nil || back != spec {
		t.Errorf("%q read back as %+v, %v", line, back, err)
	}
}
